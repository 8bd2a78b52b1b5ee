"""A start without any state (state lost, a new application) after keys have moved commits no
event_id twice in ANY home table and dead-letters no bad record twice; the order marks mean what
they say while producers retry into the other region and a region goes DOWN and back; and planned
moves reorder nothing.

The replay drill (drills/scenarios.py): two regional jobs under sequenced traffic, 5 % of events
sent a second time, unchanged, into the other region's ingest stream (a producer's retry); 8 keys
flip between the regions twice each way (planned moves: nothing reordered, nothing marked, keys
that do not move never held); us-east-1 is drained, made ACTIVE, DOWN (its job running: a calm
failover) and ACTIVE again, so its keys' events are committed in both home tables in turn; bad records go into its ingest stream; then its
job is killed and started without state, and reads its streams again from the start. The audit
reads every home table (PyIceberg per appended file, DuckDB recounting) and every dead letter, and
checks every row by entry lane (drills/audit.py lane_check): every inversion marked, and every
marked row preceded by a committed row of its key that entered later.

The controls, on the same live sandbox once the audit is written: us-east-1 restarts with the
rules before 2026-12-04: without state, seeded from its own table only (`dedup.seed=home`), it
must commit events eu-west-1 committed while it held those keys; keeping order per declared
origin (`order.lanes=origin`), under fresh traffic with retries on new keys, it must mark rows
that are in order. Both checks can fail. (The hand-off's own control stays a drill of its own,
tests/e2e/test_drills.py.)
"""
from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from drills.run import DrillOptions, run
from sandbox.jobrunner import wait_until
from sandbox.local_cluster import with_job_overrides

pytestmark = pytest.mark.e2e
REGIONS = ("us-east-1", "eu-west-1")


def _duplicates(sb, ids: set[str]) -> dict[str, int]:
    rows = [x for r in REGIONS for x in sb.lake_ids(r) if x in ids]
    return {e: n for e, n in Counter(rows).items() if n > 1}


def test_start_without_state_after_moves_commits_nothing_twice_anywhere(tmp_path):
    control: dict = {}

    def controls(sb, backend, d):
        """us-east-1 restarted with the rules the checks must catch: without state and seeded from
        its own table only, keeping order per declared origin. Fresh keys homed there carry hot
        traffic with retries into the other region, so every row of them is the control's."""
        from connectors import routing_control as rc
        from drills import audit as audit_mod
        from drills.traffic import Traffic
        a = d.regions[0]
        ids = {e.event_id for e in d.traffic.accepted()}
        props = with_job_overrides(sb.properties, sb.root / "control.json",
                                   **{"dedup.seed": "home", "order.lanes": "origin"})
        backend.kill(a)
        backend.launch(a, restore="none", properties=props)
        backend.wait_started(a)
        table = rc.latest(sb.settings)
        keys = [k for k in (f"ctl-{i:03d}" for i in range(400)) if table.home_of(k) == a][:20]
        run_id = f"{d.run_id}-control"
        t = Traffic(sb.settings, list(d.regions), keys, 100.0, run_id, retry_share=0.2).start()
        t0 = time.monotonic()
        dup = wait_until(lambda: _duplicates(sb, ids), 180, 3.0, what="the control to commit events again")
        control.update(duplicates=len(dup), after_s=round(time.monotonic() - t0, 1))
        time.sleep(max(0.0, 8 - (time.monotonic() - t0)))
        t.stop()
        want = {e.event_id for e in t.accepted()}
        wait_until(lambda: want <= sb.committed_ids(*REGIONS), 180, 3.0, what="the control's traffic committed")
        rows = [r for home in REGIONS for r in audit_mod.table_rows(sb.settings, home, run_id)]
        lc = audit_mod.lane_check(rows, sb.settings.job.order_skew_ms)
        control.update(retried=t.retried, rows=len(rows), marked=lc.marked, unjustified=len(lc.unjustified))
        return control

    # 60 events/s per region: what the restarted region re-reads is what it replays before the audit.
    # Planned flips first, twice each way (the move-keys drill's CI test until 2026-12-04 flipped 3
    # times each way in a sandbox of its own; it runs with -m long now).
    opts = DrillOptions(scenario="replay", out=tmp_path / "drill", regions=REGIONS, port=4599, rest_port=18097,
                        warmup_s=3.0, rate=60.0, retry_share=0.05, flips=2, extra={"dwell_s": 1.5})
    report = run(opts, say=lambda m: print(m, flush=True), after=controls)
    saved = json.loads((tmp_path / "drill" / "report.json").read_text())
    assert saved["audit"] == json.loads(json.dumps(report["audit"])), "the report on disk is the one returned"
    au, lanes = report["audit"], report["lanes"]
    assert au["produced"] > 1000 and report["traffic_retried"] > 20
    assert au["lost"] == 0, f"lost: {au['lost_sample']}"
    assert au["duplicated"] == 0, f"committed twice across the home tables: {au['duplicated_sample']}"
    assert au["unexpected_rows"] == 0 and au["committed"] == au["produced"]
    for region, c in report["independent_reader"].items():
        assert c["duckdb_rows"] == c["duckdb_distinct"] == c["pyiceberg_rows"], region
    f = report["scenario_figures"]
    assert [c["state"] for c in f["changes"]] == ["DRAINING", "ACTIVE", "DOWN", "ACTIVE"]
    # The planned moves (move-keys' checks): 2 flips each way, then drained and back, before DOWN.
    flips, pp = f["flips"], report["planned_phase"]
    assert sum(x["to"] == REGIONS[1] for x in flips) >= 2 and sum(x["to"] == REGIONS[0] for x in flips) >= 2
    assert pp["rows"] > 1000 and pp["inversions"] == 0 and pp["marked"] == 0, pp
    assert report["pauses_ms"], "no moving key was ever held: the hand-off did not run"
    assert report["pause_max_ms"] <= 20_000 + 2_000  # handoff.timeout.ms bounds a pause
    assert report["non_moving_max_held_ms"] < 1000, "keys that did not move were paused"
    assert report["bad_dead_letters"] == f["bad_records"] == 3, "a bad record dead-lettered again (or never)"
    assert au["inversions_unreported"] == 0 and lanes["unmarked"] == 0
    assert lanes["unjustified"] == 0, f"marked, yet in order: {lanes['unjustified_sample']}"
    assert lanes["no_entry"] == 0, "every row names where it entered"
    assert report["passed"], report["verdict"]
    # The controls. The first also shows the keys really moved: their events were in eu-west-1's table.
    assert control["duplicates"] > 0, "control: a seed of the own table only should commit moved keys twice"
    assert control["retried"] > 0 and control["unjustified"] > 0, \
        f"control: order kept per declared origin should mark rows that are in order: {control}"
    print(f"\nreplay: {au['produced']} events ({report['traffic_retried']} retried into the other region) once "
          f"across both tables after a start without state; {lanes['marked']} rows marked, all justified; "
          f"controls: {control['duplicates']} events committed twice within {control['after_s']} s, "
          f"{control['unjustified']} of {control['rows']} rows marked though in order")

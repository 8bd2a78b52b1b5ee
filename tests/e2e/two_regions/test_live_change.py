"""A routing change written to DynamoDB takes effect in the running jobs within 5 s."""
from __future__ import annotations

import json
import time

import pytest

from connectors import routing_control
from sandbox.jobrunner import wait_until
from connectors.producer import put, read_stream
from udfs.envelope import Envelope

pytestmark = pytest.mark.e2e
LIVE_CHANGE_BOUND_S = 5.0


def _dead_letters(sb, region):
    return [json.loads(r["data"]) for r in read_stream(sb.settings, region, sb.settings.streams.dead_letter)]


def test_live_table_change_reroutes_new_records_within_bound(two_regions):
    sb = two_regions
    key = next(f"live-{i}" for i in range(1000) if sb.table.home_of(f"live-{i}") == "us-east-1")
    # Written in one region (us-east-1, the control region) and replicated to eu-west-1 a second
    # later, as on AWS: us-east-1 forwards under the new epoch before eu-west-1 has it, and
    # eu-west-1 must wait for its table, not reject the record as a conflict.
    changed = routing_control.remap(sb.settings, {}, {key: "eu-west-1"})
    t0 = time.time() * 1000
    sent = []
    for i in range(40):  # one record every 250 ms for 10 s, all produced in us-east-1
        e = Envelope(f"live-{i}-{int(t0)}", key, int(time.time() * 1000), "us-east-1", payload={"i": i})
        put(sb.settings, "us-east-1", [(key, e.to_json().encode())])
        sent.append(e)
        time.sleep(0.25)
    ids = {e.event_id: e for e in sent}

    def placed():
        us, eu = set(sb.lake_ids("us-east-1")), set(sb.lake_ids("eu-west-1"))
        if not set(ids) <= us | eu:
            return None
        return us, eu
    us, eu = wait_until(placed, 120, 2.0, sb.jobs, "live-change records committed")
    late = [e for e in sent if e.ts - t0 > LIVE_CHANGE_BOUND_S * 1000]
    assert late and all(e.event_id in eu and e.event_id not in us for e in late), \
        "records produced more than 5 s after the change still went to the old home"
    first_new = min(e.ts for e in sent if e.event_id in eu) - t0
    print(f"\nlive routing change (epoch {changed.epoch}): first record at the new home was produced "
          f"{max(first_new, 0) / 1000:.2f}s after the write")
    assert not [d for d in _dead_letters(sb, "eu-west-1") if d["reason"] in ("routing-conflict", "stale-routing-table")
                and json.loads(d["raw"]).get("key") == key], "a live change dead-lettered records"
    sb.table = sb.set_table(routing_control.changed(sb.settings, {}, {key: ""}))

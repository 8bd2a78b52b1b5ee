"""A start with no state at all (state lost, a new application) commits no event_id twice and
dead-letters no bad record twice: the source starts again from TRIM_HORIZON, and the router seeds
its dedup state from what the home table already holds (and the dead-letter stream already has).
The control starts the same way with `dedup.seed=none` and must commit duplicates: the check can
fail."""
from __future__ import annotations

import json
import signal
from collections import Counter

import pytest

from cli.produce import events, put
from connectors.stream_reader import read_stream
from sandbox.jobrunner import start_job, wait_until
from sandbox.local_cluster import Sandbox, write_properties

pytestmark = pytest.mark.e2e
REGION = "us-east-1"
REST_PORT = 18097
BAD = [b"{not json", json.dumps({"event_id": "no-key", "ts": 1}).encode()]


def _dead_letter_reasons(sb) -> Counter:
    recs = read_stream(sb.settings, REGION, sb.settings.streams.dead_letter)
    return Counter(json.loads(r["data"]).get("reason") for r in recs)


def test_start_without_state_commits_nothing_twice(tmp_path):
    sb = Sandbox(tmp_path, 4599, [REGION]).up()
    first = list(events(REGION, 3000, 50, seed=31))
    second = list(events(REGION, 1000, 50, seed=32))
    jobs = []

    def run(tag: str, props=None):
        j = start_job(REGION, props or sb.properties, tmp_path / f"logs-{tag}",
                      extra_args=["--rest-port", str(REST_PORT), "--restore", "none"])
        jobs.append(j)
        sb.jobs.append(j)
        return j

    def committed(evs, job):
        ids = {e.event_id for e in evs}
        wait_until(lambda: ids <= sb.committed_ids(REGION), 240, 2.0, [job], f"{len(ids)} events committed")

    try:
        put(sb.settings, REGION, [(e.key, e.to_json().encode()) for e in first])
        put(sb.settings, REGION, [("bad", b) for b in BAD])
        job = run("first")
        committed(first, job)
        wait_until(lambda: sum(_dead_letter_reasons(sb).values()) >= len(BAD), 60, 1.0, [job], "dead letters")
        dl_before = _dead_letter_reasons(sb)
        job.stop(signal.SIGKILL)

        # State lost: the whole ingest stream is read again from the start.
        job = run("fresh")
        put(sb.settings, REGION, [(e.key, e.to_json().encode()) for e in second])
        committed(second, job)
        wanted = {e.event_id for e in first + second}
        ids = [x for x in sb.lake_ids(REGION) if x in wanted]
        dup = {k: n for k, n in Counter(ids).items() if n > 1}
        assert not dup, f"{len(dup)} event_ids committed twice after a start without state, e.g. {list(dup)[:3]}"
        assert len(ids) == len(wanted)
        assert _dead_letter_reasons(sb) == dl_before, "bad records dead-lettered again after a start without state"

        # Control: the same start without the seed commits the first batch again.
        job.stop(signal.SIGKILL)
        unseeded = write_properties(tmp_path / "unseeded.json", 4599, tmp_path / "checkpoints",
                                    **{"dedup.seed": "none"})
        job = run("control", unseeded)
        first_ids = {e.event_id for e in first}
        wait_until(lambda: sum(1 for x in sb.lake_ids(REGION) if x in first_ids) >= 2 * len(first_ids), 240, 2.0,
                   [job], "the control to commit the first batch again")
        print(f"\nstart without state: {len(wanted)} events once; dead letters {dict(dl_before)} once; "
              f"control (dedup.seed=none): {len(first_ids)} duplicates")
    finally:
        sb.down()

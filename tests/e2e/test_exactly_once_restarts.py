"""Exactly once and per-key commit order across hard crashes: while events flow, the job is
killed (SIGKILL of its whole process group, JVM included) at random points and restored from the
latest completed checkpoint. Afterwards every event_id is in the lake exactly once, and for each
key no event is committed in an earlier snapshot than an event produced before it."""
from __future__ import annotations

import random
import signal
import threading
import time
from collections import defaultdict

import pytest

from cli.jobrunner import start_job, wait_until
from cli.produce import events, put
from connectors import lake
from cli.local_cluster import Sandbox
from tests.conftest import first_commit_index, latest_checkpoint

pytestmark = pytest.mark.e2e
KILLS = 3


def test_kill_and_restore_keeps_exactly_once_and_key_order(tmp_path):
    sb = Sandbox(tmp_path, 4596, ["us-east-1"]).up()
    ckpt = tmp_path / "ckpt"
    rng = random.Random(2024)
    evs = list(events("us-east-1", 3000, 30, seed=909))
    stop_producing = threading.Event()

    def produce():
        for i in range(0, len(evs), 25):  # ~60 s of traffic, spanning every kill
            if stop_producing.is_set():
                return
            put(sb.settings, "us-east-1", [(e.key, e.to_json().encode()) for e in evs[i:i + 25]])
            time.sleep(0.5)

    producer = threading.Thread(target=produce, daemon=True)
    try:
        job = start_job("us-east-1", sb.properties, tmp_path / "logs-0", extra_args=["--checkpoint-dir", ckpt.as_uri()])
        sb.jobs.append(job)
        wait_until(lambda: list(ckpt.glob("*/chk-*/_metadata")), 180, 1.0, [job], "first checkpoint")
        producer.start()
        kills = []
        restored_at = 0.0
        for k in range(1, KILLS + 1):
            # Kill only a job that is running: it has completed a checkpoint of its own since its
            # start (so it read, routed and committed), then at a random point after that.
            wait_until(lambda: (latest_checkpoint(ckpt) / "_metadata").stat().st_mtime > restored_at,
                       180, 0.5, [job], f"a checkpoint of run {k}")
            time.sleep(rng.uniform(0.5, 4))
            job.stop(signal.SIGKILL)
            restore = latest_checkpoint(ckpt)
            restored_at = time.time()
            kills.append(restore.name)
            job = start_job("us-east-1", sb.properties, tmp_path / f"logs-{k}",
                            extra_args=["--checkpoint-dir", ckpt.as_uri(), "--restore", restore.as_uri()])
            sb.jobs.append(job)
        producer.join(120)
        ids = {e.event_id for e in evs}
        wait_until(lambda: ids <= set(sb.lake_ids("us-east-1")), 300, 2.0, [job], "all events committed")
        time.sleep(4)  # a few more checkpoints: late duplicates would be committed by now

        rows = sb.lake_ids("us-east-1")
        mine = [x for x in rows if x in ids]
        assert len(mine) == len(ids), f"{len(mine) - len(ids)} duplicate rows after {KILLS} kills"

        first = first_commit_index(sb.settings, "us-east-1")
        by_key = defaultdict(list)
        for e in evs:  # produce order
            by_key[e.key].append(first[e.event_id])
        for key, commits in by_key.items():
            assert commits == sorted(commits), f"{key}: a later event was committed before an earlier one"

        table = lake.load_table(sb.settings, "us-east-1")
        summaries = [s.summary for s in table.metadata.snapshots]
        assert all(s and s.additional_properties.get("flink.max-committed-checkpoint-id") for s in summaries)
        assert len(set(kills)) == KILLS, f"each kill must come after fresh progress: {kills}"
        print(f"\n{KILLS} kills, restored from {kills}; {len(ids)} events once; {len(summaries)} snapshots")
    finally:
        stop_producing.set()
        sb.down()

"""The routing table feed: nothing is routed before the table is loaded; after a crash the table
comes back from checkpointed broadcast state even when DynamoDB no longer has it. (The live
change test is in two_regions/test_live_change.py.)"""
from __future__ import annotations

import signal
import time

import pytest

from connectors import routing_control
from sandbox.jobrunner import start_job, wait_until
from connectors.producer import events, put
from connectors.routing_store import ITEM_KEY, RoutingStore
from sandbox.local_cluster import Sandbox
from tests.conftest import latest_checkpoint

pytestmark = pytest.mark.e2e


def test_records_wait_for_the_table_and_the_table_survives_a_crash(tmp_path):
    sb = Sandbox(tmp_path, 4593, ["us-east-1"], replicate=False).up()
    store = RoutingStore(sb.settings, "us-east-1")
    table = routing_control.latest(sb.settings)
    store.ddb.delete_item(TableName=store.table, Key=ITEM_KEY)
    ckpt = tmp_path / "ckpt"
    try:
        job = start_job("us-east-1", sb.properties, tmp_path / "logs",
                        extra_args=["--checkpoint-dir", ckpt.as_uri()])
        sb.jobs.append(job)
        first = list(events("us-east-1", 60, 6, seed=606))
        put(sb.settings, "us-east-1", [(e.key, e.to_json().encode()) for e in first])
        # The job is up and checkpointing, yet nothing may be routed by a default.
        wait_until(lambda: list(ckpt.glob("**/chk-*")), 180, 1.0, [job], "first checkpoint")
        time.sleep(5)
        assert sb.lake_ids("us-east-1") == [], "records were routed before any routing table existed"

        store.write(table)
        ids = {e.event_id for e in first}
        wait_until(lambda: ids <= sb.committed_ids("us-east-1"), 60, 1.0, [job], "waiting records routed")

        # Let a checkpoint complete with the table in broadcast state, then crash hard.
        time.sleep(4)
        job.stop(signal.SIGKILL)
        restore = latest_checkpoint(ckpt)
        store.ddb.delete_item(TableName=store.table, Key=ITEM_KEY)

        job2 = start_job("us-east-1", sb.properties, tmp_path / "logs2",
                         extra_args=["--checkpoint-dir", ckpt.as_uri(), "--restore", restore.as_uri()])
        sb.jobs.append(job2)
        second = list(events("us-east-1", 40, 6, seed=607))
        put(sb.settings, "us-east-1", [(e.key, e.to_json().encode()) for e in second])
        ids2 = {e.event_id for e in second}
        wait_until(lambda: ids2 <= sb.committed_ids("us-east-1"), 180, 1.0, [job2],
                   "records routed by the restored table")
        rows = sb.lake_ids("us-east-1")
        assert len(rows) == len(set(rows)), "a restart from checkpoint duplicated rows"
    finally:
        sb.down()

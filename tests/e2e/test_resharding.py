"""Per-key order across a split and a merge, read from a backlog, with a control.

kinesis-mock serves Kinesis (sandbox/kinesis_mock.py). While no job runs, sequenced events of keys
that all hash into shard 0 of the ingest stream go in: a backlog of 14 MB (20 KB records), more
than one GetRecords call returns (10 MB). Then shard 0 is split, a few events go into the two
children, the children are merged, and a few more go into the merged shard. A key's oldest
records are in the parent, its newer ones in a child, its newest in the grandchild. The job then
starts without state from TRIM_HORIZON and finds all five shards at once. A reader that fetches a
child between the parent's calls emits a key's newer records before its older ones.

The job's split reader (README, Resharding) holds a child until its parents are read to their end,
so every key's rows are committed in sequence; the control turns that off
(`-Dhomeflow.kinesis.parentFirst=false`, the connector's own behaviour) and must find
inversions. Every event_id is checked once in the lake (PyIceberg, and DuckDB's count).
"""
from __future__ import annotations

import hashlib
import time
import uuid

import pytest

from connectors import aws
from connectors.producer import put
from drills.audit import audit_rows, duckdb_counts, table_rows
from drills.run import drill_keys
from drills.traffic import Event
from sandbox import kinesis_mock
from sandbox.jobrunner import start_job, wait_until
from sandbox.local_cluster import Sandbox
from udfs.envelope import Envelope

pytestmark = pytest.mark.e2e
REGION = "us-east-1"
PAD = "x" * 20_000  # 20 KB records: GetRecords returns at most 10 MB, about 500 of them
BACKLOG, AFTER_SPLIT, AFTER_MERGE = 700, 60, 60
GETRECORDS_MAX_BYTES = 10 * 1024 * 1024


def _produce(sb: Sandbox, keys: list[str], n: int, seq: dict[str, int], run_id: str, out: list[Event],
             pad: str = "") -> None:
    records, now = [], int(time.time() * 1000)
    for i in range(n):
        key = keys[(len(out) + i) % len(keys)]
        seq[key] = seq.get(key, 0) + 1
        eid = f"{run_id}-{len(out) + i:07d}"
        records.append((key, Envelope(eid, key, now + i, REGION, payload={"seq": seq[key], "drill": run_id, "pad": pad})))
    put(sb.settings, REGION, [(k, e.to_json().encode()) for k, e in records])
    out += [Event(e.event_id, k, REGION, e.payload["seq"], 0) for k, e in records]


@pytest.mark.parametrize("parent_first", [True, False], ids=["parent-first", "control"])
def test_children_wait_for_their_parents(tmp_path, parent_first):
    port = 4601 if parent_first else 4602
    sb = Sandbox(tmp_path, port, [REGION], replicate=False, kinesis="kinesis-mock").up()
    try:
        kin = aws.client("kinesis", REGION, sb.settings.aws)
        stream = sb.settings.streams.ingest
        first = min(kinesis_mock.open_shards(kin, stream), key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
        lo, hi = int(first["HashKeyRange"]["StartingHashKey"]), int(first["HashKeyRange"]["EndingHashKey"])
        # keys homed here (no forwarding: one job) whose hash falls in the parent's range
        keys = [k for k in drill_keys(400) if sb.table.home_of(k) == REGION
                and lo <= int(hashlib.md5(k.encode()).hexdigest(), 16) <= hi][:24]
        run_id = f"reshard-{uuid.uuid4().hex[:6]}"
        seq: dict[str, int] = {}
        sent: list[Event] = []
        _produce(sb, keys, BACKLOG, seq, run_id, sent, PAD)
        parent, children = kinesis_mock.split_first_shard(kin, stream)
        _produce(sb, keys, AFTER_SPLIT, seq, run_id, sent)
        merged = kinesis_mock.reshard(kin, stream, "merge_shards", ShardToMerge=children[0], AdjacentShardToMerge=children[1])
        _produce(sb, keys, AFTER_MERGE, seq, run_id, sent)
        assert len(children) == 2 and len(merged) == 1 and len(keys) >= 12

        env = None if parent_first else {"JVM_ARGS": "-Dhomeflow.kinesis.parentFirst=false"}
        job = start_job(REGION, sb.properties, tmp_path / "logs", env_extra=env)
        sb.jobs.append(job)
        wanted = {e.event_id for e in sent}
        wait_until(lambda: wanted <= sb.committed_ids(REGION), 300, 2.0, [job], "every event committed")
        time.sleep(3)  # a few more checkpoints: a duplicate would be committed by now

        rows = table_rows(sb.settings, REGION, run_id)
        au = audit_rows(rows, sent)
        assert not au.lost and not au.duplicated and au.unexpected == 0, au.summary()
        assert duckdb_counts(sb.settings, [REGION])[REGION] == (len(sent), len(sent))
        by_shard = {s: sum(1 for r in rows if r.shard == s) for s in [parent, *children, *merged]}
        # the premise: the parent's backlog took more than one GetRecords call, and every shard was read
        assert BACKLOG * len(PAD) > GETRECORDS_MAX_BYTES and by_shard[parent] == BACKLOG
        assert sum(by_shard[c] for c in children) == AFTER_SPLIT and by_shard[merged[0]] == AFTER_MERGE, by_shard
        print(f"\n{len(sent)} events once over {len(keys)} keys; rows per shard {by_shard}; {au.late} inversions "
              f"({au.reported} marked by the home's sequence check)")
        if parent_first:
            assert au.late == 0, f"inversions across the reshard: {au.unreported[:5]}"
        else:
            assert au.late > 0, "the control (children read beside their parents) should reorder keys"
    finally:
        sb.down()

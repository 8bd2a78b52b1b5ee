"""DESIGN.md guarantee 4 under a replicator that behaves like DynamoDB global tables in their
default mode (lagged copies, last-writer-wins, conditions checked in the local replica only).

1. The hazard is real: two regions doing the catalog's compare-and-swap (`v = :v`) on ONE
   replicated pointer both succeed, and after replication one commit has vanished.
2. homeflow cannot hit it: each home region's table has its own pointer item, written only by
   that region's job; with replication running while both regions commit, no item is ever
   written in two regions, and every replica converges on each home's own latest pointer.
"""
from __future__ import annotations

import time

import pytest

from sandbox.ddb_replicator import DynamoDbReplicator
from sandbox.jobrunner import wait_until
from connectors import lake
from connectors.producer import events, put
from sandbox import services
from sandbox.local_cluster import Sandbox

pytestmark = pytest.mark.e2e
REGIONS = ["us-east-1", "eu-west-1"]
LAG_S = 2.0


def _cas(ddb, table, key, expected_v, new_v, location) -> bool:
    """Java DynamoDbCatalog's commit: UpdateItem ... ConditionExpression v = :v."""
    try:
        ddb.update_item(
            TableName=table, Key=key,
            UpdateExpression="SET #loc = :loc, v = :new",
            ConditionExpression="v = :v",
            ExpressionAttributeNames={"#loc": "p.metadata_location"},
            ExpressionAttributeValues={":loc": {"S": location}, ":new": {"S": new_v}, ":v": {"S": expected_v}})
        return True
    except ddb.exceptions.ConditionalCheckFailedException:
        return False


def test_naive_cas_on_one_replicated_pointer_loses_a_commit(tmp_path):
    sb = Sandbox(tmp_path, 4597, REGIONS, replicate=False).up()
    try:
        table = sb.settings.lake.catalog_table
        key = {"identifier": {"S": "shared.events"}, "namespace": {"S": "shared"}}
        ddb = {r: sb.clients_ddb(r) for r in REGIONS}
        ddb["us-east-1"].put_item(TableName=table, Item={**key, "v": {"S": "1"}, "p.metadata_location": {"S": "m1"}})
        with DynamoDbReplicator(sb.settings, table, REGIONS, lag_s=LAG_S) as rep:
            wait_until(lambda: "Item" in ddb["eu-west-1"].get_item(TableName=table, Key=key), 20, 0.2,
                       what="initial replication")
            # Both regions commit "their" snapshot on top of v=1 within the replication lag.
            ok_us = _cas(ddb["us-east-1"], table, key, "1", "2", "s3://a/commit-from-us-east-1")
            ok_eu = _cas(ddb["eu-west-1"], table, key, "1", "2", "s3://b/commit-from-eu-west-1")
            time.sleep(0.5)
            wait_until(rep.converged, 20, 0.2, what="replication to converge")
            final = {r: ddb[r].get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]["p.metadata_location"]["S"]
                     for r in REGIONS}
        assert ok_us and ok_eu, "both conditional writes were acknowledged"
        assert final["us-east-1"] == final["eu-west-1"], final
        lost = {"s3://a/commit-from-us-east-1", "s3://b/commit-from-eu-west-1"} - set(final.values())
        assert len(lost) == 1, f"expected exactly one silently lost commit, final {final}"
        assert rep.stats.conflicts >= 1
        print(f"\nnaive CAS: both writers succeeded, replicas converged on {final['us-east-1']}; lost {lost}")
    finally:
        sb.down()


def test_one_writer_region_per_pointer_loses_nothing_under_replication(two_regions):
    """The sandbox's own global-table stand-in replicates the catalog table all the time."""
    sb = two_regions
    table = sb.settings.lake.catalog_table

    def conflicts() -> list:
        st = services.replicator_stats(sb.state)["dynamodb"][table]
        return [k for k in st["conflict_keys"] if "NAMESPACE" not in k]
    before = {r: len(lake.load_table(sb.settings, r).metadata.snapshots) for r in REGIONS}
    conflicts_before = conflicts()
    sent = set()
    for round_ in range(3):  # several commits in both regions while replication runs
        for r in REGIONS:
            evs = list(events(r, 60, 12, seed=1000 + round_))
            put(sb.settings, r, [(e.key, e.to_json().encode()) for e in evs])
            sent |= {e.event_id for e in evs}
        time.sleep(2.5)
    wait_until(lambda: sent <= sb.committed_ids("us-east-1", "eu-west-1"), 180, 2.0,
               sb.jobs, "commits in both regions")

    def converged() -> bool:
        return all({lake.load_table(sb.settings, home, via_region=r).metadata_location for r in REGIONS}
                   == {lake.load_table(sb.settings, home).metadata_location} for home in REGIONS)
    # Jobs keep committing (empty commits too), so wait for a moment where every replica agrees.
    wait_until(converged, 60, 0.3, what="every replica of each home's pointer to agree")
    assert conflicts() == conflicts_before, conflicts()
    for home in REGIONS:
        own = lake.load_table(sb.settings, home)
        assert len(own.metadata.snapshots) > before[home] + 1, "the test needs several commits per region"
        # No lost commit: every snapshot is an ancestor of the current one (one unbroken chain).
        parents = {s.snapshot_id: s.parent_snapshot_id for s in own.metadata.snapshots}
        chain, sid = set(), own.metadata.current_snapshot_id
        while sid is not None:
            chain.add(sid)
            sid = parents.get(sid)
        assert chain == set(parents), f"{home}: snapshots outside the current chain"
    st = services.replicator_stats(sb.state)["dynamodb"][table]
    print(f"\ncatalog replicated {st['replicated']} item versions, pointer conflicts: 0")

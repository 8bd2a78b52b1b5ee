"""A consistent view across the home-region tables, and deterministic resolution of an event_id
that two regions both committed while their routing tables disagreed (a split brain)."""
from __future__ import annotations

import time

import pytest

from connectors import routing_control
from sandbox import services
from sandbox.jobrunner import wait_until
from connectors.producer import put
from sandbox.s3_replicator import S3Replicator
from connectors import lake_view, read_pointer
from connectors.routing_store import RoutingStore
from udfs.envelope import Envelope
from udfs.routing_table import RegionEntry, RoutingTable

pytestmark = pytest.mark.e2e
REGIONS = ["us-east-1", "eu-west-1"]


def test_split_brain_duplicate_resolves_the_same_way_in_every_region(two_regions):
    sb = two_regions
    s = sb.settings
    base = routing_control.latest(s)
    key = "split-brain-key"
    epoch = base.epoch + 1
    # A partition: replication between the regions is cut and each side's operator declares the
    # other region lost, at the same epoch. Both believe they are the key's home, and with the other
    # side DOWN there is nobody to hand the key over from (a hand-off would have prevented the
    # duplicate: the old home answers with the event_ids it committed).
    partition = services.replication_paused(sb.state)
    partition.__enter__()
    for r in REGIONS:
        other = next(o for o in REGIONS if o != r)
        regions = {**base.regions, other: RegionEntry(1, "DOWN", epoch)}
        RoutingStore(s, r).write(RoutingTable(epoch, regions, {**base.overrides, key: r}, base.vnodes_per_weight))
    try:
        time.sleep(3 * s.job.routing_poll_ms / 1000 + 1)
        eid = f"split-{time.time_ns()}"
        rec = Envelope(eid, key, int(time.time() * 1000), "us-east-1", payload={"n": 1}).to_json().encode()
        for r in REGIONS:
            put(s, r, [(key, rec)])
        wait_until(lambda: all(eid in sb.committed_ids(r) for r in REGIONS), 120, 1.0, sb.jobs,
                   "the event committed by both regions")
        partition.__exit__(None, None, None)

        pairs = [(s.lake.bucket(h), read_pointer.replica_bucket(s, h, r)) for h in REGIONS for r in REGIONS if h != r]
        views = {}
        with S3Replicator(s, pairs, lag_s=0.5):
            for reader in REGIONS:
                other = next(h for h in REGIONS if h != reader)

                def published():
                    read_pointer.publish(s, other, reader)
                    rows, _ = read_pointer.read_rows(s, other, reader)
                    return eid in rows["event_id"].to_pylist()
                wait_until(published, 60, 0.5, what=f"{reader}'s read pointer for {other}")
                lake_view.publish_view(s, reader)
                views[reader] = lake_view.read_view(s, reader)
        for reader, (rows, dropped, view) in views.items():
            mine = [r for r in rows if r["event_id"] == eid]
            assert len(mine) == 1, (reader, mine)
            assert dropped >= 1
            assert set(view["tables"]) == set(REGIONS)
            # equal epochs: the smallest region name wins, in every region
            assert mine[0]["home_region"] == "eu-west-1" and mine[0]["epoch"] == epoch
        ids = {reader: sorted(r["event_id"] for r in rows) for reader, (rows, _, _) in views.items()}
        assert eid in ids["us-east-1"] and eid in ids["eu-west-1"]
    finally:
        partition.__exit__(None, None, None)
        sb.table = sb.set_table(RoutingTable(epoch + 1, base.regions, base.overrides, base.vnodes_per_weight))

"""A DynamoDB "global table" replicator for the sandbox, reproducing the default (multi-region
eventual consistency) mode that DESIGN.md guarantee 4 is about:

* a write is applied in its own region at once (conditions are checked against that replica
  only, by the emulator itself);
* it reaches the other regions `lag_s` after the replicator first sees it (its own monotonic
  clock, so a step of the wall clock cannot shorten the lag);
* concurrent writes to one item are resolved last-writer-wins (the later local write wins
  everywhere, the other is overwritten and silently lost). "Later" is the item's own write time
  (`updated_at` in ms, which the Iceberg catalogs, the routing store and the acks write), as
  DynamoDB uses the write's timestamp; for items without one, the time the write was noticed.

It polls every replica with Scan, notices local writes by comparing items with what it last saw
or wrote, and copies winners after the lag. `conflicts` counts items written in two regions
within one lag window: exactly the case where a commit can vanish.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from sandbox.poller import Poller
from conf.settings import Settings
from connectors import aws


def _key(item: dict, key_attrs: tuple[str, ...]) -> str:
    return json.dumps([item[k] for k in key_attrs], sort_keys=True)


def _written_at(item: dict, noticed: float) -> float:
    v = item.get("updated_at", {}).get("N")
    return int(v) / 1000 if v else noticed


@dataclass
class _Write:
    at: float  # the writer's wall-clock time (updated_at): last writer wins by it, as global tables do
    region: str
    item: dict
    # when this replicator first saw the write, on its monotonic clock: the lag is counted from
    # here. Counting it from `at` made a forward step of the VM's wall clock deliver a write
    # sooner than the lag (a CI run saw 0.27 s against a 0.5 s lag).
    noticed: float = float("-inf")


@dataclass
class ReplicatorStats:
    replicated: int = 0
    conflicts: int = 0
    conflict_keys: list = field(default_factory=list)
    errors: int = 0  # a region unreachable (the sandbox's region gate): retried on the next step


class DynamoDbReplicator(Poller):
    def __init__(self, settings: Settings, table: str, regions: list[str], lag_s: float = 2.0,
                 poll_s: float = 0.2):
        self.table, self.regions, self.lag_s, self.poll_s = table, regions, lag_s, poll_s
        self.clients = {r: aws.client("dynamodb", r, settings.aws) for r in regions}
        desc = self.clients[regions[0]].describe_table(TableName=table)["Table"]
        self.key_attrs = tuple(k["AttributeName"] for k in desc["KeySchema"])
        self.seen: dict[tuple[str, str], dict] = {}  # (region, key) -> item as last seen/written
        self.pending: dict[str, _Write] = {}  # key -> newest local write not yet everywhere
        self.stats = ReplicatorStats()
        # Items already present at start are synced as they are (last one scanned wins), not
        # counted as conflicts: the hazard is about writes made while replication runs.
        for region in regions:
            try:
                items = self._scan(region)
            except Exception:  # noqa: BLE001 - unreachable now; picked up by step() later
                self.stats.errors += 1
                continue
            for item in items:
                k = _key(item, self.key_attrs)
                self.seen[(region, k)] = item
                self.pending[k] = _Write(0.0, region, item)

    def _scan(self, region: str) -> list[dict]:
        c, items, kw = self.clients[region], [], {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = c.scan(**kw)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def step(self) -> None:
        now, mono = time.time(), time.monotonic()
        for region in self.regions:
            try:
                items = self._scan(region)
            except Exception:  # noqa: BLE001 - a region that is down keeps its writes until it is back
                self.stats.errors += 1
                continue
            for item in items:
                k = _key(item, self.key_attrs)
                if self.seen.get((region, k)) == item:
                    continue
                self.seen[(region, k)] = item
                prev = self.pending.get(k)
                at = _written_at(item, now)
                if prev is not None and prev.region != region and abs(at - prev.at) < self.lag_s:
                    self.stats.conflicts += 1
                    self.stats.conflict_keys.append(k)
                if prev is None or at >= prev.at:  # last writer wins
                    self.pending[k] = _Write(at, region, item, mono)
        for k, w in list(self.pending.items()):
            if mono - w.noticed < self.lag_s:
                continue
            done = True
            for region in self.regions:
                if self.seen.get((region, k)) != w.item:
                    try:
                        self.clients[region].put_item(TableName=self.table, Item=w.item)
                    except Exception:  # noqa: BLE001 - region down: it gets the item when it is back
                        self.stats.errors += 1
                        done = False
                        continue
                    self.seen[(region, k)] = w.item
                    self.stats.replicated += 1
            if done:
                del self.pending[k]

    def converged(self) -> bool:
        return not self.pending

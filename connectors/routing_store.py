"""The routing table in DynamoDB: one item holding the whole JSON document and its epoch.

One item means one strongly consistent GetItem returns one whole version; writes are conditional
on the epoch rising, so two editors cannot silently overwrite each other.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from botocore.exceptions import ClientError

from conf.settings import Settings
from connectors import aws
from udfs.routing_table import RoutingTable

ITEM_KEY = {"name": {"S": "routing"}}


class StaleEpochError(RuntimeError):
    pass


class RoutingStore:
    def __init__(self, settings: Settings, region: str):
        self.table = settings.job.routing_table
        self.ddb = aws.client("dynamodb", region, settings.aws)

    def read_raw(self) -> str | None:
        item = self.ddb.get_item(TableName=self.table, Key=ITEM_KEY, ConsistentRead=True).get("Item")
        return None if item is None else item.get("doc", {}).get("S")

    def read(self, known_regions: frozenset[str]) -> RoutingTable | None:
        text = self.read_raw()
        return None if text is None else RoutingTable.from_json(text, known_regions)

    def write(self, table: RoutingTable) -> None:
        """Store `table` if its epoch is higher than the stored one."""
        self.write_raw(table.to_json(), table.epoch)

    def write_raw(self, doc: str, epoch: int) -> None:
        try:
            self.ddb.put_item(
                TableName=self.table,
                # updated_at: the write time, which global tables' last-writer-wins goes by
                Item={**ITEM_KEY, "doc": {"S": doc}, "epoch": {"N": str(epoch)},
                      "updated_at": {"N": str(int(time.time() * 1000))}},
                ConditionExpression="attribute_not_exists(#n) OR epoch < :e",
                ExpressionAttributeNames={"#n": "name"},
                ExpressionAttributeValues={":e": {"N": str(epoch)}},
            )
        except ClientError as e:
            if e.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise StaleEpochError(f"stored routing table already has epoch >= {epoch}") from None
            raise


# ---------------------------------------------------------------- acknowledgements
# Each router subtask writes one item `ack#<region>#<subtask>` in its region's routing table: the
# epoch it routes under, how many keys it holds for a hand-off, and when it last saw a record that
# was routed under an older epoch (a move still draining). In AWS the routing table is a global
# table; every item has one writer, so replication cannot lose an ack (guarantee 4).

ACK_PREFIX = "ack#"


@dataclass(frozen=True)
class Ack:
    region: str
    subtask: int
    parallelism: int
    epoch: int
    busy_keys: int
    stale_at_ms: int  # 0: never
    at_ms: int

    @property
    def item_name(self) -> str:
        return f"{ACK_PREFIX}{self.region}#{self.subtask}"


def write_ack(ddb, table: str, ack: Ack) -> None:
    ddb.put_item(TableName=table, Item={
        "name": {"S": ack.item_name}, "region": {"S": ack.region}, "subtask": {"N": str(ack.subtask)},
        "parallelism": {"N": str(ack.parallelism)}, "epoch": {"N": str(ack.epoch)},
        "busy_keys": {"N": str(ack.busy_keys)}, "stale_at_ms": {"N": str(ack.stale_at_ms)},
        "at_ms": {"N": str(ack.at_ms)}, "updated_at": {"N": str(ack.at_ms)}})


def read_acks(ddb, table: str) -> list[Ack]:
    out, kw = [], {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kw)
        for it in page["Items"]:
            if it["name"]["S"].startswith(ACK_PREFIX):
                out.append(Ack(it["region"]["S"], int(it["subtask"]["N"]), int(it["parallelism"]["N"]),
                               int(it["epoch"]["N"]), int(it["busy_keys"]["N"]), int(it["stale_at_ms"]["N"]),
                               int(it["at_ms"]["N"])))
        if "LastEvaluatedKey" not in page:
            return out
        kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class AckWriter:
    """Writes a router subtask's newest ack from a background thread, so a slow or unreachable
    DynamoDB never stalls routing; at most one write per `min_interval_s` unless `urgent`."""

    def __init__(self, client_factory, table: str, min_interval_s: float = 1.0):
        import threading
        self._factory, self._table, self._min = client_factory, table, min_interval_s
        self._cv = threading.Condition()
        self._next: Ack | None = None
        self._urgent = False
        self._closed = False
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="homeflow-ack", daemon=True)
        self._thread.start()

    def offer(self, ack: Ack, urgent: bool = False) -> None:
        with self._cv:
            self._next, self._urgent = ack, self._urgent or urgent
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()

    def _run(self) -> None:
        import logging
        import time
        ddb, last = None, 0.0
        while True:
            with self._cv:
                while self._next is None and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                if not self._urgent:
                    wait = self._min - (time.monotonic() - last)
                    if wait > 0:
                        self._cv.wait(wait)
                ack, self._next, self._urgent = self._next, None, False
            if ack is None:
                continue
            try:
                ddb = ddb or self._factory()
                write_ack(ddb, self._table, ack)
            except Exception as e:  # noqa: BLE001 - the next state retries
                self.errors += 1
                logging.getLogger("homeflow").warning("routing ack failed: %s", e)
            last = time.monotonic()

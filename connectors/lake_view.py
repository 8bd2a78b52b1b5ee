"""One consistent view of the whole lake for a reader region (issue 4, item 4).

A *view* is one DynamoDB item in the reader region's `homeflow-read-pointers` table naming, for
every home-region table, one whole snapshot the reader can read (its own table's current
snapshot; other homes' published read pointers). It is written in one conditional PutItem with a
rising version, so a reader that reads the view gets a single cut across all tables, and every
reader of that version gets the same rows. Rows of an event_id committed by two homes (possible
only while routing tables disagreed) are resolved by `udfs.resolve`.
"""
from __future__ import annotations

import json
import time

import pyarrow as pa

from conf.settings import Settings
from connectors import aws, lake, read_pointer
from udfs.resolve import resolve

VIEW_KEY = "__lake_view__"
RESOLVE_COLUMNS = ("event_id", "epoch", "home_region")


def _ddb(settings: Settings, reader: str):
    return aws.client("dynamodb", reader, settings.aws)


def current_view(settings: Settings, reader: str, ddb=None) -> dict | None:
    item = (ddb or _ddb(settings, reader)).get_item(TableName=read_pointer.POINTER_TABLE, Key={"table": {"S": VIEW_KEY}},
                                          ConsistentRead=True).get("Item")
    return None if item is None else {"version": int(item["version"]["N"]), "tables": json.loads(item["tables"]["S"])}


_LOAD = object()


def publish_view(settings: Settings, reader: str, attempts: int = 5, ddb=None, own=_LOAD) -> dict:
    """Write a new view version. Several publishers may run (the job's, `homeflow publish`): a
    version taken by another is retried with the next one, and every version written is a whole
    cut, so it does not matter whose wins. `own`: the reader's own table as (metadata location,
    snapshot id), or None when it has no snapshot, when the caller already knows it (the job's
    publisher loads it once per commit, not once per view); by default it is loaded here."""
    ddb = ddb or _ddb(settings, reader)
    if own is _LOAD:
        t = lake.load_table(settings, reader)
        snap = t.current_snapshot() if t else None
        own = (t.metadata_location, snap.snapshot_id) if snap is not None else None
    attempt = 0
    while True:
        tables = {}
        for home in settings.job.regions:
            if home == reader:
                if own is not None:
                    tables[home] = {"metadata_location": own[0], "snapshot_id": own[1]}
            else:
                p = read_pointer.read_pointer(settings, home, reader, ddb)
                if p is not None:
                    tables[home] = {"metadata_location": p.metadata_location, "snapshot_id": p.snapshot_id}
        prev = current_view(settings, reader, ddb)
        version = (prev["version"] if prev else 0) + 1
        try:
            ddb.put_item(
                TableName=read_pointer.POINTER_TABLE,
                Item={"table": {"S": VIEW_KEY}, "version": {"N": str(version)}, "tables": {"S": json.dumps(tables)},
                      "published_at_ms": {"N": str(int(time.time() * 1000))}},
                ConditionExpression="attribute_not_exists(#t) OR version < :v",
                ExpressionAttributeNames={"#t": "table"}, ExpressionAttributeValues={":v": {"N": str(version)}})
            return {"version": version, "tables": tables}
        except ddb.exceptions.ConditionalCheckFailedException:
            attempt += 1
            if attempt >= attempts:
                raise


def read_view(settings: Settings, reader: str, columns: tuple[str, ...] = ("event_id", "key")) -> tuple[list[dict], int, dict]:
    """(rows resolved to one per event_id, duplicates dropped, the view read)."""
    view = current_view(settings, reader)
    if view is None:
        return [], 0, {"version": 0, "tables": {}}
    cols = tuple(dict.fromkeys(columns + RESOLVE_COLUMNS))
    parts: list[pa.Table] = []
    for home, t in view["tables"].items():
        rows, _ = read_pointer.read_rows(settings, home, reader, cols,
                                         metadata_location=None if home == reader else t["metadata_location"],
                                         snapshot_id=t["snapshot_id"])
        parts.append(rows)
    all_rows = [r for p in parts for r in p.to_pylist()]
    kept, dropped = resolve(all_rows)
    return kept, dropped, view

"""What the home table already holds, read without PyIceberg (the Managed Flink zip has boto3;
fastavro and pyarrow come with PyFlink): the event_ids committed since a point in time.

A job that starts without state (a lost checkpoint, a new application, SKIP_RESTORE_FROM_SNAPSHOT)
replays its streams from their retention start. Seeding its dedup with what the table already
holds keeps that replay from committing an event_id twice (DESIGN.md guarantee 2).
"""
from __future__ import annotations

import io
import json
import logging
from urllib.parse import urlparse

from conf.settings import Settings
from connectors import aws

log = logging.getLogger("homeflow")
DATA = 0  # manifest content: data files
DELETED = 2  # manifest entry status


def read_object(s3, location: str) -> bytes:
    """The bytes of the S3 object at an s3:// location."""
    u = urlparse(location)
    return s3.get_object(Bucket=u.netloc, Key=u.path.lstrip("/"))["Body"].read()


def metadata_location(settings: Settings, region: str) -> str | None:
    ns, name = settings.lake.namespace, settings.lake.table_name(region)
    item = aws.client("dynamodb", region, settings.aws).get_item(
        TableName=settings.lake.catalog_table,
        Key={"identifier": {"S": f"{ns}.{name}"}, "namespace": {"S": ns}}, ConsistentRead=True).get("Item")
    return item["p.metadata_location"]["S"] if item and "p.metadata_location" in item else None


def committed_event_ids(settings: Settings, region: str, since_ms: int) -> set[str]:
    """event_ids in the live data files that snapshots newer than `since_ms` added (a superset of
    what was committed since then: a compaction re-adds older rows, which costs memory, not
    correctness)."""
    import fastavro
    import pyarrow.parquet as pq

    loc = metadata_location(settings, region)
    if loc is None:
        return set()
    s3 = aws.client("s3", region, settings.aws)
    meta = json.loads(read_object(s3, loc))
    current = meta.get("current-snapshot-id")
    snaps = {s["snapshot-id"]: s for s in meta.get("snapshots", [])}
    if current in (None, -1) or current not in snaps:
        return set()
    recent = {sid for sid, s in snaps.items() if s["timestamp-ms"] >= since_ms}
    files = []
    for m in fastavro.reader(io.BytesIO(read_object(s3, snaps[current]["manifest-list"]))):
        if m.get("content", DATA) != DATA:
            continue
        for e in fastavro.reader(io.BytesIO(read_object(s3, m["manifest_path"]))):
            sid = e.get("snapshot_id") or m.get("added_snapshot_id")
            if e["status"] != DELETED and sid in recent:
                files.append(e["data_file"]["file_path"])
    ids: set[str] = set()
    for f in files:
        ids.update(pq.read_table(io.BytesIO(read_object(s3, f)), columns=["event_id"])["event_id"].to_pylist())
    log.info("dedup seed: %d event_ids from %d data files of %s's table", len(ids), len(files), region)
    return ids

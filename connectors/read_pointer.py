"""Replication-aware reads (DESIGN.md guarantee 3).

A home region's commit is visible at once in its own region. A reader in another region reads
that table from its own regional copy of the bucket (filled by S3 cross-region replication), and
only through a *read pointer* kept per reader region: an item in that region's
`homeflow-read-pointers` table naming a metadata file whose every file (metadata, manifest list,
manifests, data files) is already readable in the reader's copy. `publish` advances it; readers
never follow the writer's pointer directly, so they never meet a missing file and never see a
partial commit, at the price of trailing the writer by the replication lag.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.table import StaticTable, Table

from conf.settings import Settings
from connectors import aws, lake

POINTER_TABLE = "homeflow-read-pointers"
POINTER_KEY = "table"  # hash key; items are read pointers and lake views


def replica_bucket(settings: Settings, home: str, reader: str) -> str:
    return f"{settings.lake.bucket(home)}-replica-{reader}"


def _rewrite(location: str, src: str, dst: str) -> str:
    u = urlparse(location)
    return location.replace(f"{u.scheme}://{src}/", f"{u.scheme}://{dst}/", 1) if u.netloc == src else location


class ReplicaFileIO(PyArrowFileIO):
    """PyArrowFileIO reading `s3://<home bucket>/...` from the reader's replica bucket instead.
    Loaded by pyiceberg through the `py-io-impl` property."""

    def __init__(self, properties):
        super().__init__(properties)
        self.src, self.dst = properties["homeflow.replica.from"], properties["homeflow.replica.to"]

    def new_input(self, location: str):
        return super().new_input(_rewrite(location, self.src, self.dst))


@dataclass(frozen=True)
class ReadPointer:
    metadata_location: str
    snapshot_id: int
    sequence_number: int
    published_at_ms: int


def _exists(s3, location: str) -> bool:
    u = urlparse(location)
    try:
        s3.head_object(Bucket=u.netloc, Key=u.path.lstrip("/"))
        return True
    except s3.exceptions.ClientError:
        return False


class Publisher:
    """Advances `reader`'s read pointer for `home`'s table to the newest snapshot whose every file
    is in the reader's replica. Older snapshots count too: while the writer commits faster than
    replication, its *current* snapshot is never complete in the replica, yet the reader should
    still move forward.

    Kept between calls (the job's read-publisher ticks every second): its clients, the home table
    as last loaded (reloaded only when the catalog pointer moved), the replica metadata it opened,
    each manifest's live files, and the files already found in the replica. A file found there
    stays: homeflow never cleans replica buckets, and maintenance deletes only files no live
    snapshot reaches. So a tick costs one GetItem when nothing was committed, and a HEAD per new
    file otherwise, instead of a HEAD per file of the table (measured in scripts/bench_freshness.py)."""

    def __init__(self, settings: Settings, home: str, reader: str):
        self.settings, self.home, self.reader = settings, home, reader
        self.src, self.dst = settings.lake.bucket(home), replica_bucket(settings, home, reader)
        self.catalog = lake.catalog(settings, home)
        self.s3 = aws.client("s3", reader, settings.aws)
        self.ddb = aws.client("dynamodb", reader, settings.aws)
        self.table: Table | None = None
        self.replicas: dict[str, Table] = {}
        self.live = lake.LiveFiles()
        self.present: set[str] = set()

    def _exists(self, location: str) -> bool:
        if location in self.present:
            return True
        if _exists(self.s3, location):
            self.present.add(location)
            return True
        return False

    def _home_table(self) -> Table | None:
        loc = lake.pointer_location(self.settings, self.home, self.catalog.dynamodb)
        if loc is None:
            return None
        if self.table is None or self.table.metadata_location != loc:
            self.table = lake.load_table(self.settings, self.home, catalog=self.catalog)
        return self.table

    def _replica(self, meta: str) -> Table:
        if meta not in self.replicas:
            self.replicas = {meta: open_replica(self.settings, self.home, self.reader, meta),
                             **dict(list(self.replicas.items())[:3])}
        return self.replicas[meta]

    def publish(self) -> bool:
        """Returns whether the pointer advanced."""
        table = self._home_table()
        if table is None or table.current_snapshot() is None:
            return False
        current = read_pointer(self.settings, self.home, self.reader, self.ddb)
        done_seq = current.sequence_number if current else 0
        if current is not None and current.sequence_number >= table.current_snapshot().sequence_number:
            return False
        # The newest metadata file already replicated (the current one, or an earlier version).
        metas = [table.metadata_location] + [e.metadata_file for e in reversed(table.metadata.metadata_log)]
        meta = next((m for m in metas if self._exists(_rewrite(m, self.src, self.dst))), None)
        if meta is None:
            return False
        replica = self._replica(meta)
        newest: set[str] | None = None
        try:
            for snap in sorted(replica.metadata.snapshots, key=lambda x: x.sequence_number, reverse=True):
                if snap.sequence_number <= done_seq:
                    return False
                try:
                    reach = self.live.reachable(snap, replica.io)
                except (FileNotFoundError, OSError):  # a manifest list or manifest not replicated yet
                    continue
                if newest is None:
                    newest = reach
                if all(self._exists(_rewrite(f, self.src, self.dst)) for f in reach):
                    return _put_pointer(self.settings, self.home, self.reader, meta, snap, self.ddb)
            return False
        finally:
            if newest is not None:  # what later calls will look at again; the rest can go
                keep = {_rewrite(f, self.src, self.dst) for f in (*newest, *metas)}
                self.present &= keep
                self.live.keep_only(newest)


def publish(settings: Settings, home: str, reader: str) -> bool:
    """One publication (`homeflow publish`); the job keeps a Publisher between ticks instead."""
    return Publisher(settings, home, reader).publish()


def _put_pointer(settings: Settings, home: str, reader: str, meta: str, snap, ddb=None) -> bool:
    ddb = ddb or aws.client("dynamodb", reader, settings.aws)
    try:
        ddb.put_item(
            TableName=POINTER_TABLE,
            Item={"table": {"S": ".".join(lake.identifier(settings, home))},
                  "metadata_location": {"S": meta},
                  "snapshot_id": {"N": str(snap.snapshot_id)},
                  "sequence_number": {"N": str(snap.sequence_number)},
                  "published_at_ms": {"N": str(int(time.time() * 1000))}},
            # A pointer only moves forward, even with several publishers.
            ConditionExpression="attribute_not_exists(#t) OR sequence_number < :s",
            ExpressionAttributeNames={"#t": "table"},
            ExpressionAttributeValues={":s": {"N": str(snap.sequence_number)}})
        return True
    except ddb.exceptions.ConditionalCheckFailedException:
        return False


def read_pointer(settings: Settings, home: str, reader: str, ddb=None) -> ReadPointer | None:
    item = (ddb or aws.client("dynamodb", reader, settings.aws)).get_item(
        TableName=POINTER_TABLE, Key={"table": {"S": ".".join(lake.identifier(settings, home))}},
        ConsistentRead=True).get("Item")
    if item is None:
        return None
    return ReadPointer(item["metadata_location"]["S"], int(item["snapshot_id"]["N"]),
                       int(item["sequence_number"]["N"]), int(item["published_at_ms"]["N"]))


def open_replica(settings: Settings, home: str, reader: str, metadata_location: str) -> Table:
    src, dst = settings.lake.bucket(home), replica_bucket(settings, home, reader)
    props = {**lake.s3_properties(settings, reader), "py-io-impl": "connectors.read_pointer.ReplicaFileIO",
             "homeflow.replica.from": src, "homeflow.replica.to": dst}
    return StaticTable.from_metadata(metadata_location, props)


def read_rows(settings: Settings, home: str, reader: str, columns: tuple[str, ...] = ("event_id",),
              metadata_location: str | None = None, snapshot_id: int | None = None) -> tuple[pa.Table, int | None]:
    """Rows of `home`'s table as a reader in `reader` sees them: through its read pointer (or the
    given metadata file) and only from its replica bucket. Returns (rows, snapshot id)."""
    if reader == home:
        t = lake.load_table(settings, home)
        snap = t.current_snapshot() if t else None
        if snapshot_id is None and snap is not None:
            snapshot_id = snap.snapshot_id
        return lake.read_rows(settings, home, columns, snapshot_id), snapshot_id
    if metadata_location is None:
        ptr = read_pointer(settings, home, reader)
        if ptr is None:
            return pa.table({c: [] for c in columns}), None
        metadata_location, snapshot_id = ptr.metadata_location, ptr.snapshot_id
    table = open_replica(settings, home, reader, metadata_location)
    snap = table.snapshot_by_id(snapshot_id) if snapshot_id is not None else table.current_snapshot()
    if snap is None:
        return pa.table({c: [] for c in columns}), None
    src, dst = settings.lake.bucket(home), replica_bucket(settings, home, reader)
    s3fs = table.io.fs_by_scheme("s3", dst)
    parts = []
    # Append-only tables (no delete files): the planned data files are the whole snapshot.
    for task in table.scan(snapshot_id=snap.snapshot_id, selected_fields=columns).plan_files():
        path = urlparse(_rewrite(task.file.file_path, src, dst))
        parts.append(pq.read_table(f"{path.netloc}{path.path}", columns=list(columns), filesystem=s3fs))
    return (pa.concat_tables(parts) if parts else pa.table({c: [] for c in columns})), snap.snapshot_id

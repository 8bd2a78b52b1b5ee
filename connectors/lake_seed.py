"""What the lake already holds, for a start without state (DESIGN guarantee 2; docs: exactly once).

A job that starts without state (a lost checkpoint, a new application, SKIP_RESTORE_FROM_SNAPSHOT)
reads its streams again from their retention start. Some of what it re-reads was committed before,
and not always in its own table: a key that lived in another region for a while (a drain, a
region DOWN, a planned move) had the records this region read then committed *there*; routed
again under today's table, they would be committed a second time here.

The rule: **a record re-read after a start without state is dropped if its event_id is in any home
table's rows routed within the replay window** (the longest retention of the streams it reads, and
at least the dedup TTL), wherever today's table routes its key. The router checks it where it reads
the record, before routing (udfs/handoff.py, `committed`).

What the seed holds, per home table:
* this region's own table at its current snapshot (read in this region);
* every other home's table at its current snapshot as of this start: the home's catalog item and
  metadata file are read across regions (the job role's grants for its read publisher), its
  manifests and data files from this region's replica bucket, waiting up to `REPLICA_WAIT_S` for
  cross-region replication to bring them (no cross-region data reads);
* a home that cannot be read (lost), or whose replication is further behind than that wait: at the
  snapshot this region's **read pointer** names, what had replicated; the log says so.

The bound it relies on: commits another home makes after this start are not in the seed; they are
records in flight, which converge on the key's home, whose dedup has them. A home read through the
read pointer misses its commits of the last (replication lag + read.publish.interval.ms) before the
pointer moved: that matters only for a key whose home moved from there to here within that window,
so do not start a region without state while a move to it is still moving and that home is
unreachable. Rows are chosen by `routed_at` (the home router's clock) against this region's clock,
with an hour's margin. Found by the replay drill: with the read pointer alone, a start 4 s after a
failback committed an event a second time (the pointer was ~8 s behind the home).

The seed is a DiskIdSet (udfs/disk_id_set.py): 16 bytes an id on local disk, a bounded build
buffer in memory, so 600 million ids (7 days at 1,000 events/s) seed a job whose heap never held
them. Read with boto3, fastavro and pyarrow (PyFlink's own dependencies): the Managed Flink zip
needs nothing more.
"""
from __future__ import annotations

import io
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator
from urllib.parse import urlparse

from conf.settings import Settings
from connectors import aws
from udfs import disk_id_set

log = logging.getLogger("homeflow")
DATA = 0  # manifest content: data files
DELETED = 2  # manifest entry status
ROUTED_AT_FIELD = 11  # connectors/lake_schema.py: routed_at
MARGIN_MS = 3_600_000  # clocks of two regions' routers against this one
REPLICA_WAIT_S = 60.0  # how long the seed waits for another home's files to replicate here


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


@dataclass
class TableCut:
    """One home table as this region reads it: a metadata file and a snapshot in it, and where its
    files are (the home's bucket, or this region's replica of it)."""
    home: str
    metadata_location: str
    snapshot_id: int | None  # None: the metadata file's current snapshot
    s3: object
    src_bucket: str = ""
    dst_bucket: str = ""

    def local(self, location: str) -> str:
        u = urlparse(location)
        if self.src_bucket and u.netloc == self.src_bucket:
            return location.replace(f"{u.scheme}://{self.src_bucket}/", f"{u.scheme}://{self.dst_bucket}/", 1)
        return location

    def read(self, location: str) -> bytes:
        return read_object(self.s3, self.local(location))


class _Replicating(TableCut):
    """A remote home's current snapshot, read from this region's replica: a file not there yet is
    waited for (cross-region replication lags), until `deadline`."""

    def __init__(self, home, metadata_location, s3, src, dst, remote_s3, deadline: float):
        super().__init__(home, metadata_location, None, s3, src, dst)
        self.remote_s3, self.deadline = remote_s3, deadline

    def read(self, location: str) -> bytes:
        if location == self.metadata_location:  # the home's own metadata file, across regions
            return read_object(self.remote_s3, location)
        while True:
            try:
                return super().read(location)
            except self.s3.exceptions.NoSuchKey:
                if time.monotonic() > self.deadline:
                    raise TimeoutError(f"{location} not replicated to {self.dst_bucket} within "
                                       f"{REPLICA_WAIT_S:.0f} s") from None
                time.sleep(0.5)


def table_cuts(settings: Settings, region: str, scope: str) -> list[TableCut]:
    """The home tables a seed reads: this region's (scope "home"), or every home's ("lake")."""
    cuts = []
    own = metadata_location(settings, region)
    if own is not None:
        cuts.append(TableCut(region, own, None, aws.client("s3", region, settings.aws)))
    if scope != "lake":
        return cuts
    from connectors.read_pointer import replica_bucket
    s3 = aws.client("s3", region, settings.aws)
    for home in settings.job.remote_regions:
        src, dst = settings.lake.bucket(home), replica_bucket(settings, home, region)
        try:
            loc = metadata_location(settings, home)
            if loc is not None:
                cuts.append(_Replicating(home, loc, s3, src, dst, aws.client("s3", home, settings.aws),
                                         time.monotonic() + REPLICA_WAIT_S))
            continue
        except Exception as e:  # noqa: BLE001 - the home is unreachable (lost): what replicated here
            log.warning("dedup seed: %s's table not readable (%s): as far as %s's read pointer", home, e, region)
        cut = _pointer_cut(settings, home, region, s3, src, dst)
        if cut is not None:
            cuts.append(cut)
    return cuts


def _pointer_cut(settings: Settings, home: str, region: str, s3, src: str, dst: str) -> TableCut | None:
    from connectors.read_pointer import POINTER_TABLE
    ident = f"{settings.lake.namespace}.{settings.lake.table_name(home)}"
    item = aws.client("dynamodb", region, settings.aws).get_item(
        TableName=POINTER_TABLE, Key={"table": {"S": ident}}, ConsistentRead=True).get("Item")
    if item is None:
        log.warning("dedup seed: no read pointer for %s's table in %s: its commits are not in the seed", home, region)
        return None
    return TableCut(home, item["metadata_location"]["S"], int(item["snapshot_id"]["N"]), s3, src, dst)


def _upper_long(entry_file: dict, field_id: int) -> int | None:
    for kv in entry_file.get("upper_bounds") or ():
        if kv.get("key") == field_id and kv.get("value") is not None and len(kv["value"]) == 8:
            return int.from_bytes(kv["value"], "little", signed=True)
    return None


def data_files(cut: TableCut, since_ms: int) -> list[tuple[str, int]]:
    """(path, rows) of the snapshot's live data files that may hold rows routed since `since_ms`
    (a file without statistics for routed_at counts)."""
    import fastavro

    meta = json.loads(cut.read(cut.metadata_location))
    sid = cut.snapshot_id if cut.snapshot_id is not None else meta.get("current-snapshot-id")
    snap = next((s for s in meta.get("snapshots", []) if s["snapshot-id"] == sid), None)
    if snap is None:
        return []
    manifests = [m["manifest_path"] for m in fastavro.reader(io.BytesIO(cut.read(snap["manifest-list"])))
                 if m.get("content", DATA) == DATA]

    def live(path: str) -> list[tuple[str, int]]:
        out = []
        for e in fastavro.reader(io.BytesIO(cut.read(path))):
            f = e["data_file"]
            upper = _upper_long(f, ROUTED_AT_FIELD)
            if e["status"] != DELETED and (upper is None or upper >= since_ms):
                out.append((f["file_path"], f["record_count"]))
        return out
    with ThreadPoolExecutor(8) as pool:  # a manifest per commit: hundreds of small reads
        return [f for files in pool.map(live, manifests) for f in files]


def _event_ids(cut: TableCut, files: list[tuple[str, int]], workers: int = 8) -> Iterator[list[str]]:
    """Each file's event_ids, read a few at a time (reads wait on S3; hashing is the caller's)."""
    import pyarrow.parquet as pq

    def read(path: str) -> list[str]:
        return pq.read_table(io.BytesIO(cut.read(path)), columns=["event_id"])["event_id"].to_pylist()
    paths = [p for p, _ in files]
    with ThreadPoolExecutor(workers) as pool:
        for i in range(0, len(paths), 2 * workers):  # a few files in memory at a time, not all
            yield from pool.map(read, paths[i:i + 2 * workers])


def _add(builder, cut: TableCut, files, total: int, progress) -> None:
    for i, ids in enumerate(_event_ids(cut, files)):
        builder.add_all(ids)
        if progress and i and i % 100 == 0:
            progress(f"dedup seed: {builder.added:,} of about {total:,} event_ids")


@dataclass
class SeedStats:
    ids: int
    files: int
    rows: int
    seconds: float
    disk_bytes: int
    tables: dict[str, int]  # home -> rows read


def committed_ids(settings: Settings, region: str, since_ms: int, scope: str = "lake",
                  directory: str | None = None, progress: Callable[[str], None] | None = None
                  ) -> tuple[disk_id_set.DiskIdSet, SeedStats]:
    """Every event_id the home tables in `scope` hold in rows routed since `since_ms`."""
    t0 = time.monotonic()
    planned = []
    for c in table_cuts(settings, region, scope):
        try:
            planned.append((c, data_files(c, since_ms)))
        except TimeoutError as e:  # replication further behind than the wait: what it had
            log.warning("dedup seed: %s; %s's table as far as %s's read pointer", e, c.home, region)
            cut = _pointer_cut(settings, c.home, region, c.s3, c.src_bucket, c.dst_bucket)
            if cut is not None:
                planned.append((cut, data_files(cut, since_ms)))
    total = sum(n for _, files in planned for _, n in files)
    builder = disk_id_set.DiskIdSetBuilder(total, directory)
    per_table: dict[str, int] = {}
    try:
        for cut, files in planned:
            before = builder.added
            try:
                _add(builder, cut, files, total, progress)
            except TimeoutError as e:  # a data file not replicated in time: what the pointer names
                log.warning("dedup seed: %s; %s's table as far as %s's read pointer", e, cut.home, region)
                fallback = _pointer_cut(settings, cut.home, region, cut.s3, cut.src_bucket, cut.dst_bucket)
                if fallback is not None:
                    _add(builder, fallback, data_files(fallback, since_ms), total, progress)
            per_table[cut.home] = builder.added - before
        ids = builder.finish()
    except BaseException:
        builder.discard()
        raise
    stats = SeedStats(len(ids), sum(len(f) for _, f in planned), builder.added, time.monotonic() - t0,
                      ids.disk_bytes(), per_table)
    return ids, stats


def replay_window_ms(settings: Settings, region: str) -> int:
    """How far back a start without state re-reads: the longest retention of the streams it reads
    (asked of Kinesis, so it cannot drift from the stack), at least the dedup TTL."""
    kin = aws.client("kinesis", region, settings.aws)
    hours = settings.job.dedup_ttl_hours
    for stream in (settings.streams.ingest, settings.streams.forward):
        desc = kin.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        hours = max(hours, int(desc.get("RetentionPeriodHours", 24)))
    return hours * 3_600_000 + MARGIN_MS


def dead_lettered_sources(settings: Settings, region: str,
                          directory: str | None = None) -> disk_id_set.DiskIdSet:
    """The `source` of every dead letter this region's archive table has committed (a replay
    re-reads a bad record from the same position, and must not dead-letter it again). The archive,
    not the dead-letter stream: the table is committed with the checkpoints, the stream is written
    ahead of them, so a dead letter sent to the stream after the last completed checkpoint is not
    in the archive yet, and a restore must dead-letter it again to archive it once."""
    from connectors import lake

    def sources() -> Iterator[str]:
        table = lake.load_dead_letter_table(settings, region)
        if table is None or table.current_snapshot() is None:
            return
        for src in table.scan(selected_fields=("source",)).to_arrow()["source"].to_pylist():
            if src:
                yield src
    return disk_id_set.build(sources(), directory=directory)

"""Table maintenance for the home-region tables: compaction, snapshot expiry, orphan removal.

* Compaction runs Iceberg's own Flink `RewriteDataFilesAction` (in the connector jar): PyIceberg
  0.6.1 cannot write partitioned tables. Its commit is Java's DynamoDbCatalog commit, so it
  interleaves with the running job's commits like any other writer (a rewrite conflicts only
  with deletes, and the job only appends).
* Expiry is planned by `udfs.retention` (which keeps the snapshot chain a restored Flink
  committer walks) and committed here with the Python commit (`connectors.lake`), on the
  condition that the branch head is still the snapshot the plan was made from; if the job
  committed meanwhile, it plans again. Only after the commit are files deleted: those that
  only expired snapshots reached.
* Orphans are files under the table's location that no metadata reaches, older than a safe age.

Replica buckets in other regions are not touched: a remote reader's read pointer may still name
an expired snapshot, whose files stay readable there.
"""
from __future__ import annotations

import os
import statistics
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from botocore.exceptions import ClientError
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import (AssertRefSnapshotId, RemoveSnapshotsUpdate, Table, TableMetadata,
                             _apply_table_update, _TableMetadataUpdateContext)

from conf.settings import Settings
from connectors import aws, lake
from connectors.lake_schema import SMALL_FILE_BYTES
from udfs import retention

MAIN = "main"


@_apply_table_update.register(RemoveSnapshotsUpdate)
def _remove_snapshots(update: RemoveSnapshotsUpdate, base: TableMetadata,
                      context: _TableMetadataUpdateContext) -> TableMetadata:
    """PyIceberg 0.6.1 defines this update but cannot apply it."""
    ids = set(update.snapshot_ids)
    for name, ref in base.refs.items():
        if ref.snapshot_id in ids:
            raise ValueError(f"cannot expire snapshot {ref.snapshot_id}: ref {name!r} points at it")
    context.add_update(update)
    return base.model_copy(update={
        "snapshots": [s for s in base.snapshots if s.snapshot_id not in ids],
        "snapshot_log": [e for e in base.snapshot_log if e.snapshot_id not in ids],
    })


# ---------------------------------------------------------------------------------------- stats

@dataclass
class TableStats:
    snapshots: int
    data_files: int
    data_bytes: int
    records: int
    small_files: int
    median_file_bytes: int
    last_commit_files: int
    last_commit_bytes: int
    last_commit_ms: int = 0

    @property
    def small_file_ratio(self) -> float:
        return self.small_files / self.data_files if self.data_files else 0.0

    def line(self) -> str:
        return (f"{self.snapshots} snapshots, {self.data_files} data files ({self.data_bytes / 1024:.0f} KiB, "
                f"median {self.median_file_bytes / 1024:.1f} KiB), {self.records} records, "
                f"small-file ratio {self.small_file_ratio:.2f}; last data commit {self.last_commit_files} files / "
                f"{self.last_commit_bytes / 1024:.1f} KiB")


class StatsProbe:
    """Table statistics, reading each manifest once (`lake.LiveFiles`), so a repeated probe reads
    only what is new. (The job's gauges come from the Java twin of this, `LakeStatsFunction`,
    so the packaged job needs no PyIceberg.)"""

    def __init__(self, small_bytes: int = SMALL_FILE_BYTES):
        self.small_bytes = small_bytes
        self._live = lake.LiveFiles()

    def stats(self, table: Table) -> TableStats:
        snap = table.current_snapshot()
        if snap is None:
            return TableStats(len(table.metadata.snapshots), 0, 0, 0, 0, 0, 0, 0)
        manifests = snap.manifests(table.io)
        sizes = [size for m in manifests for _, size in self._live.of_manifest(m, table.io)]
        self._live.keep_only({m.manifest_path for m in manifests})
        # The newest commit that added data (Flink also commits empty snapshots now and then).
        by_id = {s.snapshot_id: s for s in table.metadata.snapshots}
        last, walked = snap, 0
        while last is not None and walked < 1000 and not int(lake.summary(last).get("added-data-files", 0)):
            last, walked = by_id.get(last.parent_snapshot_id), walked + 1
        added = lake.summary(last) if last is not None else {}
        return TableStats(
            snapshots=len(table.metadata.snapshots), data_files=len(sizes), data_bytes=sum(sizes),
            records=int(lake.summary(snap).get("total-records", 0)),
            small_files=sum(1 for s in sizes if s < self.small_bytes),
            median_file_bytes=int(statistics.median(sizes)) if sizes else 0,
            last_commit_files=int(added.get("added-data-files", 0)),
            last_commit_bytes=int(added.get("added-files-size", 0)),
            last_commit_ms=snap.timestamp_ms,
        )


def stats(table: Table, small_bytes: int = SMALL_FILE_BYTES) -> TableStats:
    return StatsProbe(small_bytes).stats(table)


# --------------------------------------------------------------------------------------- deletion

def _s3_delete(settings: Settings, region: str, paths: list[str]) -> None:
    s3 = aws.client("s3", region, settings.aws)
    by_bucket: dict[str, list[str]] = {}
    for p in paths:
        u = urlparse(p)
        by_bucket.setdefault(u.netloc, []).append(u.path.lstrip("/"))
    for bucket, keys in by_bucket.items():
        for i in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]],
                                                     "Quiet": True})


# ------------------------------------------------------------------------------------------ expiry

def snapshot_infos(table: Table) -> list[retention.SnapshotInfo]:
    return [retention.SnapshotInfo(s.snapshot_id, s.parent_snapshot_id, s.timestamp_ms,
                                   lake.summary(s).get(retention.FLINK_JOB_ID))
            for s in table.metadata.snapshots]


def view_pins(settings: Settings, home: str) -> set[int]:
    """The snapshot of `home`'s table named by the home region's published lake view (that view
    reads it by id from the live table; other regions' views read their replicas)."""
    from connectors import lake_view
    try:
        view = lake_view.current_view(settings, home)
    except ClientError:  # no read-pointer table in this region: nothing published, nothing pinned
        return set()
    t = (view or {}).get("tables", {}).get(home)
    return {int(t["snapshot_id"])} if t else set()


@dataclass
class ExpireResult:
    plan: retention.RetentionPlan
    deleted_files: list[str] = field(default_factory=list)
    attempts: int = 1
    committed: bool = False


def expire(settings: Settings, home: str, older_than_s: float, retain_last: int, dry_run: bool = False,
           protect_flink: bool = True, attempts: int = 10) -> ExpireResult:
    for attempt in range(1, attempts + 1):
        table = lake.load_table(settings, home)
        if table is None:
            raise RuntimeError(f"no table for home region {home}; create it with `homeflow lake init`")
        current = table.current_snapshot()
        p = retention.plan(snapshot_infos(table), current.snapshot_id if current else None,
                           now_ms=int(time.time() * 1000), older_than_ms=int(older_than_s * 1000),
                           retain_last=retain_last, pinned=view_pins(settings, home), protect_flink=protect_flink)
        result = ExpireResult(p, attempts=attempt)
        if dry_run or not p.expire:
            return result
        before = list(table.metadata.snapshots)  # the commit replaces table.metadata
        try:
            table._do_commit(updates=(RemoveSnapshotsUpdate(snapshot_ids=p.expire),),
                             requirements=(AssertRefSnapshotId(ref=MAIN, snapshot_id=current.snapshot_id),))
        except CommitFailedException:
            time.sleep(0.1 * attempt)  # a commit landed since the plan: plan again on the new head
            continue
        result.committed = True
        live, gone = lake.LiveFiles(), set(p.expire)
        expired = [s for s in before if s.snapshot_id in gone]
        kept = [s for s in before if s.snapshot_id in p.keep]
        result.deleted_files = sorted(retention.files_to_delete(
            live.reachable_all(expired, table.io), live.reachable_all(kept, table.io)))
        _s3_delete(settings, home, result.deleted_files)
        return result
    raise CommitFailedException(f"{home}: expiry lost the race to concurrent commits {attempts} times")


# ----------------------------------------------------------------------------------------- orphans

def listed(settings: Settings, home: str, location: str) -> list[tuple[str, float]]:
    """(s3:// path, LastModified epoch seconds) of every object under `location`."""
    u = urlparse(location)
    s3 = aws.client("s3", home, settings.aws)
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=u.netloc, Prefix=u.path.strip("/") + "/"):
        for o in page.get("Contents", []):
            out.append((f"{u.scheme}://{u.netloc}/{o['Key']}", o["LastModified"].timestamp()))
    return out


def remove_orphans(settings: Settings, home: str, min_age_s: float, dry_run: bool = False) -> list[str]:
    table = lake.load_table(settings, home)
    if table is None:
        raise RuntimeError(f"no table for home region {home}; create it with `homeflow lake init`")
    referenced = {table.metadata_location, *(e.metadata_file for e in table.metadata.metadata_log)}
    referenced |= lake.LiveFiles().reachable_all(table.metadata.snapshots, table.io)
    found = retention.orphans(listed(settings, home, table.metadata.location), referenced, time.time(), min_age_s)
    if found and not dry_run:
        _s3_delete(settings, home, found)
    return found


# -------------------------------------------------------------------------------------- compaction

@dataclass
class CompactResult:
    rewritten_files: int
    added_files: int


def start_jvm(settings: Settings, jar: Path):
    """The PyFlink gateway JVM with the connector jar: Iceberg's Java actions run in its local
    Flink environment."""
    if not jar.exists():
        raise RuntimeError(f"connector jar {jar} not found; build it with `mvn -q package`")
    aws.export_credentials_for_jvm(settings.aws)  # before the JVM starts
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # apache-beam, via pyflink
    os.environ.setdefault("LOG4J_PROPERTIES", str(Path(__file__).resolve().parent.parent / "conf" / "log4j-tools.properties"))
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    conf = Configuration()
    conf.set_string("pipeline.jars", jar.resolve().as_uri())
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(1)
    return env


@contextmanager
def _java_table(settings: Settings, home: str, jar: Path):
    """(local Flink environment, JVM view, the table as Java loads it), for Iceberg's Java code."""
    env = start_jvm(settings, jar)
    from pyflink.java_gateway import get_gateway
    from connectors.iceberg_sink import java_table
    with java_table(settings, home) as t:
        yield env, get_gateway().jvm, t


def compact(settings: Settings, home: str, target_bytes: int, jar: Path) -> CompactResult:
    with _java_table(settings, home, jar) as (env, jvm, t):
        if t.currentSnapshot() is None:
            return CompactResult(0, 0)
        r = (jvm.org.apache.iceberg.flink.actions.Actions.forTable(env._j_stream_execution_environment, t)
             .rewriteDataFiles().targetSizeInBytes(target_bytes).execute())
        return CompactResult(r.deletedDataFiles().size(), r.addedDataFiles().size())


@dataclass
class ResumeCheck:
    flink_job_id: str
    operator_id: str
    recorded: int | None  # flink.max-committed-checkpoint-id of its newest snapshot (None: none left)
    found: int            # what Iceberg's committer finds walking from the current snapshot (-1: nothing)

    @property
    def ok(self) -> bool:
        return self.found == self.recorded if self.recorded is not None else self.found >= 0


def resume_checks(settings: Settings, home: str, jar: Path, jobs: list[str] = ()) -> list[ResumeCheck]:
    """For every Flink job that committed to the table (newest snapshot per job and operator), and
    for the given job ids (e.g. the directory name of the checkpoint you are about to restore),
    the checkpoint id a restore of that job would find committed, by Iceberg's own code. A
    mismatch means a restore would commit that checkpoint's files again."""
    table = lake.load_table(settings, home)
    if table is None:
        return []
    newest: dict[tuple[str, str], int | None] = {}
    for s in sorted(table.metadata.snapshots, key=lambda x: x.sequence_number):
        extra = lake.summary(s)
        if extra.get(retention.FLINK_JOB_ID) and extra.get("flink.max-committed-checkpoint-id"):
            newest[(extra[retention.FLINK_JOB_ID], extra.get("flink.operator-id", ""))] = int(
                extra["flink.max-committed-checkpoint-id"])
    for job in jobs:
        if not any(j == job for j, _ in newest):
            newest[(job, "")] = None
    if not newest:
        return []
    with _java_table(settings, home, jar) as (_, jvm, t):
        probe = jvm.org.apache.iceberg.flink.sink.CommittedCheckpointProbe
        return [ResumeCheck(job, op, recorded, probe.maxCommittedCheckpointId(t, job, op))
                for (job, op), recorded in newest.items()]

"""Compaction inside the job (issue 10 items 4 and 6): with `homeflow.lake/compact.commits` set, the
regional job's compaction operator (dev.homeflow.flink.LakeCompactionFunction, Iceberg's planner,
reader, writer and rewrite commit on a thread of its own) rewrites the home table's small files
while the job commits once a second.

Proves, with events flowing in small waves (one small file per commit):
- the current snapshot's data files stay bounded: at most one per day partition from the last
  rewrite plus the files committed after it, against one file per commit without compaction
  (the control: the same table's appended files);
- a kill right after a rewrite, and a restore from the latest checkpoint: every event_id is in
  the lake exactly once (PyIceberg and DuckDB, an independent reader), and Iceberg's own committer
  code still finds the last committed checkpoint through the rewrite snapshots;
- compaction resumes after the restore (a rewrite after it): its trigger is counted from the
  table, not kept in state;
- with compaction and expiry turned off, a restore from the same checkpoint is refused with a
  message that names --allow-non-restored-state (the control), and with it the job restores and
  commits the events sent afterwards, every event once;
- snapshot expiry in the job (a few seconds' age, retain 1): restored with it on, the job expires
  the older snapshots and deletes the data files only they reached (the rewritten small files: the
  check that it deleted anything can fail), keeps every file a kept snapshot reads and the snapshot
  a published lake view names (older than the age: everything older than it is expired), every
  event is still read once, Iceberg's committer code still finds the last checkpoint, and a restore after the
  expiry commits the events sent afterwards, every event once."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from connectors import aws, duckdb_reader, lake, lake_seed, lake_view, maintenance, read_pointer
from connectors.producer import events, put
from drills import audit
from sandbox.jobrunner import start_job, wait_until
from sandbox.local_cluster import Sandbox
from sandbox.paths import ROOT
from tests.conftest import latest_checkpoint

pytestmark = pytest.mark.e2e
REGION = "us-east-1"
EVERY = 6  # compact.commits


def _replaces(table) -> list:
    return [s for s in sorted(table.metadata.snapshots, key=lambda s: s.sequence_number)
            if s.summary and s.summary.operation.value == "replace"]


def _appended_files(table) -> int:
    return sum(int(s.summary.additional_properties.get("added-data-files", 0))
               for s in table.metadata.snapshots if s.summary and s.summary.operation.value == "append")


def _data_objects(sb) -> set[str]:
    location = lake.load_table(sb.settings, REGION).metadata.location
    return {path for path, _ in maintenance.listed(sb.settings, REGION, location) if "/data/" in path}


def _data_files(table, snapshots) -> set[str]:
    return {p for p in lake.LiveFiles().reachable_all(snapshots, table.io) if "/data/" in p}


def _with_lake(sb, path, **props) -> object:
    groups = json.loads(sb.properties.read_text())
    next(g for g in groups if g["PropertyGroupId"] == "homeflow.lake")["PropertyMap"].update(props)
    path.write_text(json.dumps(groups))
    return path


def _resume_ok(sb) -> None:
    """Iceberg's committer code, as a restore runs it, finds the last committed checkpoint (run on
    a stopped job: a running one keeps committing, empty commits included)."""
    r = subprocess.run([sys.executable, "-m", "cli.main", "--properties", str(sb.properties), "lake", "resume",
                        "--region", REGION], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [x for x in r.stdout.splitlines() if "Flink job" in x]
    assert r.returncode == 0 and lines and all(x.endswith("ok") for x in lines), r.stdout + r.stderr


def _exactly_once(sb, ids: set[str]) -> None:
    rows = sb.lake_ids(REGION)
    assert len(rows) == len(ids) and set(rows) == ids, f"{len(rows)} rows for {len(ids)} events"
    assert duckdb_reader.count_rows(sb.settings, REGION) == (len(ids), len(ids))


def _later_events_once(sb, job, ids: set[str], seed: int, what: str) -> set[str]:
    """Sends a wave to the running `job` and requires it committed, and every event in the lake once."""
    late = list(events(REGION, 20, 8, seed=seed))
    put(sb.settings, REGION, [(e.key, e.to_json().encode()) for e in late])
    ids = ids | {e.event_id for e in late}
    wait_until(lambda: ids <= sb.committed_ids(REGION), 180, 1.0, [job], what)
    time.sleep(3)  # more checkpoints: a repeated commit would have landed by now
    _exactly_once(sb, ids)
    return ids


def test_the_job_compacts_its_home_table_and_restores_exactly_once(tmp_path):
    sb = Sandbox(tmp_path, 4587, [REGION], replicate=False,
                 lake={"compact.commits": str(EVERY), "compact.min.interval.ms": "3000"},
                 **{"read.publish.interval.ms": "0"}).up()
    ckpt = tmp_path / "ckpt"
    sent: list[str] = []
    stop = threading.Event()

    def produce(first_seed: int = 5000) -> None:
        wave = 0
        while not stop.is_set():  # a wave a second: about one small file per commit
            evs = list(events(REGION, 20, 8, seed=first_seed + wave))
            put(sb.settings, REGION, [(e.key, e.to_json().encode()) for e in evs])
            sent.extend(e.event_id for e in evs)
            wave += 1
            time.sleep(1.0)

    def table():
        return lake.load_table(sb.settings, REGION)

    producer = threading.Thread(target=produce, daemon=True)
    try:
        args = ["--checkpoint-dir", ckpt.as_uri()]
        job = start_job(REGION, sb.properties, tmp_path / "logs-0", extra_args=args)
        sb.jobs.append(job)
        wait_until(lambda: list(ckpt.glob("**/chk-*/_metadata")), 180, 1.0, [job], "first checkpoint")
        producer.start()
        wait_until(lambda: _replaces(table()), 240, 1.0, [job], "a rewrite by the job's compaction")

        # Kill right after a rewrite and a checkpoint: the restored committer walks through it.
        first_rewrite = _replaces(table())[-1].snapshot_id
        t = time.time()
        wait_until(lambda: (latest_checkpoint(ckpt) / "_metadata").stat().st_mtime > t, 60, 0.5, [job],
                   "a checkpoint after the rewrite")
        job.stop(signal.SIGKILL)
        job = start_job(REGION, sb.properties, tmp_path / "logs-1",
                        extra_args=[*args, "--restore", latest_checkpoint(ckpt).as_uri()])
        sb.jobs.append(job)
        wait_until(lambda: _replaces(table())[-1].snapshot_id != first_rewrite, 240, 1.0, [job],
                   "a rewrite after the restore")
        stop.set()
        producer.join(30)
        ids = set(sent)
        wait_until(lambda: ids <= sb.committed_ids(REGION), 180, 1.0, [job], "every event committed")
        time.sleep(4)  # more checkpoints: a repeated commit would have landed by now

        rows = sb.lake_ids(REGION)
        assert len(rows) == len(ids) == len(sent), f"{len(rows)} rows for {len(ids)} events ({len(sent)} sent)"
        assert set(rows) == ids
        t_now = table()
        assert duckdb_reader.count_rows(sb.settings, REGION) == (len(ids), len(ids))
        # The drills' audit dates each row by the append that committed it, reading the original
        # files past the rewrites: the same set, each once, and no row dated by a rewrite.
        dated = audit.table_rows(sb.settings, REGION)
        assert sorted(r.event_id for r in dated) == sorted(ids)
        rewrite_seqs = {s.sequence_number for s in _replaces(table())}
        assert rewrite_seqs and not {r.commit_seq for r in dated} & rewrite_seqs

        # Files in the current snapshot: the last rewrite's (one per day partition) plus what was
        # committed after it, far fewer than one per commit.
        snaps = sorted(t_now.metadata.snapshots, key=lambda s: s.sequence_number)
        last = max(i for i, s in enumerate(snaps) if s.summary.operation.value == "replace")
        after = sum(int(s.summary.additional_properties.get("added-data-files", 0)) for s in snaps[last + 1:])
        live = len(list(t_now.scan().plan_files()))
        days = len({repr(p.file.partition) for p in t_now.scan().plan_files()})
        appended = _appended_files(t_now)
        rewrites = len(_replaces(t_now))
        print(f"\n{len(ids)} events, {appended} files appended in {len(snaps) - rewrites} commits, "
              f"{rewrites} rewrites; current snapshot: {live} files ({after} since the last rewrite, {days} day(s))")
        assert live <= days + after + EVERY, (live, days, after)
        assert appended >= 2 * live, f"the control: without compaction there would be {appended} files, not {live}"

        job.stop(signal.SIGKILL)
        _resume_ok(sb)

        # Compaction and expiry turned off, restored from the same checkpoint: the checkpoint holds
        # the maintenance ticks' state, which the job no longer has. Flink refuses it, and the job
        # says what to do (the control); with --allow-non-restored-state it restores, and the
        # events sent afterwards are committed, every event once.
        off = _with_lake(sb, tmp_path / "maintenance-off.json", **{"compact.commits": "0", "expire.older.than.ms": "0"})
        restore = [*args, "--restore", latest_checkpoint(ckpt).as_uri()]
        refused = start_job(REGION, off, tmp_path / "logs-2", extra_args=restore)
        sb.jobs.append(refused)
        assert refused.proc.wait(300) == 2, refused.tail()
        assert "--allow-non-restored-state" in refused.log.read_text(errors="replace"), refused.tail()
        job = start_job(REGION, off, tmp_path / "logs-3", extra_args=[*restore, "--allow-non-restored-state"])
        sb.jobs.append(job)
        ids = _later_events_once(sb, job, ids, 9000, "the events sent after the restore")

        # Expiry in the job: restored with compaction back on and expiry at a 3 s age, retaining 1.
        job.stop(signal.SIGKILL)
        t_before = table()
        before = {s.snapshot_id for s in t_before.metadata.snapshots}
        old_files = _data_files(t_before, t_before.metadata.snapshots)
        s3 = aws.client("s3", REGION, sb.settings.aws)
        meta_before = lake_seed.read_object(s3, t_before.metadata_location)
        # A lake view published now names the current snapshot; it must outlive the age.
        pin = t_before.current_snapshot().snapshot_id
        aws.client("dynamodb", REGION, sb.settings.aws).put_item(TableName=read_pointer.POINTER_TABLE, Item={
            "table": {"S": lake_view.VIEW_KEY}, "version": {"N": "1"}, "tables": {"S": json.dumps(
                {REGION: {"metadata_location": t_before.metadata_location, "snapshot_id": pin}})}})
        expiring = _with_lake(sb, tmp_path / "expiry.json", **{
            "expire.older.than.ms": "3000", "expire.retain.last": "1", "expire.interval.ms": "2000"})
        job = start_job(REGION, expiring, tmp_path / "logs-4",
                        extra_args=[*args, "--restore", latest_checkpoint(ckpt).as_uri()])
        sb.jobs.append(job)
        stop.clear()
        producer = threading.Thread(target=produce, args=(7000,), daemon=True)
        producer.start()
        wait_until(lambda: old_files - _data_objects(sb), 180, 1.0, [job], "data files deleted by the job's expiry")
        stop.set()
        producer.join(30)
        ids |= set(sent)
        wait_until(lambda: ids <= sb.committed_ids(REGION), 180, 1.0, [job], "every event committed with expiry on")
        time.sleep(4)  # an expiry round (every 2 s) after the last commits
        job.stop(signal.SIGKILL)
        t_after = table()
        kept = list(t_after.metadata.snapshots)
        objects = _data_objects(sb)
        deleted = old_files - objects
        meta_after = lake_seed.read_object(s3, t_after.metadata_location)
        print(f"expiry: {len(before)} snapshots before, {len(before - {s.snapshot_id for s in kept})} of them "
              f"expired, {len(kept)} kept; {len(deleted)} of {len(old_files)} data files deleted; metadata file "
              f"{len(meta_before) / 1024:.1f} KiB -> {len(meta_after) / 1024:.1f} KiB")
        assert before - {s.snapshot_id for s in kept} == before - {pin}, "expired: all but the view's snapshot"
        log = "".join(f.read_text(errors="replace") for f in (tmp_path / "logs-4").rglob("*.log"))
        assert f"(view pins {pin})" in log, "the job's expiry did not read the published view"
        missing = _data_files(t_after, kept) - objects
        assert not missing, f"{len(missing)} files of kept snapshots were deleted, e.g. {sorted(missing)[:3]}"
        assert deleted, "expiry deleted no data file"
        _exactly_once(sb, ids)
        _resume_ok(sb)

        # A restore after the expiry: the committer finds its checkpoint, nothing is committed twice.
        job = start_job(REGION, expiring, tmp_path / "logs-5",
                        extra_args=[*args, "--restore", latest_checkpoint(ckpt).as_uri()])
        sb.jobs.append(job)
        _later_events_once(sb, job, ids, 9500, "the events sent after expiry's restore")
    finally:
        stop.set()
        sb.down()

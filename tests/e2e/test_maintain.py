"""`homeflow maintain` on a table the Flink job writes: compaction, expiry and orphan removal
leave every event once, and a job restored from its checkpoint after maintenance neither loses
nor repeats a commit. The control shows why the Flink rule exists: expiry that keeps only "the
last N" snapshots makes Iceberg's committer find nothing committed, i.e. a restore would commit
the checkpoint again."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest

from sandbox.jobrunner import start_job, wait_until
from sandbox.local_cluster import Sandbox
from sandbox.paths import ROOT
from connectors import aws, lake, maintenance
from connectors.producer import events, put
from tests.conftest import latest_checkpoint

pytestmark = pytest.mark.e2e
REGION = "us-east-1"


def cli(sb, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", "--properties", str(sb.properties), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def homeflow(sb, *args) -> str:
    r = cli(sb, *args)
    assert r.returncode == 0, f"homeflow {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.stdout


def resume_line(sb, *extra) -> str:
    r = cli(sb, "lake", "resume", "--region", REGION, *extra)
    lines = [x for x in r.stdout.splitlines() if "Flink job" in x]
    assert lines, f"no Flink commits reported:\n{r.stdout}\n{r.stderr}"
    return lines[-1] if len(lines) == 1 else "\n".join(lines)


def test_maintenance_keeps_exactly_once_across_a_restore(tmp_path):
    # No read publisher: its lake view would pin the job's last commit against expiry (as it
    # should, connectors/maintenance.view_pins), and the control below expires exactly that.
    # No compaction inside the job either: this test is about `homeflow maintain`.
    sb = Sandbox(tmp_path, 4589, [REGION], lake={"compact.commits": "0"}, **{"read.publish.interval.ms": "0"}).up()
    ckpt = tmp_path / "ckpt"
    sent: list[str] = []

    def produce_batches(seed: int, batches: int, job) -> None:
        for b in range(batches):  # each batch its own commit: many small files
            evs = list(events(REGION, 40, 8, seed=seed * 100 + b))
            put(sb.settings, REGION, [(e.key, e.to_json().encode()) for e in evs])
            sent.extend(e.event_id for e in evs)
            wait_until(lambda: set(sent) <= sb.committed_ids(REGION), 180, 0.5, [job], f"batch {seed}.{b} committed")

    def kill_after_a_checkpoint(job) -> None:
        t = time.time()
        wait_until(lambda: (latest_checkpoint(ckpt) / "_metadata").stat().st_mtime > t, 60, 0.5, [job],
                   "a checkpoint after the last commit")
        job.stop(signal.SIGKILL)

    def assert_once() -> None:
        ids = sb.lake_ids(REGION)
        assert sorted(ids) == sorted(sent), f"{len(ids)} rows for {len(sent)} events"

    try:
        job = start_job(REGION, sb.properties, tmp_path / "logs-0", extra_args=["--checkpoint-dir", ckpt.as_uri()])
        sb.jobs.append(job)
        wait_until(lambda: list(ckpt.glob("**/chk-*/_metadata")), 180, 1.0, [job], "first checkpoint")
        produce_batches(1, 6, job)
        kill_after_a_checkpoint(job)
        before = maintenance.stats(lake.load_table(sb.settings, REGION))
        assert before.data_files >= 4, f"expected several small files, got {before.line()}"

        # An unreferenced file older than the orphan age (everything is, at 0s) goes; the rest stays.
        table = lake.load_table(sb.settings, REGION)
        bucket, prefix = table.location().removeprefix("s3://").split("/", 1)
        s3 = aws.client("s3", REGION, sb.settings.aws)
        s3.put_object(Bucket=bucket, Key=f"{prefix}/data/orphan-from-a-crashed-writer.parquet", Body=b"x")

        out = homeflow(sb, "maintain", "--region", REGION, "--expire-older-than", "0s", "--retain-last", "1",
                       "--orphan-age", "0s", "--allow-short-orphan-age")
        print(out)
        after = maintenance.stats(lake.load_table(sb.settings, REGION))
        days = {datetime.fromtimestamp(r / 1000, timezone.utc).date()
                for r in lake.read_rows(sb.settings, REGION, ("ts",))["ts"].to_pylist()}
        assert f"{before.data_files} files rewritten into {len(days)}" in out, out
        assert after.data_files == len(days)
        assert after.snapshots < before.snapshots, (before.line(), after.line())
        assert "keeping the chain down to snapshot" in out
        listed = {k["Key"] for k in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
        assert f"{prefix}/data/orphan-from-a-crashed-writer.parquet" not in listed
        assert_once()
        assert resume_line(sb).endswith("ok"), "expiry cut the chain a restored committer walks"

        # The job restored from its checkpoint after maintenance: nothing committed twice or lost.
        job = start_job(REGION, sb.properties, tmp_path / "logs-1",
                        extra_args=["--checkpoint-dir", ckpt.as_uri(), "--restore", latest_checkpoint(ckpt).as_uri()])
        sb.jobs.append(job)
        # ... and maintenance again while it runs and commits (its expiry plans against a moving
        # head; a long orphan age, as in production, spares the writer's in-flight files).
        concurrent: list = []
        t = threading.Thread(target=lambda: concurrent.append(
            cli(sb, "maintain", "--region", REGION, "--expire-older-than", "0s", "--retain-last", "1")))
        produce_batches(2, 1, job)
        t.start()
        produce_batches(3, 4, job)
        t.join(300)
        assert concurrent and concurrent[0].returncode == 0, concurrent and concurrent[0].stderr[-3000:]
        print(concurrent[0].stdout)
        produce_batches(4, 2, job)  # two fresh files for the control's compaction
        time.sleep(3)  # more checkpoints: a repeated commit would have landed by now
        assert_once()
        kill_after_a_checkpoint(job)

        # Control: compact (a non-Flink snapshot on top), then expire keeping only the newest
        # snapshot, ignoring the Flink rule. Iceberg's committer then finds nothing committed.
        out = homeflow(sb, "maintain", "--region", REGION, "--expire-older-than", "100d")
        rewritten = re.search(r"compaction: (\d+) files rewritten", out)
        assert rewritten and int(rewritten.group(1)) >= 2, out
        line = resume_line(sb)
        assert line.endswith("ok"), line
        job_id = line.split("Flink job ")[1].split()[0]
        assert (ckpt / REGION / job_id).is_dir(), f"{job_id} is not the job whose checkpoints are in {ckpt}"
        unsafe = maintenance.expire(sb.settings, REGION, older_than_s=0, retain_last=1, protect_flink=False)
        assert unsafe.committed and unsafe.plan.expire
        line = resume_line(sb, "--job", job_id)
        assert "no snapshot of it left; a restore would find -1: WOULD COMMIT AGAIN" in line, line
        print(f"\nrows {len(sent)} once; before {before.line()}\nafter {after.line()}\ncontrol: {line}")
    finally:
        sb.down()

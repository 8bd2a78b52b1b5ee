"""`homeflow deploy` end to end against the sandbox's Managed Flink stand-in: the zip (its layout
and the uber-jar's size checked first) is uploaded,
the stack updated and the application created, started, snapshotted, failed (an instance failure,
recovered by the service from its latest checkpoint), updated with a new zip while it runs, rolled back, stopped and started again, each time restored from the snapshot the service
keeps, and the lake holds every event exactly once across all of it. A control starts without a
snapshot and shows that the check can fail."""
from __future__ import annotations

import collections
import shutil
import zipfile

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from cli.main import main
from cli.package import RUN_OPTIONS, build_zip
from connectors import aws
from connectors.producer import events, put
from drills.backends import RECOVERY_OP, inject_failure
from sandbox import services
from sandbox.jobrunner import wait_until
from sandbox.local_cluster import Sandbox

pytestmark = pytest.mark.e2e
PORT = 4585  # its stand-in's Flink cluster: REST 4685, RPC 5685
REGION = "us-east-1"


def _cli(sb, capsys, *argv) -> str:
    code = main(["--properties", str(sb.properties), *argv])
    out = capsys.readouterr()
    with open(sb.root / "cli.log", "a") as f:  # what a person would have seen, for a failure's diagnosis
        f.write(f"$ homeflow {' '.join(argv)}\n{out.out}{out.err}")
    assert code == 0, out.out + out.err
    return out.out


def _send(sb, n: int, seed: int) -> set[str]:
    evs = list(events(REGION, n, 25, seed=seed))
    put(sb.settings, REGION, [(e.key, e.to_json().encode()) for e in evs])
    return {e.event_id for e in evs}


def _second_build(zip_path, out):
    """The same code with one more file: another content hash, as a new release would have."""
    shutil.copy(zip_path, out)
    with zipfile.ZipFile(out, "a") as z:
        z.writestr("RELEASE", "2\n")
    return out


def _check_layout(zip_path):
    with zipfile.ZipFile(zip_path) as z:
        names = set(z.namelist())
        jar = z.getinfo(RUN_OPTIONS["jarfile"]).file_size
    assert {RUN_OPTIONS["python"], RUN_OPTIONS["jarfile"], "jobs/ingest.py"} <= names
    assert any(n.startswith(f"{RUN_OPTIONS['pyFiles']}boto3/") for n in names)
    # Only what the job loads (pom.xml's shade filters): 218 MB before them.
    assert jar / 1e6 <= 80, f"uber-jar is {jar / 1e6:.1f} MB"
    print(f"jar {jar / 1e6:.1f} MB, zip {zip_path.stat().st_size / 1e6:.1f} MB")


def test_deploy_update_rollback_and_restarts_keep_exactly_once(tmp_path, capsys):
    zip1 = build_zip(tmp_path / "app-1.zip")
    _check_layout(zip1)
    zip2 = _second_build(zip1, tmp_path / "app-2.zip")
    sb = Sandbox(tmp_path, PORT, [REGION]).up()
    kda = aws.client("kinesisanalyticsv2", REGION, sb.settings.aws)
    counts: collections.Counter = collections.Counter()
    sent: set[str] = set()

    def all_committed_once(ids: set[str]) -> bool:
        counts.clear()
        counts.update(sb.lake_ids(REGION))
        return ids <= set(counts)

    def deployed_key() -> str:
        d = kda.describe_application(ApplicationName="homeflow")["ApplicationDetail"]
        return d["ApplicationConfigurationDescription"]["ApplicationCodeConfigurationDescription"][
            "CodeContentDescription"]["S3ApplicationCodeLocationDescription"]["FileKey"]

    try:
        out = _cli(sb, capsys, "deploy", "apply", "--region", REGION, "--zip", str(zip1))
        assert "uploaded" in out and "stack homeflow-us-east-1: updated" in out and "created, version 1, READY" in out
        key1 = deployed_key()
        out = _cli(sb, capsys, "deploy", "plan", "--region", REGION, "--zip", str(zip1))
        assert "already uploaded" in out and "stack     homeflow-us-east-1: unchanged" in out, out
        assert "app       homeflow: unchanged" in out, out

        _cli(sb, capsys, "deploy", "app", "start", "--region", REGION, "--restore", "none")
        sent |= _send(sb, 300, 1)
        wait_until(lambda: all_committed_once(sent), 180, 2.0, what="wave 1 committed")

        out = _cli(sb, capsys, "deploy", "snapshots", "create", "--region", REGION, "--name", "before-release-2")
        assert "READY (version 1)" in out

        # The service's automatic recovery: an instance failure (the sandbox's fault injection, no
        # API call) and the application restarts by itself from its latest checkpoint, not from
        # the snapshot just taken; the waves around it are committed once (checked at the end).
        sent |= _send(sb, 100, 8)  # seeds 1-7 are the other waves' and the control's
        inject_failure(sb.settings, REGION, "homeflow")
        sent |= _send(sb, 100, 9)

        def recovered():
            ops = kda.list_application_operations(ApplicationName="homeflow")["ApplicationOperationInfoList"]
            done = [o["OperationStatus"] for o in ops if o["Operation"] == RECOVERY_OP]
            assert "FAILED" not in done, ops
            return done == ["SUCCESSFUL"]
        wait_until(recovered, 180, 1.0, what="the application's automatic recovery")
        run_log = (services.managed_flink_dir(sb.state) / REGION / "applications" / "homeflow" / "flink-run.log")
        last = run_log.read_text().split("--- ")[-1].splitlines()[0]
        assert "/checkpoints/us-east-1/" in last and "/chk-" in last, last
        assert "RUNNING" in _cli(sb, capsys, "deploy", "app", "status", "--region", REGION)
        wait_until(lambda: all_committed_once(sent), 180, 2.0, what="waves 8-9 committed after the recovery")

        # A stale version id is refused: the guard of every change.
        with pytest.raises(ClientError) as e:
            kda.update_application(ApplicationName="homeflow", CurrentApplicationVersionId=7,
                                   ApplicationConfigurationUpdate={})
        assert e.value.response["Error"]["Code"] == "ConcurrentModificationException"

        out = _cli(sb, capsys, "deploy", "plan", "--region", REGION, "--zip", str(zip2))
        assert "upload" in out and "parameter CodeKey" in out and "FileKey" in out and "RUNNING: snapshot" in out, out
        sent |= _send(sb, 200, 2)  # in flight while the update snapshots, stops and restarts the job
        out = _cli(sb, capsys, "deploy", "apply", "--region", REGION, "--zip", str(zip2))
        assert "version 1 -> 2, UPDATING" in out and "RUNNING (version 2)" in out, out
        key2 = deployed_key()
        assert key2 != key1
        sent |= _send(sb, 200, 3)
        wait_until(lambda: all_committed_once(sent), 180, 2.0, what="waves 2-3 committed after the update")
        last = run_log.read_text().split("--- ")[-1]
        code_dir = services.managed_flink_dir(sb.state) / REGION / "applications" / "homeflow" / "code"
        assert f"code from {code_dir}/{key2}" in last and "restoring from file:" in last, last[-3000:]

        out = _cli(sb, capsys, "deploy", "rollback", "--region", REGION)
        assert "to the configuration of version 1 (as version 3)" in out and "RUNNING (version 3)" in out, out
        assert deployed_key() == key1
        sent |= _send(sb, 200, 4)
        wait_until(lambda: all_committed_once(sent), 180, 2.0, what="wave 4 committed after the rollback")

        out = _cli(sb, capsys, "deploy", "app", "stop", "--region", REGION)
        assert "READY (version 3)" in out
        snaps = kda.list_application_snapshots(ApplicationName="homeflow")["SnapshotSummaries"]
        assert len(snaps) == 4 and {s["SnapshotStatus"] for s in snaps} == {"READY"}, snaps  # manual + 3 automatic
        sent |= _send(sb, 200, 5)  # while stopped
        _cli(sb, capsys, "deploy", "app", "start", "--region", REGION)  # from the stop's snapshot
        wait_until(lambda: all_committed_once(sent), 180, 2.0, what="wave 5 committed after the restart")
        dups = {k: c for k, c in counts.items() if c > 1 and not k.startswith("canary")}
        assert dups == {}, f"{len(dups)} events committed twice"
        assert set(counts) - sent <= {k for k in counts if k.startswith("canary")}

        out = _cli(sb, capsys, "deploy", "app", "status", "--region", REGION)
        assert "RUNNING, version 3" in out and "rolled back from version 2 to the configuration of version 1" in out
        _cli(sb, capsys, "deploy", "snapshots", "delete", "--region", REGION, "--name", "before-release-2")
        assert "before-release-2" not in _cli(sb, capsys, "deploy", "snapshots", "list", "--region", REGION)

        # Control: a forced stop, the dedup's seeding from the lake turned off through the API
        # (an operator's property change, no restart while READY) and a start without a
        # snapshot: the job re-reads the stream from its start with empty state, and the same
        # check sees every event twice.
        _cli(sb, capsys, "deploy", "app", "stop", "--region", REGION, "--force")
        d = kda.describe_application(ApplicationName="homeflow")["ApplicationDetail"]
        groups = d["ApplicationConfigurationDescription"]["EnvironmentPropertyDescriptions"]["PropertyGroupDescriptions"]
        for g in groups:
            if g["PropertyGroupId"] == "homeflow.job":
                g["PropertyMap"]["dedup.seed"] = "none"
        r = kda.update_application(ApplicationName="homeflow", CurrentApplicationVersionId=d["ApplicationVersionId"],
                                   ApplicationConfigurationUpdate={"EnvironmentPropertyUpdates": {"PropertyGroups": groups}})
        assert (r["ApplicationDetail"]["ApplicationStatus"], r["ApplicationDetail"]["ApplicationVersionId"]) == ("READY", 4)
        _cli(sb, capsys, "deploy", "app", "start", "--region", REGION, "--restore", "none")
        marker = _send(sb, 10, 6)
        wait_until(lambda: all_committed_once(marker), 180, 2.0, what="the control's marker")
        twice = {k for k, c in counts.items() if c > 1}
        assert sent <= twice, f"the control found only {len(sent & twice)} of {len(sent)} events twice"
        _cli(sb, capsys, "deploy", "app", "stop", "--region", REGION, "--force")
    finally:
        sb.down()
    left = [p for p in services.managed_flink_dir(sb.state).glob("*/applications/*/cluster/pid/*.pid")
            if p.read_text().strip()]
    assert left == [], "the stand-in's Flink clusters outlived the sandbox"


def test_unknown_operations_and_bad_calls_are_the_services_errors(tmp_path):
    """Without running anything: the stand-in answers with the API's error codes."""
    sb = Sandbox(tmp_path, PORT, [REGION], replicate=False)
    services.start(sb.settings, sb.state)
    try:
        kda = aws.client("kinesisanalyticsv2", REGION, sb.settings.aws)
        with pytest.raises(ClientError) as e:
            kda.describe_application(ApplicationName="nope")
        assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
        with pytest.raises(ClientError) as e:
            kda.start_application(ApplicationName="nope")
        assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
        req = dict(ApplicationName="a", RuntimeEnvironment="FLINK-1_20", ServiceExecutionRole="arn:aws:iam::1:role/r",
                   ApplicationConfiguration={"ApplicationCodeConfiguration": {
                       "CodeContentType": "ZIPFILE",
                       "CodeContent": {"S3ContentLocation": {"BucketARN": "arn:aws:s3:::b", "FileKey": "k"}}}})
        assert kda.create_application(**req)["ApplicationDetail"]["ApplicationStatus"] == "READY"
        with pytest.raises(ClientError) as e:
            kda.create_application(**req)
        assert e.value.response["Error"]["Code"] == "ResourceInUseException"
        with pytest.raises(ClientError) as e:  # not RUNNING
            kda.create_application_snapshot(ApplicationName="a", SnapshotName="s")
        assert e.value.response["Error"]["Code"] == "ResourceInUseException"
        # The code does not exist: the start fails, the operation says why, the app is READY again.
        op = kda.start_application(ApplicationName="a")["OperationId"]
        wait_until(lambda: kda.describe_application_operation(ApplicationName="a", OperationId=op)[
            "ApplicationOperationInfoDetails"]["OperationStatus"] != "IN_PROGRESS", 60, 0.5, what="start to fail")
        info = kda.describe_application_operation(ApplicationName="a", OperationId=op)["ApplicationOperationInfoDetails"]
        assert info["OperationStatus"] == "FAILED" and "s3://b/k" in info["OperationFailureDetails"]["ErrorInfo"][
            "ErrorString"], info
        assert kda.describe_application(ApplicationName="a")["ApplicationDetail"]["ApplicationStatus"] == "READY"
        # The region gate covers the control plane: a lost region's API does not answer.
        services.lose(sb.settings, REGION)
        slow = boto3.client("kinesisanalyticsv2", region_name=REGION, endpoint_url=sb.settings.aws.endpoint,
                            aws_access_key_id="test", aws_secret_access_key="test",
                            config=Config(retries={"max_attempts": 1}))
        with pytest.raises(ClientError) as e:
            slow.list_applications()
        assert e.value.response["Error"]["Code"] == "ServiceUnavailableException"
    finally:
        services.stop(sb.settings, sb.state)

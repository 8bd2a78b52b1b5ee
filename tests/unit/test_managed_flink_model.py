"""The Managed Flink stand-in's rules (sandbox/managed_flink/model.py) and the deploy's diff
(connectors/managed_flink.py), without running anything."""
from __future__ import annotations

import boto3
import pytest
from botocore.validate import validate_parameters

from conf.settings import load
from connectors import managed_flink
from sandbox.managed_flink.model import CUSTOM, LATEST, SKIP, ApiError, describe_config, merge_update, new_application
from sandbox.paths import LOCAL_PROPERTIES


def _req(key="code-1.zip", snapshots=True):
    return {"ApplicationName": "homeflow", "RuntimeEnvironment": "FLINK-1_20",
            "ServiceExecutionRole": "arn:aws:iam::123456789012:role/r",
            "ApplicationConfiguration": {
                "ApplicationCodeConfiguration": {"CodeContentType": "ZIPFILE", "CodeContent": {
                    "S3ContentLocation": {"BucketARN": "arn:aws:s3:::code", "FileKey": key}}},
                "ApplicationSnapshotConfiguration": {"SnapshotsEnabled": snapshots},
                "EnvironmentProperties": {"PropertyGroups": [
                    {"PropertyGroupId": "homeflow.job", "PropertyMap": {"parallelism": "1"}}]}}}


def _running(app):
    app.start(None)
    app.status = "RUNNING"
    app.ran.append(app.version_id)
    return app


def _ready_snapshot(app, name):
    s = app.add_snapshot(name)
    s.status, s.location = "READY", f"file:/sp/{name}"
    return s


def _code(app):
    return app.config["ApplicationCodeConfiguration"]["CodeContent"]["S3ContentLocation"]["FileKey"]


def test_create_starts_ready_at_version_1_and_refuses_non_zip_code():
    app = new_application(_req(), "us-east-1", "123456789012")
    assert (app.status, app.version_id) == ("READY", 1)
    assert app.arn == "arn:aws:kinesisanalytics:us-east-1:123456789012:application/homeflow"
    bad = _req()
    bad["ApplicationConfiguration"]["ApplicationCodeConfiguration"]["CodeContentType"] = "PLAINTEXT"
    with pytest.raises(ApiError) as e:
        new_application(bad, "us-east-1", "1")
    assert e.value.code == "InvalidArgumentException"


def test_every_call_is_refused_in_the_wrong_status():
    app = new_application(_req(), "us-east-1", "1")
    for call in (lambda: app.stop(False), lambda: app.add_snapshot("s"), lambda: app.rollback(1)):
        with pytest.raises(ApiError) as e:
            call()
        assert e.value.code == "ResourceInUseException", e.value.message
    app.start(None)
    assert app.status == "STARTING"
    for call in (lambda: app.start(None), lambda: app.update(1, {}, None), lambda: app.stop(False)):
        with pytest.raises(ApiError) as e:
            call()
        assert e.value.code == "ResourceInUseException"
    op, snap = app.stop(True)  # Force works while starting
    assert app.status == "FORCE_STOPPING" and snap is False


def test_changes_must_name_the_current_version():
    app = new_application(_req(), "us-east-1", "1")
    with pytest.raises(ApiError) as e:
        app.update(2, {}, None)
    assert e.value.code == "ConcurrentModificationException"
    op, restart = app.update(1, {"ApplicationCodeConfigurationUpdate": {"CodeContentUpdate": {
        "S3ContentLocationUpdate": {"FileKeyUpdate": "code-2.zip"}}}}, None)
    assert (app.version_id, restart, op.version_change, app.status) == (2, False, (1, 2), "READY")
    assert _code(app) == "code-2.zip" and app.versions[1] != app.versions[2]
    with pytest.raises(ApiError) as e:
        app.update(1, {}, None)
    assert e.value.code == "ConcurrentModificationException"


def test_restore_choices():
    app = _running(new_application(_req(), "us-east-1", "1"))
    assert app.resolve_restore({"ApplicationRestoreType": LATEST}) is None  # no snapshot yet: no state
    old = _ready_snapshot(app, "a")
    old.created -= 10
    new = _ready_snapshot(app, "b")
    creating = app.add_snapshot("c")
    creating.created += 10  # newest, but not READY: not restorable
    assert app.resolve_restore({"ApplicationRestoreType": LATEST}) is new
    assert app.resolve_restore({"ApplicationRestoreType": CUSTOM, "SnapshotName": "a"}) is old
    assert app.resolve_restore({"ApplicationRestoreType": SKIP}) is None
    for bad in ({"ApplicationRestoreType": CUSTOM}, {"ApplicationRestoreType": CUSTOM, "SnapshotName": "c"}):
        with pytest.raises(ApiError) as e:
            app.resolve_restore(bad)
        assert e.value.code == "InvalidArgumentException"
    with pytest.raises(ApiError) as e:
        app.resolve_restore({"ApplicationRestoreType": CUSTOM, "SnapshotName": "zz"})
    assert e.value.code == "ResourceNotFoundException"


def test_snapshots_need_them_enabled_unique_names_and_the_right_timestamp_to_delete():
    off = _running(new_application(_req(snapshots=False), "us-east-1", "1"))
    with pytest.raises(ApiError):
        off.add_snapshot("s")
    assert off.stop(False)[1] is False  # no snapshot on the way down either
    app = _running(new_application(_req(), "us-east-1", "1"))
    s = _ready_snapshot(app, "s")
    with pytest.raises(ApiError) as e:
        app.add_snapshot("s")
    assert e.value.code == "ResourceInUseException"
    with pytest.raises(ApiError) as e:
        app.delete_snapshot("s", s.created + 5)
    assert e.value.code == "InvalidArgumentException"
    assert app.delete_snapshot("s", s.created).status == "DELETING"


def test_rollback_goes_to_the_previous_version_that_ran_and_needs_a_snapshot():
    app = _running(new_application(_req("code-1.zip"), "us-east-1", "1"))
    upd = {"ApplicationCodeConfigurationUpdate": {"CodeContentUpdate": {"S3ContentLocationUpdate": {
        "FileKeyUpdate": "code-2.zip"}}}}
    op, restart = app.update(1, upd, None)
    assert restart and app.status == "UPDATING"
    with pytest.raises(ApiError) as e:  # no snapshot yet
        app.rollback(2)
    assert e.value.code == "InvalidRequestException"
    app.status = "RUNNING"
    app.ran.append(2)
    _ready_snapshot(app, "s")
    with pytest.raises(ApiError) as e:
        app.rollback(1)
    assert e.value.code == "ConcurrentModificationException"
    op, target = app.rollback(2)
    assert (target, app.version_id, app.status, _code(app)) == (1, 3, "ROLLING_BACK", "code-1.zip")
    assert app.detail()["ApplicationVersionRolledBackFrom"] == 2 and app.detail()["ApplicationVersionRolledBackTo"] == 1
    assert app.restore == {"ApplicationRestoreType": LATEST}


def test_an_update_stuck_before_running_rolls_back_to_the_version_that_last_ran():
    app = _running(new_application(_req("code-1.zip"), "us-east-1", "1"))
    _ready_snapshot(app, "s")
    app.update(1, {"ApplicationCodeConfigurationUpdate": {"CodeContentUpdate": {"S3ContentLocationUpdate": {
        "FileKeyUpdate": "code-2.zip"}}}}, None)
    assert app.status == "UPDATING"
    assert app.rollback(2)[1] == 1 and _code(app) == "code-1.zip"


def test_merge_update_replaces_property_groups_whole_and_merges_structures():
    cfg = _req()["ApplicationConfiguration"]
    new = merge_update(cfg, {"EnvironmentPropertyUpdates": {"PropertyGroups": [
        {"PropertyGroupId": "other", "PropertyMap": {"a": "b"}}]},
        "FlinkApplicationConfigurationUpdate": {"ParallelismConfigurationUpdate": {"ParallelismUpdate": 4}}})
    assert new["EnvironmentProperties"]["PropertyGroups"] == [{"PropertyGroupId": "other", "PropertyMap": {"a": "b"}}]
    assert new["FlinkApplicationConfiguration"]["ParallelismConfiguration"]["Parallelism"] == 4
    assert new["ApplicationCodeConfiguration"] == cfg["ApplicationCodeConfiguration"]


def test_the_deploy_diff_round_trips_through_the_services_description():
    """apply's desired application, created, described and read back, has no changes; a new zip
    and a changed property are exactly the update's changes, and both calls pass botocore's
    validation of the API's shapes."""
    s = load(LOCAL_PROPERTIES)
    kda = boto3.client("kinesisanalyticsv2", region_name="us-east-1")
    params = managed_flink.stack_parameters(s, "us-east-1",
                                            managed_flink.Code(LOCAL_PROPERTIES, "code-bucket", "homeflow-1.zip"))
    want = managed_flink.desired_application(s, "us-east-1", params, "arn:aws:iam::123456789012:role/r", kda)
    validate_parameters(want, kda.meta.service_model.operation_model("CreateApplication").input_shape)
    app = new_application(want, "us-east-1", "123456789012")
    current = managed_flink._current_config(
        {"ApplicationConfigurationDescription": describe_config(app.config, app.restore)})
    assert managed_flink.config_changes(current, want["ApplicationConfiguration"]) == ({}, [])

    params2 = managed_flink.stack_parameters(s, "us-east-1",
                                             managed_flink.Code(LOCAL_PROPERTIES, "code-bucket", "homeflow-2.zip"))
    params2["Parallelism"] = "2"
    want2 = managed_flink.desired_application(s, "us-east-1", params2, "arn:aws:iam::123456789012:role/r", kda)
    update, lines = managed_flink.config_changes(current, want2["ApplicationConfiguration"])
    assert lines == [
        "ApplicationCodeConfiguration.CodeContent.S3ContentLocation.FileKey: homeflow-1.zip -> homeflow-2.zip",
        "FlinkApplicationConfiguration.ParallelismConfiguration.Parallelism: 1 -> 2",
        "property homeflow.job/parallelism: 1 -> 2"], lines
    validate_parameters({"ApplicationName": "homeflow", "CurrentApplicationVersionId": 1,
                         "ApplicationConfigurationUpdate": update},
                        kda.meta.service_model.operation_model("UpdateApplication").input_shape)
    app.update(1, update, None)
    after = managed_flink._current_config(
        {"ApplicationConfigurationDescription": describe_config(app.config, app.restore)})
    assert managed_flink.config_changes(after, want2["ApplicationConfiguration"]) == ({}, [])


def test_a_stack_parameter_the_template_does_not_declare_is_named():
    s = load(LOCAL_PROPERTIES)
    code = managed_flink.Code(LOCAL_PROPERTIES, "code-bucket", "homeflow-1.zip")
    assert (managed_flink.stack_parameters(s, "us-east-1", code, {"ReplicationEnabled": "true"})["ReplicationEnabled"]
            == "true")
    with pytest.raises(managed_flink.DeployError) as e:
        managed_flink.stack_parameters(s, "us-east-1", code, {"ReplicationEnabeld": "true"})
    assert "ReplicationEnabeld" in str(e.value) and "ReplicationEnabled" in str(e.value)


def test_allow_non_restored_state_is_what_the_last_start_or_update_said_and_valid_for_the_api():
    """The deploy CLI sends AllowNonRestoredState on every start and update of a running
    application; the stand-in keeps it for later restarts as the service does."""
    kda = boto3.client("kinesisanalyticsv2", region_name="us-east-1")
    app = new_application(_req(), "us-east-1", "1")
    start = {"ApplicationRestoreConfiguration": managed_flink.restore_configuration("latest"),
             **managed_flink.flink_run_configuration(True)}
    validate_parameters({"ApplicationName": "homeflow", "RunConfiguration": start},
                        kda.meta.service_model.operation_model("StartApplication").input_shape)
    app.start(start)
    assert app.allow_non_restored
    app.status = "RUNNING"
    update = {"ApplicationRestoreConfiguration": managed_flink.restore_configuration("latest"),
              **managed_flink.flink_run_configuration(False)}
    validate_parameters({"ApplicationName": "homeflow", "CurrentApplicationVersionId": 1,
                         "RunConfigurationUpdate": update},
                        kda.meta.service_model.operation_model("UpdateApplication").input_shape)
    app.update(1, None, update)
    assert not app.allow_non_restored  # an update that does not ask for it does not inherit it
    app.status = "RUNNING"
    app.update(2, None, {"FlinkRunConfiguration": {"AllowNonRestoredState": True}})
    assert app.allow_non_restored
    app.status = "RUNNING"
    app.update(3, None, None)  # no run configuration in the request: the setting stays
    assert app.allow_non_restored


def test_a_release_keeps_the_stack_parameters_it_does_not_set():
    """CloudFormation resets a parameter an update leaves out to the template's default: the
    second pass's ReplicationEnabled=true must survive the next `deploy apply` without it."""
    s = load(LOCAL_PROPERTIES)
    code = managed_flink.Code(LOCAL_PROPERTIES, "code-bucket", "homeflow-2.zip")
    derived = managed_flink.stack_parameters(s, "us-east-1", code)
    stack = {"Parameters": [{"ParameterKey": "ReplicationEnabled", "ParameterValue": "true"},
                            {"ParameterKey": "IngestShards", "ParameterValue": "4"},
                            {"ParameterKey": "CodeKey", "ParameterValue": "homeflow-1.zip"},
                            {"ParameterKey": "RemoteRegions", "ParameterValue": "['eu-west-1', 'ap-south-1']"},
                            {"ParameterKey": "NotInTheTemplateAnyMore", "ParameterValue": "x"}]}
    kept = managed_flink.keep_previous(derived, stack)
    assert kept["ReplicationEnabled"] == "true" and kept["IngestShards"] == "4"
    assert kept["CodeKey"] == "homeflow-2.zip"  # derived and given values win over the stack's
    assert kept["RemoteRegions"] == derived["RemoteRegions"]
    assert "NotInTheTemplateAnyMore" not in kept
    assert managed_flink.keep_previous(derived, None) == derived  # a new stack: the template's defaults
    # control: what an update sent before, which CloudFormation resets to ReplicationEnabled=false
    assert "ReplicationEnabled" not in derived


def test_automatic_recovery_is_an_operation_of_a_running_application_only():
    from sandbox.managed_flink.model import RECOVERY
    app = new_application(_req(), "us-east-1", "123456789012")
    with pytest.raises(ApiError) as e:
        app.recover()  # a READY application has no job to lose
    assert e.value.code == "ResourceInUseException" and app.recoveries == 0
    _running(app)
    op = app.recover()
    assert op.name == RECOVERY and op.status == "IN_PROGRESS" and app.status == "STARTING"
    assert app.recoveries == 1 and app.operations[-1] is op
    assert [o["Operation"] for o in [o.summary() for o in app.operations]] == ["StartApplication", RECOVERY]
    with pytest.raises(ApiError):
        app.stop(force=False)  # while it recovers only a forced stop is taken
    app.stop(force=True)

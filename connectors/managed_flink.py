"""One region's Managed Flink deployment, from the zip to a running application: what
`homeflow deploy` (cli/main.py) runs; the command only parses its arguments, calls these, and
prints.

    plan      what apply would change: the code object, the stack's parameters, the application
    apply     package -> upload the zip under its content hash -> create/update the region's stack
              (infra/region.yaml) -> create the application if the stack did not (the sandbox's
              CloudFormation cannot), or update it with CurrentApplicationVersionId, and wait
    app start --restore latest|none|SNAPSHOT   /   app stop [--force]   /   app status
    snapshots list | create [--name N] | delete NAME
    rollback  to the previous version that ran, from the latest snapshot

Against AWS (no homeflow.aws/endpoint) the calls go to the region's service endpoints; on the
sandbox they go to the emulator, whose kinesisanalyticsv2 is the Managed Flink stand-in
(sandbox/managed_flink). The global tables (infra/global.yaml) are deployed once per account,
not by this command (README, Deploy to AWS).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from conf.settings import Settings
from connectors import aws, stacks
from connectors.cfn_template import Template, load_template

# The kinesisanalyticsv2 API's transient application statuses: a call that changes an application
# leaves it in one of these until the change is done (or has failed).
TRANSIENT = {"STARTING", "STOPPING", "UPDATING", "ROLLING_BACK", "FORCE_STOPPING", "AUTOSCALING", "DELETING"}


class DeployError(SystemExit):
    """A deploy step failed; the message says which and why (exit code 2 through the CLI)."""

    def __init__(self, message: str):
        super().__init__(f"error: {message}")


@dataclass(frozen=True)
class Code:
    path: Path
    bucket: str
    key: str


def code_for(settings: Settings, region: str, zip_path: Path) -> Code:
    digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()[:16]
    return Code(zip_path, f"{settings.lake.bucket_prefix}-code-{region}", f"homeflow-{digest}.zip")


def stack_parameters(settings: Settings, region: str, code: Code, extra: dict[str, str] | None = None
                     ) -> dict[str, str]:
    """The region stack's parameters: derived from the properties, the code object, and `extra`
    (`--parameter K=V`, e.g. ReplicationEnabled=true on the second pass), checked against the
    template's declared parameters."""
    declared = load_template(stacks.REGION_TEMPLATE)["Parameters"]
    unknown = sorted(set(extra or {}) - set(declared))
    if unknown:
        raise DeployError(f"--parameter {', '.join(unknown)}: not a parameter of {stacks.REGION_TEMPLATE.name} "
                          f"(it has {', '.join(declared)})")
    return {**stacks.region_parameters(settings, region), "CodeBucket": code.bucket, "CodeKey": code.key,
            **(extra or {})}


def keep_previous(params: dict[str, str], stack: dict | None) -> dict[str, str]:
    """`params` plus, for an existing stack, the current value of every declared parameter that
    is neither derived nor given. CloudFormation resets a parameter left out of an update to its
    template default: without this a release would turn replication off again (ReplicationEnabled
    back to false) and reset the shard counts and the alarm topic."""
    if stack is None:
        return params
    declared = load_template(stacks.REGION_TEMPLATE)["Parameters"]
    have = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
    kept = {k: _plain(v) for k, v in have.items() if k in declared and k not in params and v is not None}
    return {**kept, **params}


def _plain(v: str) -> str:
    """The emulator echoes a list parameter as a Python list's repr; CloudFormation as a,b."""
    return ",".join(x.strip(" '\"") for x in v.strip("[]").split(",")) if v.startswith("[") else v


# ---------------------------------------------------------------- the application the template declares

def _coerce(value, shape):
    """Template values are strings; the API wants the shape's types (booleans, integers)."""
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: _coerce(v, shape.members[k]) if k in shape.members else v for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_coerce(v, shape.member) for v in value]
    if shape.type_name == "boolean" and isinstance(value, str):
        return value.lower() == "true"
    if shape.type_name in ("integer", "long") and isinstance(value, str):
        return int(value)
    return value


def desired_application(settings: Settings, region: str, params: dict[str, str], role_arn: str | None,
                        client) -> dict:
    """The CreateApplication request for the template's AWS::KinesisAnalyticsV2::Application."""
    doc = load_template(stacks.REGION_TEMPLATE)
    lists = {k for k, p in doc["Parameters"].items() if p.get("Type") == "CommaDelimitedList"}
    bound = Template(doc, region, settings.aws.account_id or "123456789012",
                     {k: (v.split(",") if k in lists else v) for k, v in params.items()})
    res = next(r for r in doc["Resources"].values() if r["Type"] == "AWS::KinesisAnalyticsV2::Application")
    props = bound.resolve(res["Properties"])
    props.pop("RunConfiguration", None)  # a start-time setting, not part of CreateApplication
    if role_arn:
        props["ServiceExecutionRole"] = role_arn
    return _coerce(props, client.meta.service_model.operation_model("CreateApplication").input_shape)


def _as_update(node):
    """A configuration section in UpdateApplication's spelling (every key + "Update")."""
    if isinstance(node, dict):
        return {("EnvironmentPropertyUpdates" if k == "EnvironmentProperties" else
                 k if k == "PropertyGroups" else f"{k}Update"): (v if k == "PropertyGroups" else _as_update(v))
                for k, v in node.items()}
    return node


def _current_config(detail: dict) -> dict:
    """The request-shaped configuration of a DescribeApplication answer (the parts apply manages)."""
    d = detail.get("ApplicationConfigurationDescription", {})
    code = d.get("ApplicationCodeConfigurationDescription", {})
    s3 = code.get("CodeContentDescription", {}).get("S3ApplicationCodeLocationDescription", {})
    flink = d.get("FlinkApplicationConfigurationDescription", {})
    out = {"ApplicationCodeConfiguration": {"CodeContentType": code.get("CodeContentType"),
                                            "CodeContent": {"S3ContentLocation": {k: v for k, v in s3.items()
                                                                                  if k in ("BucketARN", "FileKey")}}},
           "EnvironmentProperties": {"PropertyGroups": d.get("EnvironmentPropertyDescriptions", {})
                                     .get("PropertyGroupDescriptions", [])},
           "ApplicationSnapshotConfiguration": d.get("ApplicationSnapshotConfigurationDescription", {}),
           "FlinkApplicationConfiguration": {}}
    for section, desc in flink.items():
        name = section.removesuffix("Description")
        out["FlinkApplicationConfiguration"][name] = {k: v for k, v in desc.items() if k != "CurrentParallelism"}
    return out


def _flatten(node, prefix="") -> dict[str, object]:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}." if prefix or k else k))
        return out
    return {prefix.rstrip("."): node}


def config_changes(current: dict, desired: dict) -> tuple[dict, list[str]]:
    """(ApplicationConfigurationUpdate, one line per changed value) from current to desired."""
    update, lines = {}, []
    for section, want in desired.items():
        have = current.get(section, {})
        if section == "EnvironmentProperties":
            h = {g["PropertyGroupId"]: g.get("PropertyMap", {}) for g in have.get("PropertyGroups", [])}
            w = {g["PropertyGroupId"]: g.get("PropertyMap", {}) for g in want.get("PropertyGroups", [])}
            changed = [f"property {gid}/{k}: {h.get(gid, {}).get(k)} -> {w.get(gid, {}).get(k)}"
                       for gid in sorted(set(h) | set(w)) for k in sorted(set(h.get(gid, {})) | set(w.get(gid, {})))
                       if h.get(gid, {}).get(k) != w.get(gid, {}).get(k)]
        else:
            fh, fw = _flatten(have), _flatten(want)
            changed = [f"{section}.{k}: {fh.get(k)} -> {fw[k]}" for k in sorted(fw) if fh.get(k) != fw[k]]
        if changed:
            lines += changed
            update.update(_as_update({section: want}))
    return update, lines


# ---------------------------------------------------------------- plan and apply

@dataclass
class Plan:
    code: Code
    code_uploaded: bool
    stack: str  # "create" | "update" | "unchanged"
    stack_changes: list[str]
    application: str  # "create" | "update" | "unchanged" | "after the stack"
    application_changes: list[str]
    detail: dict | None

    def lines(self, region: str) -> list[str]:
        out = [f"code      s3://{self.code.bucket}/{self.code.key}: "
               + ("already uploaded" if self.code_uploaded else f"upload {self.code.path.stat().st_size / 1e6:.1f} MB")]
        out.append(f"stack     {stacks.region_stack(region)}: {self.stack}")
        out += [f"            {c}" for c in self.stack_changes]
        out.append(f"app       {self.detail['ApplicationName'] if self.detail else 'homeflow'}: {self.application}")
        out += [f"            {c}" for c in self.application_changes]
        return out


def _exists(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError:
        return False


def _role_arn(stack: dict | None) -> str | None:
    """The execution role the stack made (its ApplicationRoleArn output)."""
    return {o["OutputKey"]: o["OutputValue"] for o in (stack or {}).get("Outputs", [])}.get("ApplicationRoleArn")


def describe(kda, name: str) -> dict | None:
    try:
        return kda.describe_application(ApplicationName=name)["ApplicationDetail"]
    except ClientError as e:
        if e.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise


def plan(settings: Settings, region: str, zip_path: Path, extra: dict[str, str] | None = None) -> Plan:
    code = code_for(settings, region, zip_path)
    s3, cf = aws.client("s3", region, settings.aws), aws.client("cloudformation", region, settings.aws)
    kda = aws.client("kinesisanalyticsv2", region, settings.aws)
    st = stacks.status(cf, stacks.region_stack(region))
    params = keep_previous(stack_parameters(settings, region, code, extra), st)
    if st is None:
        stack, stack_changes = "create", []
    else:
        have = {p["ParameterKey"]: p["ParameterValue"] for p in st.get("Parameters", [])}
        # The emulator echoes a list parameter as a Python list's repr; compare lists as lists.
        def norm(v):
            return None if v is None else ",".join(x.strip(" '\"") for x in v.strip("[]").split(","))
        stack_changes = [f"parameter {k}: {have.get(k)} -> {v}" for k, v in sorted(params.items())
                         if norm(have.get(k)) != norm(v)]
        stack = "update" if stack_changes or not stacks.deployed_with(st, stacks.REGION_TEMPLATE.read_text(),
                                                                      params) else "unchanged"
    want = desired_application(settings, region, params, _role_arn(st), kda)
    detail = describe(kda, want["ApplicationName"])
    if detail is None:
        app, app_changes = "create", [f"code {code.key}, version 1, status READY"]
    else:
        _, app_changes = config_changes(_current_config(detail), want["ApplicationConfiguration"])
        app = "update" + (" (RUNNING: snapshot, stop, restart restored)" if detail["ApplicationStatus"] == "RUNNING"
                          else "") if app_changes else "unchanged"
    return Plan(code, _exists(s3, code.bucket, code.key), stack, stack_changes, app, app_changes, detail)


def _ensure_bucket(s3, bucket: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **extra)


def apply(settings: Settings, region: str, zip_path: Path, out=print, timeout: float = 600,
          extra: dict[str, str] | None = None, allow_non_restored: bool = False) -> dict:
    code = code_for(settings, region, zip_path)
    s3, cf = aws.client("s3", region, settings.aws), aws.client("cloudformation", region, settings.aws)
    kda = aws.client("kinesisanalyticsv2", region, settings.aws)
    params = keep_previous(stack_parameters(settings, region, code, extra),
                           stacks.status(cf, stacks.region_stack(region)))
    _ensure_bucket(s3, code.bucket, region)
    if _exists(s3, code.bucket, code.key):
        out(f"[1/3] code s3://{code.bucket}/{code.key}: already uploaded")
    else:
        t0 = time.monotonic()
        s3.upload_file(str(zip_path), code.bucket, code.key)
        out(f"[1/3] code s3://{code.bucket}/{code.key}: uploaded {zip_path.stat().st_size / 1e6:.1f} MB "
            f"in {time.monotonic() - t0:.1f}s")
    t0 = time.monotonic()
    try:
        verb = stacks.deploy(cf, stacks.region_stack(region), stacks.REGION_TEMPLATE.read_text(), params,
                             stacks.REGION_TEMPLATE.name)
    except stacks.ProvisionError as e:
        raise DeployError(str(e)) from None
    out(f"[2/3] stack {stacks.region_stack(region)}: {verb or 'unchanged'}"
        + (f" in {time.monotonic() - t0:.1f}s" if verb else ""))
    role = _role_arn(stacks.status(cf, stacks.region_stack(region)))
    want = desired_application(settings, region, params, role, kda)
    detail = describe(kda, want["ApplicationName"])
    if detail is None:
        # On AWS the stack created it; the sandbox's CloudFormation cannot, so create it from the
        # same resource definition.
        detail = kda.create_application(**want)["ApplicationDetail"]
        out(f"[3/3] application {want['ApplicationName']}: created, version {detail['ApplicationVersionId']}, "
            f"{detail['ApplicationStatus']} (start it: homeflow deploy app start --region {region})")
        return detail
    update, changes = config_changes(_current_config(detail), want["ApplicationConfiguration"])
    if not update:
        out(f"[3/3] application {want['ApplicationName']}: unchanged (version {detail['ApplicationVersionId']}, "
            f"{detail['ApplicationStatus']})")
        return detail
    for c in changes:
        out(f"      {c}")
    v = detail["ApplicationVersionId"]
    # A running application restarts with the last start's restore setting unless told otherwise:
    # after `app start --restore none` that would drop the state. An update restores the snapshot
    # the service takes on the way down.
    run = ({"RunConfigurationUpdate": {"ApplicationRestoreConfiguration": restore_configuration("latest"),
                                       **flink_run_configuration(allow_non_restored)}}
           if detail["ApplicationStatus"] == "RUNNING" else {})
    r = kda.update_application(ApplicationName=want["ApplicationName"], CurrentApplicationVersionId=v,
                               ApplicationConfigurationUpdate=update, **run)
    out(f"[3/3] application {want['ApplicationName']}: version {v} -> {r['ApplicationDetail']['ApplicationVersionId']}, "
        f"{r['ApplicationDetail']['ApplicationStatus']}")
    return wait(kda, want["ApplicationName"], r.get("OperationId"), out, timeout)


# ---------------------------------------------------------------- the application's lifecycle

def wait(kda, name: str, operation_id: str | None, out=print, timeout: float = 600) -> dict:
    """Until the application leaves the transient statuses; prints each status it passes. A
    failed operation is an error with the service's reason."""
    t0, seen = time.monotonic(), None
    while True:
        d = kda.describe_application(ApplicationName=name)["ApplicationDetail"]
        if d["ApplicationStatus"] != seen:
            seen = d["ApplicationStatus"]
            out(f"      {time.monotonic() - t0:5.1f}s  {name} {seen} (version {d['ApplicationVersionId']})")
        if seen not in TRANSIENT:
            break
        if time.monotonic() - t0 > timeout:
            raise DeployError(f"application {name} still {seen} after {timeout:.0f}s")
        time.sleep(1)
    if operation_id:
        op = kda.describe_application_operation(ApplicationName=name, OperationId=operation_id)
        info = op["ApplicationOperationInfoDetails"]
        if info["OperationStatus"] == "FAILED":
            reason = info.get("OperationFailureDetails", {}).get("ErrorInfo", {}).get("ErrorString", "no reason given")
            raise DeployError(f"{info['Operation']} of {name} failed: {reason}")
    return d


def restore_configuration(restore: str) -> dict:
    if restore == "latest":
        return {"ApplicationRestoreType": "RESTORE_FROM_LATEST_SNAPSHOT"}
    if restore == "none":
        return {"ApplicationRestoreType": "SKIP_RESTORE_FROM_SNAPSHOT"}
    return {"ApplicationRestoreType": "RESTORE_FROM_CUSTOM_SNAPSHOT", "SnapshotName": restore}


def flink_run_configuration(allow_non_restored: bool) -> dict:
    """AllowNonRestoredState: restore a snapshot holding state of operators the new code does not
    have (an upgrade that removed them, compaction turned off). Sent either way, so a value set
    once does not stick to later updates unasked."""
    return {"FlinkRunConfiguration": {"AllowNonRestoredState": allow_non_restored}}


def start(kda, name: str, restore: str, out=print, timeout: float = 600, allow_non_restored: bool = False) -> dict:
    r = kda.start_application(ApplicationName=name,
                              RunConfiguration={"ApplicationRestoreConfiguration": restore_configuration(restore),
                                                **flink_run_configuration(allow_non_restored)})
    return wait(kda, name, r.get("OperationId"), out, timeout)


def stop(kda, name: str, force: bool, out=print, timeout: float = 600) -> dict:
    r = kda.stop_application(ApplicationName=name, Force=force)
    return wait(kda, name, r.get("OperationId"), out, timeout)


def rollback(kda, name: str, out=print, timeout: float = 600) -> dict:
    d = kda.describe_application(ApplicationName=name)["ApplicationDetail"]
    r = kda.rollback_application(ApplicationName=name, CurrentApplicationVersionId=d["ApplicationVersionId"])
    after = r["ApplicationDetail"]
    out(f"      rolling back version {d['ApplicationVersionId']} to the configuration of version "
        f"{after.get('ApplicationVersionRolledBackTo')} (as version {after['ApplicationVersionId']})")
    return wait(kda, name, r.get("OperationId"), out, timeout)


def snapshots(kda, name: str) -> list[dict]:
    return kda.list_application_snapshots(ApplicationName=name)["SnapshotSummaries"]


def create_snapshot(kda, name: str, snapshot: str, timeout: float = 300) -> dict:
    kda.create_application_snapshot(ApplicationName=name, SnapshotName=snapshot)
    deadline = time.monotonic() + timeout
    while True:
        s = kda.describe_application_snapshot(ApplicationName=name, SnapshotName=snapshot)["SnapshotDetails"]
        if s["SnapshotStatus"] != "CREATING":
            if s["SnapshotStatus"] != "READY":
                raise DeployError(f"snapshot {snapshot} of {name} ended {s['SnapshotStatus']}")
            return s
        if time.monotonic() > deadline:
            raise DeployError(f"snapshot {snapshot} of {name} still CREATING after {timeout:.0f}s")
        time.sleep(0.5)


def delete_snapshot(kda, name: str, snapshot: str) -> None:
    s = kda.describe_application_snapshot(ApplicationName=name, SnapshotName=snapshot)["SnapshotDetails"]
    kda.delete_application_snapshot(ApplicationName=name, SnapshotName=snapshot,
                                    SnapshotCreationTimestamp=s["SnapshotCreationTimestamp"])


def status_lines(kda, name: str) -> list[str]:
    d = describe(kda, name)
    if d is None:
        return [f"application {name}: not deployed (homeflow deploy apply)"]
    cfg = d["ApplicationConfigurationDescription"]
    s3 = cfg["ApplicationCodeConfigurationDescription"]["CodeContentDescription"]["S3ApplicationCodeLocationDescription"]
    out = [f"application {name}: {d['ApplicationStatus']}, version {d['ApplicationVersionId']}, "
           f"code {s3['FileKey']}"]
    if d.get("ApplicationVersionRolledBackTo"):
        out.append(f"  rolled back from version {d['ApplicationVersionRolledBackFrom']} to the configuration of "
                   f"version {d['ApplicationVersionRolledBackTo']}")
    snaps = snapshots(kda, name)
    out.append(f"  snapshots: {len(snaps)}" + (f", latest {snaps[0]['SnapshotName']} ({snaps[0]['SnapshotStatus']}, "
                                               f"version {snaps[0]['ApplicationVersionId']})" if snaps else ""))
    for op in kda.list_application_operations(ApplicationName=name)["ApplicationOperationInfoList"][:5]:
        out.append(f"  {op['StartTime']:%H:%M:%S} {op['Operation']}: {op['OperationStatus']}")
    return out


def snapshot_lines(rows: list[dict]) -> list[str]:
    return [f"{s['SnapshotName']:40} {s['SnapshotStatus']:9} version {s['ApplicationVersionId']:<3} "
            f"{s['SnapshotCreationTimestamp']:%Y-%m-%d %H:%M:%S}" for s in rows] or ["no snapshots"]


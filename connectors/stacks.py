"""Provision infra/'s templates through CloudFormation: the stacks a deployment makes, the
parameters it passes (derived from the properties), and creating or updating a stack and waiting
until it settles. Used by `homeflow deploy` (connectors/managed_flink.py) against AWS or the
sandbox, and by the sandbox's provisioning (sandbox/stacks.py), which deploys the same templates
through the emulator's CloudFormation.

- infra/region.yaml: one stack per region (`homeflow-<region>`), parameters `region_parameters`.
- infra/global.yaml: once per account, parameters `global_parameters`.
- `deploy` tags each stack with a digest of the template and parameters it was deployed with
  (`SOURCE_TAG`), so an unchanged stack is left alone.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from botocore.exceptions import ClientError

from conf.settings import Settings
from connectors import read_pointer

INFRA = Path(__file__).resolve().parents[1] / "infra"
REGION_TEMPLATE = INFRA / "region.yaml"
GLOBAL_TEMPLATE = INFRA / "global.yaml"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
SOURCE_TAG = "homeflow:source"  # digest of the template and parameters a stack was last deployed with


class ProvisionError(SystemExit):
    """A stack cannot be provisioned from the templates; the message says what and where."""


def region_stack(region: str) -> str:
    return f"homeflow-{region}"


def _common_parameters(settings: Settings) -> dict[str, str]:
    return {"Regions": ",".join(settings.job.regions), "RoutingTableName": settings.job.routing_table,
            "CatalogTableName": settings.lake.catalog_table, "ReadPointerTableName": read_pointer.POINTER_TABLE}


def region_parameters(settings: Settings, region: str) -> dict[str, str]:
    """What a deployment passes to infra/region.yaml for `region` (scripts and the README use the
    same names). The code is `homeflow deploy apply`'s to set (connectors/managed_flink.py); until
    then a name that nothing reads (the emulator's CloudFormation creates no application)."""
    return {**_common_parameters(settings),
            "RemoteRegions": ",".join(r for r in settings.job.regions if r != region),
            "LakeBucketPrefix": settings.lake.bucket_prefix,
            "CodeBucket": f"{settings.lake.bucket_prefix}-code", "CodeKey": "homeflow.zip",
            "Parallelism": str(settings.job.parallelism),
            "CheckpointIntervalMs": str(settings.job.checkpoint_interval_ms)}


def global_parameters(settings: Settings) -> dict[str, str]:
    return _common_parameters(settings)


def status(cf, name: str) -> dict | None:
    try:
        return cf.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as e:
        if "does not exist" in str(e):
            return None
        raise


def _wait(cf, name: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        st = status(cf, name)
        if st and not st["StackStatus"].endswith("_IN_PROGRESS"):
            return st
        if time.monotonic() > deadline:
            raise ProvisionError(f"stack {name} still {st and st['StackStatus']} after {timeout_s:.0f}s")
        time.sleep(0.2)


def _digest(body: str, params: dict[str, str]) -> str:
    # The emulator echoes list parameters in its own spelling: what was deployed is kept as a tag.
    return hashlib.sha256(json.dumps([body, sorted(params.items())]).encode()).hexdigest()[:16]


def deployed_with(stack: dict, body: str, params: dict[str, str]) -> bool:
    """Whether `stack` (a describe_stacks entry) was last deployed with this template and these parameters."""
    return {t["Key"]: t["Value"] for t in stack.get("Tags", [])}.get(SOURCE_TAG) == _digest(body, params)


def deploy(cf, name: str, body: str, params: dict[str, str], source: str) -> str | None:
    """Create the stack, or update it when the template or parameters changed. Returns what was
    done ("created"/"updated") or None when the stack was already this template."""
    want = sorted(params.items())
    digest = _digest(body, params)
    args = dict(StackName=name, TemplateBody=body, Capabilities=CAPABILITIES,
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in want],
                Tags=[{"Key": SOURCE_TAG, "Value": digest}])
    st = status(cf, name)
    try:
        if st is None:
            verb = "created"
            cf.create_stack(**args)
        elif deployed_with(st, body, params):
            return None
        else:
            verb = "updated"
            cf.update_stack(**args)
    except ClientError as e:
        raise ProvisionError(f"{source}: the emulator refused stack {name}: {e.response['Error']['Message']}")
    st = _wait(cf, name)
    if st["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        events = cf.describe_stack_events(StackName=name)["StackEvents"]
        failed = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
                  for e in events if e["ResourceStatus"].endswith("FAILED")]
        raise ProvisionError(f"{source}: stack {name} ended {st['StackStatus']}: "
                             f"{'; '.join(failed) or st.get('StackStatusReason')}")
    return verb

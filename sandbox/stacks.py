"""Provision the sandbox from the templates a deployment uses (infra/), through the emulator's
CloudFormation, with the same stack deployment as `homeflow deploy` (connectors/stacks.py), so
that a template missing something the job needs breaks the local run and not a production deploy.

- infra/region.yaml is deployed as is, one stack per region (`homeflow-<region>`), with the
  parameters a deployment would pass, derived from the properties. The emulator creates its
  streams, buckets, IAM roles and log group.
- infra/global.yaml's DynamoDB global tables: the emulator has no AWS::DynamoDB::GlobalTable, so a
  STAND-IN template is derived from it (`global_standin`): each global table becomes an ordinary
  AWS::DynamoDB::Table (same name, keys, indexes, stream, encryption, per-replica settings),
  deployed as stack `homeflow-global-standin` in every region its Replicas list. Replication
  between them is the sandbox's replicator (sandbox/replicate.py), another stand-in.
- What the emulator accepts but does not create (it logs "No Moto CloudFormation support for
  ..."): the Managed Flink application (`homeflow deploy apply` creates it in the Managed Flink
  stand-in, sandbox/managed_flink) and its logging option,
  CloudWatch alarms, the log stream, and the S3 bucket policies. `NOT_CREATED` names them; a
  test keeps that list true.

After the stacks, `verify` checks that every stream, bucket and table the properties name exists
in every region, and stops with one line per missing thing.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from conf.settings import Settings
from connectors import aws, read_pointer
from connectors.cfn_template import Template, load_template
# Provisioning through CloudFormation, as a real deployment does it (connectors/stacks.py).
from connectors.stacks import (GLOBAL_TEMPLATE, INFRA, REGION_TEMPLATE, ProvisionError, deploy, global_parameters,
                               region_parameters, region_stack, status)

GLOBAL_STANDIN_STACK = "homeflow-global-standin"
# Resource types of the templates that the emulator's CloudFormation accepts without creating
# anything, and what stands in for each in the sandbox.
NOT_CREATED = {
    "AWS::KinesisAnalyticsV2::Application": "`homeflow deploy apply` creates it from the same resource definition "
                                            "in the Managed Flink stand-in (sandbox/managed_flink), which runs it "
                                            "on a local Flink cluster",
    "AWS::KinesisAnalyticsV2::ApplicationCloudWatchLoggingOption": "the job logs to files under the run's logs/",
    "AWS::CloudWatch::Alarm": "none (the tests assert on the job's own metrics)",
    "AWS::Logs::LogStream": "none",
    "AWS::S3::BucketPolicy": "none (the TLS-only policy would deny the sandbox's plain HTTP on loopback)",
}
# Properties of a global table that an ordinary table does not have.
_GLOBAL_ONLY = ("Replicas", "WriteProvisionedThroughputSettings", "WriteOnDemandThroughputSettings")
# Table properties a global table keeps per replica; the stand-in table takes the first replica's.
_PER_REPLICA = ("PointInTimeRecoverySpecification", "DeletionProtectionEnabled", "ContributorInsightsSpecification",
                "TableClass", "Tags")


def global_standin(doc: dict, region: str, account: str, params: dict[str, str]) -> dict | None:
    """The stand-in for infra/global.yaml in `region`: its global tables that have a replica in
    `region`, each as an ordinary table, and, in the control region (the first of Regions) only,
    its other resources. None if that leaves nothing for `region`."""
    bound = Template(doc, region, account, {k: (v.split(",") if k == "Regions" else v) for k, v in params.items()})
    out = {k: copy.deepcopy(v) for k, v in doc.items() if k in ("AWSTemplateFormatVersion", "Parameters", "Conditions")}
    out["Description"] = f"homeflow sandbox STAND-IN for infra/global.yaml in {region} (no global tables here)"
    out["Resources"] = {}
    for name, res in doc["Resources"].items():
        if res["Type"] != "AWS::DynamoDB::GlobalTable":
            if region == bound.params["Regions"][0]:
                out["Resources"][name] = copy.deepcopy(res)
            continue
        replicas = bound.resolve(res["Properties"]["Replicas"])
        mine = [r for r in replicas if r["Region"] == region]
        if not mine:
            continue
        props = {k: copy.deepcopy(v) for k, v in res["Properties"].items() if k not in _GLOBAL_ONLY}
        props.update({k: mine[0][k] for k in _PER_REPLICA if k in mine[0]})
        out["Resources"][name] = {k: v for k, v in res.items() if k not in ("Properties", "Type")}
        out["Resources"][name].update({"Type": "AWS::DynamoDB::Table", "Properties": props})
    if not out["Resources"]:
        return None
    out["Outputs"] = {k: v for k, v in doc.get("Outputs", {}).items()
                      if _names(v) <= set(out["Resources"]) | set(out.get("Parameters", {}))}
    return out


def _names(node) -> set[str]:
    """The logical names an Outputs entry refers to."""
    if isinstance(node, dict):
        got = set()
        for k, v in node.items():
            if k == "Ref":
                got.add(v)
            elif k == "Fn::GetAtt":
                got.add(v[0] if isinstance(v, list) else v.split(".")[0])
            else:
                got |= _names(v)
        return got
    if isinstance(node, list):
        return set().union(*(_names(v) for v in node)) if node else set()
    return set()


def provision(settings: Settings, region_template: Path = REGION_TEMPLATE,
              global_template: Path = GLOBAL_TEMPLATE) -> dict[str, list[str]]:
    """Deploy the stand-in of the global template and the regional template in every region."""
    if len(settings.job.regions) < 2:
        raise ProvisionError(f"homeflow.job/regions names {len(settings.job.regions)} region; the templates in "
                             f"{INFRA} deploy 2 or 3 regions")
    made: dict[str, list[str]] = {}
    global_doc = load_template(global_template)
    region_body = region_template.read_text()
    for region in settings.job.regions:
        cf = aws.client("cloudformation", region, settings.aws)
        out = made.setdefault(region, [])
        standin = global_standin(global_doc, region, settings.aws.account_id, global_parameters(settings))
        if standin is not None:
            verb = deploy(cf, GLOBAL_STANDIN_STACK, json.dumps(standin, indent=1), global_parameters(settings),
                          f"{global_template.name} (stand-in)")
            if verb:
                out.append(f"stack {GLOBAL_STANDIN_STACK} {verb} ({len(standin['Resources'])} tables)")
        params = region_parameters(settings, region)
        st = status(cf, region_stack(region))
        if st is not None:  # keep the code a `homeflow deploy apply` put there
            have = {p["ParameterKey"]: p["ParameterValue"] for p in st.get("Parameters", [])}
            params.update({k: have[k] for k in ("CodeBucket", "CodeKey") if k in have})
        verb = deploy(cf, region_stack(region), region_body, params, region_template.name)
        if verb:
            out.append(f"stack {region_stack(region)} {verb}")
    return made


def missing(settings: Settings) -> list[str]:
    """Every stream, bucket and table the properties name that does not exist, per region."""
    gone = []
    streams = (settings.streams.ingest, settings.streams.forward, settings.streams.dead_letter)
    tables = (settings.job.routing_table, settings.lake.catalog_table, read_pointer.POINTER_TABLE)
    for region in settings.job.regions:
        kin = aws.client("kinesis", region, settings.aws)
        have = set(kin.list_streams()["StreamNames"])
        gone += [f"{region}: Kinesis stream {s}" for s in streams if s not in have]
        ddb = aws.client("dynamodb", region, settings.aws)
        have = set(ddb.list_tables()["TableNames"])
        gone += [f"{region}: DynamoDB table {t}" for t in tables if t not in have]
        s3 = aws.client("s3", region, settings.aws)
        have = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        wanted = [settings.lake.bucket(region)] + [read_pointer.replica_bucket(settings, home, region)
                                                   for home in settings.job.regions if home != region]
        gone += [f"{region}: S3 bucket {b}" for b in wanted if b not in have]
    return gone


def verify(settings: Settings) -> None:
    gone = missing(settings)
    if gone:
        raise ProvisionError(
            f"the stacks from {INFRA} do not create what the properties name, or it was deleted or "
            "renamed since:\n  " + "\n  ".join(gone) + "\nfix the template or the properties; a resource "
            "deleted by hand, or renamed in a template (the emulator's stack update does not replace "
            "it), comes back only in a fresh sandbox (`homeflow sandbox down`, then `homeflow sandbox up`)")

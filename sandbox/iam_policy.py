"""The job role's policy as written in infra/region.yaml, evaluated against recorded API calls
(sandbox.api_calls): which calls it would deny, and which of its grants no call used.

CloudFormation is evaluated only as far as the templates need (Ref, Fn::Sub, Fn::GetAtt, Fn::Join,
Fn::Select, Fn::Split, Fn::If with its conditions, AWS::NoValue). IAM matching follows AWS: actions
case-insensitive, resources case-sensitive, `*` and `?` wildcards in both, any Allow statement
suffices (the role has no Deny). Conditions are not evaluated: the statements that carry one are
the ones only the service itself exercises (see SERVICE_SIDE).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from sandbox.api_calls import Call

PARTITION = "aws"
NO_VALUE = object()

# Grants the job's own code never exercises, each with why it is still needed. The check below
# fails on any other unused grant.
SERVICE_SIDE = {
    "ReadCode": "Managed Flink itself reads the application zip from S3 with the role before it starts the job",
    "Logs": "Managed Flink's CloudWatch logging writes the job's log with the role, not the job's code",
    "Metrics": "Managed Flink publishes the job's metrics to AWS/KinesisAnalytics with the role",
    "LakeEncryption": "S3, Kinesis and DynamoDB call KMS on the role's behalf (kms:ViaService); the job never "
                      "calls KMS, and the emulator does not encrypt",
}
# Single actions the suite cannot exercise, with why they stay.
UNEXERCISED = {
    ("LakeObjects", "s3:AbortMultipartUpload"): "S3FileIO uploads a file above 32 MB in parts and aborts the upload "
                                                "when a part fails; the suite's files are small and the emulator "
                                                "does not fail parts",
}
# Actions that have no resource type in IAM: "*" is the only resource they can name.
RESOURCELESS = {"cloudwatch:putmetricdata"}


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, ...) read as their long form."""


def _tag(loader, suffix, node):
    fn = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {fn: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_CfnLoader)


class Template:
    """One template with its parameters bound (defaults, then `params`) in one account and region."""

    def __init__(self, doc: dict, region: str, account: str, params: dict[str, object]):
        self.doc, self.resources = doc, doc.get("Resources", {})
        self.params: dict[str, object] = {}
        for name, p in doc.get("Parameters", {}).items():
            if "Default" in p:
                d = p["Default"]
                self.params[name] = d.split(",") if p.get("Type") == "CommaDelimitedList" else str(d)
        self.params.update(params)
        self.params.update({"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": PARTITION,
                            "AWS::URLSuffix": "amazonaws.com"})
        self.region, self.account = region, account

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.doc["Conditions"][name]))

    def resolve(self, node):
        if isinstance(node, list):
            return [v for v in (self.resolve(n) for n in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref":
                return self._ref(arg)
            if fn == "Fn::Sub":
                return self._sub(arg)
            if fn == "Fn::GetAtt":
                return self._getatt(*(arg if isinstance(arg, list) else arg.split(".", 1)))
            if fn == "Fn::Join":
                sep, items = arg
                return sep.join(str(i) for i in self.resolve(items))
            if fn == "Fn::Select":
                i, items = self.resolve(arg)
                return items[int(i)]
            if fn == "Fn::Split":
                sep, s = self.resolve(arg)
                return s.split(sep)
            if fn == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.condition(cond) else no)
            if fn == "Fn::Equals":
                a, b = self.resolve(arg)
                return a == b
            if fn == "Fn::Not":
                return not self.resolve(arg)[0]
            if fn == "Fn::And":
                return all(self.resolve(arg))
            if fn == "Fn::Or":
                return any(self.resolve(arg))
            if fn == "Condition":
                return self.condition(arg)
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not NO_VALUE}

    def _ref(self, name: str):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.params:
            return self.params[name]
        r = self.resources[name]
        props = self.resolve(r.get("Properties", {}))
        return props.get({"AWS::Kinesis::Stream": "Name", "AWS::S3::Bucket": "BucketName",
                          "AWS::Logs::LogGroup": "LogGroupName", "AWS::DynamoDB::GlobalTable": "TableName"}
                         .get(r["Type"], ""), name)

    def _getatt(self, name: str, attr: str):
        t = self.resources[name]["Type"]
        if attr != "Arn":
            raise ValueError(f"Fn::GetAtt {name}.{attr} is not modelled")
        phys = self._ref(name)
        return {
            "AWS::Kinesis::Stream": f"arn:{PARTITION}:kinesis:{self.region}:{self.account}:stream/{phys}",
            "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{phys}",
            "AWS::Logs::LogGroup": f"arn:{PARTITION}:logs:{self.region}:{self.account}:log-group:{phys}:*",
            "AWS::IAM::Role": f"arn:{PARTITION}:iam::{self.account}:role/{phys}",
        }[t]

    def _sub(self, arg):
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def one(m):
            name = m.group(1)
            if name in extra:
                return str(extra[name])
            if "." in name and not name.startswith("AWS::"):
                return str(self._getatt(*name.split(".", 1)))
            v = self._ref(name)
            return ",".join(v) if isinstance(v, list) else str(v)
        return re.sub(r"\$\{([^}!]+)\}", one, text)


@dataclass(frozen=True)
class Grant:
    sid: str
    action: str
    resource: str

    def allows(self, action: str, resource: str | None) -> bool:
        if not _match(self.action, action, case=False):
            return False
        if resource is None:  # the request does not name it: only a grant on every resource covers it
            return self.resource == "*"
        return _match(self.resource, resource, case=True)


def _match(pattern: str, value: str, case: bool) -> bool:
    rx = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(rx, value, 0 if case else re.IGNORECASE) is not None


def role_grants(template: Template, role: str = "ApplicationRole") -> list[Grant]:
    props = template.resolve(template.resources[role]["Properties"])
    out = []
    for policy in props.get("Policies", []):
        for st in policy["PolicyDocument"]["Statement"]:
            if st["Effect"] != "Allow":
                raise ValueError(f"{role}: a Deny statement ({st.get('Sid')}) is not modelled")
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            out += [Grant(st.get("Sid", "?"), a, r) for a in actions for r in resources]
    return out


@dataclass
class Verdict:
    denied: list[Call]  # calls the policy would refuse
    unused: list[Grant]  # grants no call needed (service-side ones excepted)
    too_wide: list[str]  # wildcard actions, or "*" resources where the action has a resource type
    used_by: dict[Grant, int]  # grant -> how many distinct calls it allowed

    @property
    def ok(self) -> bool:
        return not (self.denied or self.unused or self.too_wide)


def check(calls: list[Call], grants: list[Grant], service_side: dict[str, str] = SERVICE_SIDE,
          unexercised: dict[tuple[str, str], str] = UNEXERCISED) -> Verdict:
    denied, used_by = [], {g: 0 for g in grants}
    for c in calls:
        allowing = [g for g in grants if g.allows(c.action, c.resource)]
        if not allowing:
            denied.append(c)
        for g in allowing:
            used_by[g] += 1
    unused = [g for g, n in used_by.items()
              if n == 0 and g.sid not in service_side and (g.sid, g.action) not in unexercised]
    too_wide = [f"{g.sid}: action {g.action}" for g in grants if "*" in g.action or "?" in g.action]
    too_wide += [f"{g.sid}: resource * for {g.action}" for g in grants
                 if g.resource == "*" and g.action.lower() not in RESOURCELESS]
    too_wide += [f"{g.sid}: wildcard in the account, region or name of {g.resource}" for g in grants
                 if g.resource != "*" and g.sid not in service_side and _wild_name(g.resource)]
    return Verdict(denied, unused, too_wide, used_by)


def _wild_name(arn: str) -> bool:
    """A wildcard where the template knows the value: partition, service, region, account, or the
    name of the bucket, stream or table. Below a name (object keys, an index) it may be needed."""
    fields = arn.split(":", 5)
    if any(ch in f for f in fields[:5] for ch in "*?"):
        return True
    path = fields[5] if len(fields) > 5 else ""
    if fields[2] == "s3":
        return any(ch in path.split("/", 1)[0] for ch in "*?")
    parts = path.split("/")
    return len(parts) > 1 and any(ch in parts[1] for ch in "*?")

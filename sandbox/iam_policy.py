"""The job role's policy as written in infra/region.yaml, evaluated against recorded API calls
(sandbox.api_calls): which calls it would deny, and which of its grants no call used.

The template is evaluated by connectors/cfn_template.py. IAM matching follows AWS: actions
case-insensitive, resources case-sensitive, `*` and `?` wildcards in both, any Allow statement
suffices (the role has no Deny). Conditions are not evaluated: the statements that carry one are
the ones only the service itself exercises (see SERVICE_SIDE).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from connectors.cfn_template import Template
from sandbox.api_calls import Call

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

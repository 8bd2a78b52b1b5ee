"""Issue 9, item 3: least privilege, proven on what the jobs actually did.

The emulator records every call it serves (sandbox.api_calls: access key, region, IAM action,
resource ARN). Each regional job of this package signs with its own key, so its calls are told
apart from the operator's (the tests and the CLI). This test runs after every other test of the
package (conftest.py orders it last) and drives a workload of its own as well (home and remote
keys in both regions, bad input, the read publisher), so it also holds when run alone. Then, per
region, against the ApplicationRole policy of infra/region.yaml resolved for that region:
- every call the job made is allowed (a missing permission fails the test);
- every grant was needed by some call, except the four statements only Managed Flink itself
  exercises and one action the emulator cannot provoke (sandbox.iam_policy.SERVICE_SIDE and
  UNEXERCISED, each with its reason) (an unused one fails it);
- no wildcard action, no "*" resource for an action that has a resource type, and no wildcard in
  a region, account, or bucket/stream/table name.
Two controls on the same recording show both checks can fail.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from connectors import read_pointer
from connectors.cfn_template import Template, load_template
from connectors.producer import events, put
from sandbox import api_calls
from sandbox.iam_policy import Grant, check, role_grants
from sandbox.jobrunner import wait_until

pytestmark = pytest.mark.e2e
REGIONS = ["us-east-1", "eu-west-1"]
TEMPLATE = Path(__file__).resolve().parents[3] / "infra" / "region.yaml"


def _grants(sb, region: str) -> list[Grant]:
    s = sb.settings
    params = {"Regions": list(s.job.regions), "RemoteRegions": [r for r in s.job.regions if r != region],
              "LakeBucketPrefix": s.lake.bucket_prefix, "CodeBucket": "homeflow-code", "CodeKey": "homeflow.zip",
              "RoutingTableName": s.job.routing_table, "CatalogTableName": s.lake.catalog_table,
              "ReadPointerTableName": read_pointer.POINTER_TABLE}
    return role_grants(Template(load_template(TEMPLATE), region, api_calls.DEFAULT_ACCOUNT, params))


def _workload(sb) -> None:
    s = sb.settings
    sent: dict[str, str] = {}
    for r in REGIONS:
        evs = list(events(r, 120, 24, seed=3131))
        put(s, r, [(e.key, e.to_json().encode()) for e in evs] + [("lp-bad", b"{not json")])
        sent.update({e.event_id: sb.table.home_of(e.key) for e in evs})
    assert set(sent.values()) == set(REGIONS), "the workload needs keys homed in both regions (forwarding)"
    for home in REGIONS:
        want = {eid for eid, h in sent.items() if h == home}
        wait_until(lambda: want <= sb.committed_ids(home), 180, 1.0, sb.jobs, f"{home} commits")
        reader = next(r for r in REGIONS if r != home)

        def visible():
            rows, _ = read_pointer.read_rows(s, home, reader)
            return want <= set(rows["event_id"].to_pylist())
        wait_until(visible, 120, 1.0, sb.jobs, f"{reader}'s read pointer for {home}")


def _unused_everywhere(verdicts: dict, regions) -> set[tuple[str, str, str]]:
    """Grants no job used, in a region-neutral form: the template grants the same thing for each
    remote region (the sandbox's third region is configured but DOWN, so nothing is forwarded to
    it), and the job of any region may use it."""
    def neutral(g: Grant) -> tuple[str, str, str]:
        res = g.resource
        for r in regions:
            res = res.replace(r, "{region}")
        return g.sid, g.action, res
    used = {neutral(g) for v in verdicts.values() for g, n in v.used_by.items() if n}
    return {neutral(g) for v in verdicts.values() for g in v.unused} - used


def test_job_calls_are_exactly_what_the_role_allows(two_regions, tmp_path_factory):
    sb = two_regions
    _workload(sb)
    recorded = api_calls.fetch(sb.settings.aws.endpoint)
    report = tmp_path_factory.mktemp("least-privilege") / "calls.json"
    report.write_text(json.dumps([dict(c.__dict__, count=n) for c, n in recorded.items()], indent=1))

    verdicts, grants = {}, {}
    for r in REGIONS:
        mine = [c for c in recorded if c.key == sb.job_key_of(r)]
        assert len({c.action for c in mine}) >= 10, f"{r}'s job made almost no calls: is it signing with its key?"
        grants[r] = _grants(sb, r)
        verdicts[r] = check(mine, grants[r])
        v = verdicts[r]
        print(f"{r}: {len(mine)} distinct job calls, {len({c.action for c in mine})} actions; "
              f"{sum(1 for n in v.used_by.values() if n)} of {len(grants[r])} grants used")
        assert not v.denied, f"{r}: the role would deny {len(v.denied)} calls, e.g. " + \
            "; ".join(f"{c.action} {c.resource}" for c in v.denied[:10]) + f" (all in {report})"
        assert not v.too_wide, v.too_wide
    unused = _unused_everywhere(verdicts, sb.settings.job.regions)
    assert not unused, f"grants no job call needed: {sorted(unused)}"

    operator = Counter(c.action for c in recorded if not c.key.startswith(sb.job_key))
    print("operator (tests, CLI, replication stand-ins), distinct calls per action:", dict(sorted(operator.items())))

    # Controls on the same recording: a missing permission is found, an unneeded one is found.
    r = REGIONS[0]
    mine = [c for c in recorded if c.key == sb.job_key_of(r)]
    without = [g for g in grants[r] if g.action != "kinesis:GetRecords"]
    assert any(c.action == "kinesis:GetRecords" for c in check(mine, without).denied)
    extra = Grant("Extra", "dynamodb:DeleteItem", grants[r][0].resource)
    assert extra in check(mine, grants[r] + [extra]).unused
    wide = Grant("Wide", "kinesis:PutRecords", "arn:aws:kinesis:*:123456789012:stream/homeflow-forward")
    assert check(mine, grants[r] + [wide]).too_wide

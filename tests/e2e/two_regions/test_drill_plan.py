"""A drill aimed at a deployment it did not create (`homeflow drill --target deployment`, here the
package's running sandbox stands for it) prints its plan and makes no call that changes anything
without --yes: the emulator's call record (sandbox/api_calls.py) shows only reads. Control: a
write made the same way shows up in the same diff."""
from __future__ import annotations

import pytest

from cli.main import main
from conf.settings import load
from connectors.producer import put
from sandbox import api_calls
from sandbox.local_cluster import with_key

pytestmark = pytest.mark.e2e
READS = ("Describe", "List", "Get")


KEY = "drill-planner"  # the drill's own access key: the replication stand-ins sign as the operator too


def _calls_during(sb, action) -> dict[str, int]:
    before = api_calls.fetch(sb.settings.aws.endpoint)
    action()
    after = api_calls.fetch(sb.settings.aws.endpoint)
    return {c.action: n - before.get(c, 0) for c, n in after.items() if c.key == KEY and n > before.get(c, 0)}


def test_a_drill_on_a_deployment_prints_its_plan_and_changes_nothing_without_yes(two_regions, capsys, tmp_path):
    sb = two_regions
    props = with_key(sb.properties, tmp_path / "deployment.json", KEY)
    argv = ["--properties", str(props), "drill", "region-loss", "--backend", "managed-flink",
            "--target", "deployment"]
    codes = []
    calls = _calls_during(sb, lambda: codes.append(main(argv)))
    out = capsys.readouterr().out
    assert codes == [0], out
    assert f"plan: region-loss drill on {sb.settings.aws.endpoint}" in out
    assert "StopApplication A Force=true" in out and "nothing was changed" in out
    assert f"us-east-1: {sb.settings.streams.ingest} (ACTIVE" in out, out
    assert set(calls) == {"kinesisanalytics:DescribeApplication", "kinesis:DescribeStreamSummary"}, calls
    assert all(a.split(":")[1].startswith(READS) for a in calls)

    # Control: a write by the same key in the same kind of window is seen.
    calls = _calls_during(sb, lambda: put(load(props), "us-east-1", [("plan-control", b"{not json")]))
    assert any(not a.split(":")[1].startswith(READS) for a in calls), calls

"""`homeflow drill`'s options are checked before anything starts (drills/run.py validate), and the
plan a drill prints for a deployment it did not create (drills/plan.py) names everything it
would touch and how to remove its events."""
from __future__ import annotations

from pathlib import Path

import pytest

from conf.settings import load
from drills.plan import CALLS, Plan
from drills.run import DrillOptions, validate
from sandbox.paths import LOCAL_PROPERTIES


def _opts(tmp_path, **kw):
    return DrillOptions(scenario=kw.pop("scenario", "region-loss"), out=tmp_path, **kw)


def test_managed_flink_needs_a_zip_and_runs_three_scenarios(tmp_path):
    z = tmp_path / "app.zip"
    z.write_bytes(b"PK")
    for s in ("move-keys", "region-loss", "upgrade"):
        validate(_opts(tmp_path, scenario=s, backend="managed-flink", zip=z))
    with pytest.raises(ValueError, match="needs the application zip"):
        validate(_opts(tmp_path, backend="managed-flink"))
    with pytest.raises(ValueError, match="needs the application zip"):
        validate(_opts(tmp_path, backend="managed-flink", zip=tmp_path / "missing.zip"))
    for s in ("replay", "reshard"):
        with pytest.raises(ValueError, match=f"the {s} drill does not run on managed-flink"):
            validate(_opts(tmp_path, scenario=s, backend="managed-flink", zip=z))


def test_bad_names_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown backend 'k8s'"):
        validate(_opts(tmp_path, backend="k8s"))
    with pytest.raises(ValueError, match="unknown scenario 'chaos'"):
        validate(_opts(tmp_path, scenario="chaos"))
    with pytest.raises(ValueError, match="recovery must be checkpoint or snapshot"):
        validate(_opts(tmp_path, backend="managed-flink", zip=Path(__file__), recovery="savepoint"))
    with pytest.raises(ValueError, match="recovery snapshot is a managed-flink option"):
        validate(_opts(tmp_path, recovery="snapshot"))


@pytest.mark.parametrize("scenario", sorted(CALLS))
def test_the_plan_names_what_it_touches_bounds_its_traffic_and_changes_nothing(scenario):
    settings = load(LOCAL_PROPERTIES)
    p = Plan(scenario, ("us-east-1", "eu-west-1"), "homeflow", 40, 50.0, 3)
    text = "\n".join(p.lines(settings, {"us-east-1": "RUNNING, version 4"}, {"eu-west-1": "ACTIVE, 2 open shards"}))
    assert "us-east-1: homeflow (RUNNING, version 4)" in text and "eu-west-1: homeflow (not found)" in text
    assert f"eu-west-1: {settings.streams.ingest} (ACTIVE, 2 open shards)" in text
    assert "40 business keys" in text and "50 events/s" in text and "events at most" in text
    assert f"DELETE FROM {settings.lake.table_prefix}_<region, - as _> WHERE event_id LIKE '<run id>-%'" in text
    assert "real keys are moved only by" in text and "homeflow query --drill <run id>" in text
    assert text.splitlines()[-1] == "  nothing was changed: run again with --yes to go ahead"
    for call in CALLS[scenario]:
        assert call.format(flips=3, moving=8) in text

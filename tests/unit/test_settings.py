import json
import subprocess
import sys

import pytest

from sandbox.paths import LOCAL_PROPERTIES, ROOT
from conf.settings import ConfigError, groups_from_properties, load, settings_from_groups


def groups():
    return groups_from_properties(json.loads(LOCAL_PROPERTIES.read_text()), "local")


def test_local_properties_are_valid():
    s = load(LOCAL_PROPERTIES)
    assert s.job.region == "us-east-1" and "eu-west-1" in s.job.remote_regions
    assert s.lake.table_name("eu-west-1") == "events_eu_west_1"


@pytest.mark.parametrize("path, value, needle", [
    ("homeflow.job/checkpoint.interval.ms", "soon", "homeflow.job/checkpoint.interval.ms: must be an integer"),
    ("homeflow.job/parallelism", "0", "homeflow.job/parallelism: must be in 1..256"),
    ("homeflow.job/region", "moon-1", "homeflow.job/region: not an AWS region"),
    ("homeflow.job/region", "us-west-2", "homeflow.job/region: 'us-west-2' is not in homeflow.job/regions"),
    ("homeflow.job/python.execution.mode", "fork", "homeflow.job/python.execution.mode: must be one of"),
    ("homeflow.job/dedup.ttl.hours", "1", "homeflow.job/dedup.ttl.hours: must be in 24.."),
    ("homeflow.job/read.publish.interval.ms", "50", "read.publish.interval.ms: must be in 200..3600000, got 50 (or 0"),
    ("homeflow.aws/endpoint", "localhost:4566", "homeflow.aws/endpoint: must be an http(s) URL"),
    ("homeflow.streams/initial.position", "MIDDLE", "homeflow.streams/initial.position"),
    ("homeflow.streams/forward", "homeflow-ingest", "must differ"),
    ("homeflow.streams/shard.discovery.ms", "100", "homeflow.streams/shard.discovery.ms: must be in 1000..600000"),
    ("homeflow.job/paralelism", "2", "homeflow.job/paralelism: unknown property"),
    ("homeflow.jbo/region", "us-east-1", "homeflow.jbo: unknown property group"),
    ("homeflow.lake/compact.commits", "1", "homeflow.lake/compact.commits: must be in 2..1000000, got 1 (or 0"),
    ("homeflow.lake/compact.min.interval.ms", "10", "homeflow.lake/compact.min.interval.ms: must be in 1000.."),
    ("homeflow.lake/compact.target.bytes", "1k", "homeflow.lake/compact.target.bytes: must be an integer"),
    ("homeflow.lake/expire.older.than.ms", "500", "homeflow.lake/expire.older.than.ms: must be in 1000..2592000000, got 500 (or 0"),
    ("homeflow.lake/expire.retain.last", "0", "homeflow.lake/expire.retain.last: must be in 1..100000"),
    ("homeflow.lake/expire.interval.ms", "-1", "homeflow.lake/expire.interval.ms: must be in 1000.."),
    ("homeflow.job/dedup.seed", "everything", "homeflow.job/dedup.seed: must be one of"),
    ("homeflow.job/order.lanes", "shard", "homeflow.job/order.lanes: must be one of"),
    ("homeflow.job/order.skew.ms", "-5", "homeflow.job/order.skew.ms: must be in 0..60000"),
    ("homeflow.job/batch.max.records", "0", "homeflow.job/batch.max.records: must be in 1..100000"),
    ("homeflow.job/batch.max.ms", "a while", "homeflow.job/batch.max.ms: must be an integer"),
    ("homeflow.job/batch.max.bytes", "1024", "homeflow.job/batch.max.bytes: must be in 65536.."),
    ("homeflow.job/max.parallelism", "0", "homeflow.job/max.parallelism: must be in 1..32768"),
])
def test_bad_property_is_named(path, value, needle):
    with pytest.raises(ConfigError) as e:
        settings_from_groups(groups(), {path: value})
    assert needle in str(e.value)


def test_read_publisher_can_be_turned_off():
    g = groups()
    assert settings_from_groups(g).job.read_publish_interval_ms == 1000
    g["homeflow.job"]["read.publish.interval.ms"] = "0"
    assert settings_from_groups(g).job.read_publish_interval_ms == 0


def test_compaction_is_on_by_default_and_can_be_turned_off():
    g = groups()
    s = settings_from_groups(g).lake
    assert (s.compact_commits, s.compact_min_interval_ms, s.compact_target_bytes) == (60, 60_000, 128 * 1024 * 1024)
    g.setdefault("homeflow.lake", {})["compact.commits"] = "0"
    assert settings_from_groups(g).lake.compact_commits == 0


def test_expiry_is_on_by_default_and_can_be_turned_off():
    g = groups()
    s = settings_from_groups(g).lake
    assert (s.expire_older_than_ms, s.expire_retain_last, s.expire_interval_ms) == (600_000, 10, 300_000)
    g.setdefault("homeflow.lake", {})["expire.older.than.ms"] = "0"
    assert settings_from_groups(g).lake.expire_older_than_ms == 0


def test_order_and_batching_defaults():
    j = settings_from_groups(groups()).job
    assert (j.order_lanes, j.order_skew_ms, j.dedup_seed) == ("entry", 100, "lake")
    assert (j.batch_max_records, j.batch_max_ms, j.batch_max_bytes) == (256, 50, 1 << 20)


def test_max_parallelism_bounds_parallelism():
    with pytest.raises(ConfigError, match="homeflow.job/max.parallelism: 2 is below homeflow.job/parallelism 4"):
        settings_from_groups(groups(), {"homeflow.job/max.parallelism": "2", "homeflow.job/parallelism": "4"})


def test_missing_required_property_is_named():
    g = groups()
    del g["homeflow.job"]["regions"]
    with pytest.raises(ConfigError, match="homeflow.job/regions: required property is missing"):
        settings_from_groups(g)


def test_not_a_properties_list(tmp_path):
    p = tmp_path / "p.json"
    p.write_text('{"homeflow.job": {}}')
    with pytest.raises(ConfigError, match="must be a JSON list"):
        load(p)


def test_job_entry_point_fails_at_start_naming_the_key(tmp_path):
    doc = json.loads(LOCAL_PROPERTIES.read_text())
    doc[0]["PropertyMap"]["max.hops"] = "many"
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(doc))
    r = subprocess.run([sys.executable, "-m", "jobs.ingest", "--properties", str(p)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "homeflow.job/max.hops: must be an integer" in r.stderr
    ok = subprocess.run([sys.executable, "-m", "jobs.ingest", "--properties", str(LOCAL_PROPERTIES),
                         "--region", "eu-west-1", "--validate-only"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "valid for region eu-west-1" in ok.stdout


def test_aws_example_is_valid_and_has_run_options():
    s = load(ROOT / "conf" / "aws" / "us-east-1.json")
    assert s.aws.endpoint is None and s.job.parallelism == 4

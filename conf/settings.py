"""Typed, validated job settings read from a Managed-Flink-shaped properties file.

Managed Service for Apache Flink hands the job `/etc/flink/application_properties.json`, a list
of `{"PropertyGroupId": ..., "PropertyMap": {...}}`. Locally we read a file of the same shape, so
one loader serves both. Every problem is reported as `group/key: what is wrong`, at start-up.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

MANAGED_FLINK_PROPERTIES = Path("/etc/flink/application_properties.json")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
STREAM_RE = re.compile(r"^[a-zA-Z0-9_.-]{1,128}$")
# Run options are read by the Managed Flink service itself, not by the job.
IGNORED_GROUPS = {"kinesis.analytics.flink.run.options"}


class ConfigError(ValueError):
    """Bad configuration; the message names the property (group/key)."""


@dataclass(frozen=True)
class AwsSettings:
    endpoint: str | None  # None on AWS; the sandbox endpoint locally
    access_key_id: str | None
    secret_access_key: str | None
    account_id: str


@dataclass(frozen=True)
class StreamSettings:
    ingest: str
    forward: str
    dead_letter: str
    initial_position: str  # TRIM_HORIZON | LATEST
    forward_ordering: str  # key (order-preserving sink) | none (the connector's stock sink)
    forward_aggregate: bool = True  # key-ordered sink packs a key's consecutive records (KPL format)
    # How often each source lists its stream's shards: after a split or merge, a key of the closed
    # shard waits up to this long for its child to be read (the connector's default is 10 s).
    # Two sources per job, one ListShards each per interval: far inside the API's per-stream limit.
    shard_discovery_ms: int = 2_000


@dataclass(frozen=True)
class LakeSettings:
    catalog_table: str  # the DynamoDB table holding Iceberg table pointers
    bucket_prefix: str  # bucket of home region R is f"{bucket_prefix}-{R}"
    namespace: str
    table_prefix: str  # table of home region R is f"{table_prefix}_{R with _}"
    # Compaction inside the job (dev.homeflow.flink.LakeMaintenanceFunction): every
    # compact_commits commits (0: never), at most once per compact_min_interval_ms.
    compact_commits: int
    compact_min_interval_ms: int
    compact_target_bytes: int
    # Snapshot expiry inside the job, with `homeflow maintain`'s Flink rule (0: never), at most
    # once per expire_interval_ms.
    expire_older_than_ms: int
    expire_retain_last: int
    expire_interval_ms: int

    def bucket(self, region: str) -> str:
        return f"{self.bucket_prefix}-{region}"

    def warehouse(self, region: str) -> str:
        return f"s3://{self.bucket(region)}/warehouse"

    def table_name(self, region: str) -> str:
        return f"{self.table_prefix}_{region.replace('-', '_')}"


@dataclass(frozen=True)
class JobSettings:
    region: str
    regions: tuple[str, ...]
    parallelism: int
    checkpoint_interval_ms: int
    python_execution_mode: str  # thread | process
    max_hops: int
    max_record_bytes: int
    dedup_ttl_hours: int
    routing_table: str  # DynamoDB table holding the routing document
    routing_poll_ms: int
    lake_stats_interval_ms: int
    read_publish_interval_ms: int  # 0: this job does not publish read pointers (`homeflow publish` does)
    handoff: str  # ordered (markers + acquisition, udfs/handoff.py) | none (the control)
    handoff_timeout_ms: int
    table_wait_ms: int
    # At start, the event_ids already committed come from: lake (every home table) | home (this
    # region's table only: the control that commits moved keys' events twice) | none
    dedup_seed: str
    checkpoint_dir: str | None  # local runs: durable checkpoints (ignored on Managed Flink)
    order_lanes: str = "entry"  # entry (udfs/lanes.py) | origin (the control: marks by declared origin)
    order_skew_ms: int = 100  # how far two regions' Kinesis arrival times may disagree
    max_parallelism: int = 128  # key groups: the most the job can be rescaled to (fixed with its state)
    batch_max_records: int = 256  # records of one key group per Python call, at most
    batch_max_ms: int = 50  # the longest a record waits for its batch to fill
    batch_max_bytes: int = 1 << 20

    @property
    def remote_regions(self) -> tuple[str, ...]:
        return tuple(r for r in self.regions if r != self.region)


@dataclass(frozen=True)
class Settings:
    job: JobSettings
    aws: AwsSettings
    streams: StreamSettings
    lake: LakeSettings


# ---------------------------------------------------------------- parsing helpers

def _int(lo: int, hi: int) -> Callable[[str], int]:
    def conv(v: str) -> int:
        try:
            n = int(str(v).strip())
        except ValueError:
            raise ValueError(f"must be an integer, got {v!r}") from None
        if not lo <= n <= hi:
            raise ValueError(f"must be in {lo}..{hi}, got {n}")
        return n
    return conv


def _off_or_int(lo: int, hi: int) -> Callable[[str], int]:
    within = _int(lo, hi)

    def conv(v: str) -> int:
        if str(v).strip() == "0":
            return 0
        try:
            return within(v)
        except ValueError as e:
            raise ValueError(f"{e} (or 0 to turn it off)") from None
    return conv


def _choice(*options: str) -> Callable[[str], str]:
    def conv(v: str) -> str:
        s = str(v).strip()
        if s.lower() not in [o.lower() for o in options]:
            raise ValueError(f"must be one of {', '.join(options)}, got {v!r}")
        return next(o for o in options if o.lower() == s.lower())
    return conv


def _region(v: str) -> str:
    s = str(v).strip()
    if not REGION_RE.match(s):
        raise ValueError(f"not an AWS region name: {v!r}")
    return s


def _regions(v: str) -> tuple[str, ...]:
    items = tuple(_region(x) for x in str(v).split(",") if x.strip())
    if len(items) < 1 or len(set(items)) != len(items):
        raise ValueError(f"must be a comma-separated list of distinct regions, got {v!r}")
    return items


def _name(v: str) -> str:
    s = str(v).strip()
    if not STREAM_RE.match(s):
        raise ValueError(f"must match {STREAM_RE.pattern}, got {v!r}")
    return s


def _url(v: str) -> str:
    s = str(v).strip()
    if not re.match(r"^https?://[^/\s]+/?$", s):
        raise ValueError(f"must be an http(s) URL like http://127.0.0.1:4566, got {v!r}")
    return s.rstrip("/")


def _str(v: str) -> str:
    s = str(v).strip()
    if not s:
        raise ValueError("must not be empty")
    return s


REQUIRED = object()

# group -> key -> (converter, default)
SCHEMA: dict[str, dict[str, tuple[Callable[[str], Any], Any]]] = {
    "homeflow.job": {
        "region": (_region, REQUIRED),
        "regions": (_regions, REQUIRED),
        "parallelism": (_int(1, 256), 1),
        "checkpoint.interval.ms": (_int(200, 3_600_000), 10_000),
        "python.execution.mode": (_choice("thread", "process"), "thread"),
        # Each re-forward happens under a newer epoch, so forwarding cannot loop; a record in
        # flight bounces once per move it meets. 4 lets it meet two overlapping moves.
        "max.hops": (_int(2, 10), 4),
        "max.record.bytes": (_int(64, 1_000_000), 256 * 1024),
        "dedup.ttl.hours": (_int(24, 24 * 30), 24),
        "routing.table": (_name, "homeflow-routing"),
        "routing.poll.ms": (_int(100, 60_000), 1_000),
        "lake.stats.interval.ms": (_int(1_000, 3_600_000), 15_000),
        # How often the job advances this region's read pointers and lake view (0: never).
        "read.publish.interval.ms": (_off_or_int(200, 3_600_000), 1_000),
        "handoff": (_choice("ordered", "none"), "ordered"),
        "handoff.timeout.ms": (_int(1_000, 3_600_000), 30_000),
        "table.wait.ms": (_int(1_000, 3_600_000), 30_000),
        # What a start without state counts as committed: every home table's event_ids (lake), only
        # this region's (home: the behaviour before 2026-12-04, kept as the control), or none.
        "dedup.seed": (_choice("lake", "home", "none"), "lake"),
        "checkpoint.dir": (_str, None),
        # A key's order is kept per entry lane (the ingest stream a record entered through); `origin`
        # keys it by the producer's declared origin and marks every suspect, as before 2026-12-04:
        # only for the control that shows such marks flag rows that are in order.
        "order.lanes": (_choice("entry", "origin"), "entry"),
        # Records that entered through two regions are ordered by Kinesis's arrival times; within
        # this margin the order is unknown and a suspect row is marked.
        "order.skew.ms": (_int(0, 60_000), 100),
        # The router takes a key group's records many at a time (dev.homeflow.flink.KeyGroupBatcher):
        # a batch leaves when it holds this many records, this many bytes, when its first record
        # has waited this long, and before every checkpoint barrier.
        "batch.max.records": (_int(1, 100_000), 256),
        # The number of key groups (Flink's max parallelism): the most the job can be rescaled to.
        # Part of the state's shape: a savepoint restores only with the value it was taken with.
        # 128 is what Flink chose for these jobs before it was a setting.
        "max.parallelism": (_int(1, 32_768), 128),
        "batch.max.ms": (_int(1, 10_000), 50),
        "batch.max.bytes": (_int(64 * 1024, 64 * 1024 * 1024), 1 << 20),
    },
    "homeflow.aws": {
        "endpoint": (_url, None),
        "access.key.id": (_str, None),
        "secret.access.key": (_str, None),
        "account.id": (_str, "123456789012"),
    },
    "homeflow.streams": {
        "ingest": (_name, "homeflow-ingest"),
        "forward": (_name, "homeflow-forward"),
        "dead.letter": (_name, "homeflow-dead-letter"),
        "initial.position": (_choice("TRIM_HORIZON", "LATEST"), "TRIM_HORIZON"),
        "forward.ordering": (_choice("key", "none"), "key"),
        "forward.aggregate": (_choice("on", "off"), "on"),
        "shard.discovery.ms": (_int(1_000, 600_000), "2000"),
    },
    "homeflow.lake": {
        "catalog.table": (_name, "homeflow-catalog"),
        "bucket.prefix": (_name, "homeflow-lake"),
        "namespace": (_name, "homeflow"),
        "table.prefix": (_name, "events"),
        # One small file per commit adds up (86,400 a day at 1 s checkpoints): rewrite them every
        # N commits while the job runs (0: never; `homeflow maintain` still can).
        "compact.commits": (_off_or_int(2, 1_000_000), 60),
        "compact.min.interval.ms": (_int(1_000, 86_400_000), 60_000),
        "compact.target.bytes": (_int(1024 * 1024, 2 * 1024 ** 3), 128 * 1024 * 1024),
        # Every commit adds a snapshot to the table's metadata file (about 1.1 KB: 90 MiB a day at
        # 1 s checkpoints), which every commit rewrites and every refresh rereads. Expire what is
        # older than this (0: never); the chain down to the newest Flink job's last commit and the
        # published lake view's snapshot are always kept, as `homeflow maintain` keeps them.
        # 10 minutes: 600-900 snapshots at 1 s checkpoints; the age bounds reads of older snapshots
        # and restores of an earlier job's savepoint, never the newest job's (README, maintenance).
        "expire.older.than.ms": (_off_or_int(1_000, 30 * 86_400_000), 600_000),
        "expire.retain.last": (_int(1, 100_000), 10),
        "expire.interval.ms": (_int(1_000, 86_400_000), 300_000),
    },
}


def groups_from_properties(doc: Any, source: str) -> dict[str, dict[str, str]]:
    if not isinstance(doc, list):
        raise ConfigError(f"{source}: must be a JSON list of {{PropertyGroupId, PropertyMap}}")
    groups: dict[str, dict[str, str]] = {}
    for i, g in enumerate(doc):
        if not isinstance(g, dict) or "PropertyGroupId" not in g or not isinstance(g.get("PropertyMap"), dict):
            raise ConfigError(f"{source}: entry {i} must have PropertyGroupId and a PropertyMap object")
        groups.setdefault(g["PropertyGroupId"], {}).update({k: str(v) for k, v in g["PropertyMap"].items()})
    return groups


def settings_from_groups(groups: dict[str, dict[str, str]], overrides: dict[str, str] | None = None) -> Settings:
    """`overrides` maps 'group/key' to a value (command-line flags win over the file)."""
    groups = {g: dict(m) for g, m in groups.items()}
    for path, value in (overrides or {}).items():
        g, k = path.split("/", 1)
        groups.setdefault(g, {})[k] = value
    for g, m in groups.items():
        if g in IGNORED_GROUPS:
            continue
        if g not in SCHEMA:
            raise ConfigError(f"{g}: unknown property group (known: {', '.join(sorted(SCHEMA))})")
        for k in m:
            if k not in SCHEMA[g]:
                raise ConfigError(f"{g}/{k}: unknown property (known: {', '.join(sorted(SCHEMA[g]))})")
    values: dict[str, dict[str, Any]] = {}
    for g, spec in SCHEMA.items():
        out = values.setdefault(g, {})
        for k, (conv, default) in spec.items():
            raw = groups.get(g, {}).get(k)
            if raw is None or str(raw).strip() == "":
                if default is REQUIRED:
                    raise ConfigError(f"{g}/{k}: required property is missing")
                out[k] = default
                continue
            try:
                out[k] = conv(raw)
            except ValueError as e:
                raise ConfigError(f"{g}/{k}: {e}") from None
    j, a, s, l = (values[g] for g in ("homeflow.job", "homeflow.aws", "homeflow.streams", "homeflow.lake"))
    if j["region"] not in j["regions"]:
        raise ConfigError(f"homeflow.job/region: {j['region']!r} is not in homeflow.job/regions {j['regions']}")
    if (a["access.key.id"] is None) != (a["secret.access.key"] is None):
        raise ConfigError("homeflow.aws/secret.access.key: set both access.key.id and secret.access.key, or neither")
    if j["parallelism"] > j["max.parallelism"]:
        raise ConfigError(f"homeflow.job/max.parallelism: {j['max.parallelism']} is below homeflow.job/parallelism "
                          f"{j['parallelism']}")
    if len({s["ingest"], s["forward"], s["dead.letter"]}) != 3:
        raise ConfigError("homeflow.streams/forward: ingest, forward and dead.letter streams must differ")
    return Settings(
        job=JobSettings(
            region=j["region"], regions=j["regions"], parallelism=j["parallelism"],
            checkpoint_interval_ms=j["checkpoint.interval.ms"],
            python_execution_mode=j["python.execution.mode"], max_hops=j["max.hops"],
            max_record_bytes=j["max.record.bytes"], dedup_ttl_hours=j["dedup.ttl.hours"],
            routing_table=j["routing.table"], routing_poll_ms=j["routing.poll.ms"],
            lake_stats_interval_ms=j["lake.stats.interval.ms"],
            read_publish_interval_ms=j["read.publish.interval.ms"],
            handoff=j["handoff"], handoff_timeout_ms=j["handoff.timeout.ms"], table_wait_ms=j["table.wait.ms"],
            dedup_seed=j["dedup.seed"], checkpoint_dir=j["checkpoint.dir"],
            order_lanes=j["order.lanes"], order_skew_ms=j["order.skew.ms"],
            batch_max_records=j["batch.max.records"], batch_max_ms=j["batch.max.ms"],
            batch_max_bytes=j["batch.max.bytes"], max_parallelism=j["max.parallelism"],
        ),
        aws=AwsSettings(a["endpoint"], a["access.key.id"], a["secret.access.key"], a["account.id"]),
        streams=StreamSettings(s["ingest"], s["forward"], s["dead.letter"], s["initial.position"],
                               s["forward.ordering"], s["forward.aggregate"] == "on", s["shard.discovery.ms"]),
        lake=LakeSettings(l["catalog.table"], l["bucket.prefix"], l["namespace"], l["table.prefix"],
                          l["compact.commits"], l["compact.min.interval.ms"], l["compact.target.bytes"],
                          l["expire.older.than.ms"], l["expire.retain.last"], l["expire.interval.ms"]),
    )


def load(path: str | Path | None = None, overrides: dict[str, str] | None = None) -> Settings:
    """Load from `path`, or from Managed Flink's file when no path is given."""
    p = Path(path) if path else MANAGED_FLINK_PROPERTIES
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{p}: properties file not found") from None
    except ValueError as e:
        raise ConfigError(f"{p}: not valid JSON: {e}") from None
    return settings_from_groups(groups_from_properties(doc, str(p)), overrides)

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
    dead_letter_retention_days: int = 90  # the dead-letter archive keeps this many days (0: forever)

    def bucket(self, region: str) -> str:
        return f"{self.bucket_prefix}-{region}"

    def warehouse(self, region: str) -> str:
        return f"s3://{self.bucket(region)}/warehouse"

    def table_name(self, region: str) -> str:
        return f"{self.table_prefix}_{region.replace('-', '_')}"

    def dead_letter_table_name(self, region: str) -> str:
        return f"dead_letters_{region.replace('-', '_')}"


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

def _described(kind: str, bounds: str = ""):
    """Tag a converter with the type and bounds the configuration reference prints."""
    def tag(conv):
        conv.kind, conv.bounds = kind, bounds
        return conv
    return tag


def _int(lo: int, hi: int) -> Callable[[str], int]:
    @_described("integer", f"{lo:,} .. {hi:,}")
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

    @_described("integer", f"0 (off) or {lo:,} .. {hi:,}")
    def conv(v: str) -> int:
        if str(v).strip() == "0":
            return 0
        try:
            return within(v)
        except ValueError as e:
            raise ValueError(f"{e} (or 0 to turn it off)") from None
    return conv


def _choice(*options: str) -> Callable[[str], str]:
    @_described("choice", " | ".join(options))
    def conv(v: str) -> str:
        s = str(v).strip()
        if s.lower() not in [o.lower() for o in options]:
            raise ValueError(f"must be one of {', '.join(options)}, got {v!r}")
        return next(o for o in options if o.lower() == s.lower())
    return conv


@_described("AWS region", "e.g. us-east-1")
def _region(v: str) -> str:
    s = str(v).strip()
    if not REGION_RE.match(s):
        raise ValueError(f"not an AWS region name: {v!r}")
    return s


@_described("list of AWS regions", "comma-separated, distinct")
def _regions(v: str) -> tuple[str, ...]:
    items = tuple(_region(x) for x in str(v).split(",") if x.strip())
    if len(items) < 1 or len(set(items)) != len(items):
        raise ValueError(f"must be a comma-separated list of distinct regions, got {v!r}")
    return items


@_described("name", "letters, digits, _ . -; 1-128 characters")
def _name(v: str) -> str:
    s = str(v).strip()
    if not STREAM_RE.match(s):
        raise ValueError(f"must match {STREAM_RE.pattern}, got {v!r}")
    return s


@_described("URL", "http(s)://host[:port]")
def _url(v: str) -> str:
    s = str(v).strip()
    if not re.match(r"^https?://[^/\s]+/?$", s):
        raise ValueError(f"must be an http(s) URL like http://127.0.0.1:4566, got {v!r}")
    return s.rstrip("/")


@_described("string", "not empty")
def _str(v: str) -> str:
    s = str(v).strip()
    if not s:
        raise ValueError("must not be empty")
    return s


REQUIRED = object()


@dataclass(frozen=True)
class Prop:
    """One property of the schema: its converter (which carries type and bounds), its default
    (REQUIRED when there is none) and what it means. docs/reference/configuration.md is
    generated from these, so the reference cannot drift from what the loader accepts."""
    conv: Callable[[str], Any]
    default: Any
    doc: str


# group -> key -> Prop
SCHEMA: dict[str, dict[str, Prop]] = {
    "homeflow.job": {
        "region": Prop(_region, REQUIRED, "The region this job runs in: the home whose table it commits."),
        "regions": Prop(_regions, REQUIRED, "Every region of the deployment (the routing table may name only these)."),
        "parallelism": Prop(_int(1, 256), 1, "Parallelism of the job's operators (Managed Flink's own parallelism "
                            "setting wins there)."),
        "checkpoint.interval.ms": Prop(_int(200, 3_600_000), 10_000,
                                       "Checkpoint interval: the lake commits once per completed checkpoint, so this "
                                       "is the commit latency. On Managed Flink the stack sets it and the "
                                       "application's CheckpointConfiguration to one value (CheckpointIntervalMs)."),
        "python.execution.mode": Prop(_choice("thread", "process"), "thread",
                                      "PyFlink's Python execution mode (thread: in the TaskManager's JVM; "
                                      "process: a separate Python worker)."),
        # Each re-forward happens under a newer epoch, so forwarding cannot loop; a record in
        # flight bounces once per move it meets. 4 lets it meet two overlapping moves.
        "max.hops": Prop(_int(2, 10), 4, "How many times a record may be forwarded between regions before it is "
                         "dead-lettered (`routing-conflict`, hop limit); 4 lets a record in flight meet two "
                         "overlapping moves."),
        "max.record.bytes": Prop(_int(64, 1_000_000), 256 * 1024,
                                 "Records larger than this are dead-lettered (`oversized`) instead of routed."),
        "dedup.ttl.hours": Prop(_int(24, 24 * 30), 24,
                                "How long the router remembers an event_id it routed (keyed state TTL); a duplicate "
                                "within this window is dropped. Also the least replay window a start without "
                                "state seeds."),
        "routing.table": Prop(_name, "homeflow-routing", "The DynamoDB (global) table holding the routing document."),
        "routing.poll.ms": Prop(_int(100, 60_000), 1_000,
                                "How often the job reads the routing table; also paces acknowledgements. After "
                                "a start, routing waits for a fresh table for max(5 s, 5 polls)."),
        "lake.stats.interval.ms": Prop(_int(1_000, 3_600_000), 15_000,
                                       "How often the job refreshes the `homeflow_lake_*` table gauges."),
        "read.publish.interval.ms": Prop(_off_or_int(200, 3_600_000), 1_000,
                                         "How often the job advances this region's read pointers and lake view "
                                         "(0: never; `homeflow publish` can do it instead)."),
        "handoff": Prop(_choice("ordered", "none"), "ordered",
                        "ordered: a key that changes home keeps its order (markers and acquisition); "
                        "none: the control without the hand-off."),
        "handoff.timeout.ms": Prop(_int(1_000, 3_600_000), 30_000,
                                   "How long a new home waits for the old home's marker before it routes the "
                                   "key's held records anyway (they are marked `handoff-timeout`)."),
        "table.wait.ms": Prop(_int(1_000, 3_600_000), 30_000,
                              "How long a record routed under a newer epoch than this job's table waits for that "
                              "table before it is dead-lettered (`stale-routing-table`)."),
        # What every start (restores included) counts as committed: every home table's event_ids
        # (lake), only this region's (home: the behaviour before 2026-12-04, kept as the control), or
        # none (the control of a restart from an older snapshot).
        "dedup.seed": Prop(_choice("lake", "home", "none"), "lake",
                           "What a start counts as already committed, restores included: every home table's "
                           "event_ids within the replay window (lake; a start without state, or from a snapshot "
                           "older than the last commit, then commits nothing twice), only this region's table "
                           "(home: a control that commits moved keys' events twice), or nothing (none: a "
                           "control)."),
        "checkpoint.dir": Prop(_str, None, "Local runs: where durable checkpoints go (default "
                               "`.sandbox/checkpoints/<region>`). Ignored on Managed Flink."),
        "order.lanes": Prop(_choice("entry", "origin"), "entry",
                            "How a key's order is judged: per entry lane, the ingest stream and shard a record "
                            "entered through (entry), or by the producer's declared origin (origin: a control "
                            "that marks rows which are in order)."),
        "order.skew.ms": Prop(_int(0, 60_000), 100,
                              "How far two regions' Kinesis arrival times may disagree; records of one key that "
                              "entered through two regions within this margin have no known order and a suspect "
                              "row is marked."),
        "batch.max.records": Prop(_int(1, 100_000), 256,
                                  "The router takes a key group's records many at a time "
                                  "(dev.homeflow.flink.KeyGroupBatcher): a batch leaves when it holds this many "
                                  "records, `batch.max.bytes`, when its first record has waited `batch.max.ms`, "
                                  "and before every checkpoint barrier."),
        "batch.max.ms": Prop(_int(1, 10_000), 50,
                             "The longest a record waits in a key group's batch before the batch leaves for the "
                             "router (a quiet key does not wait longer)."),
        "batch.max.bytes": Prop(_int(64 * 1024, 64 * 1024 * 1024), 1 << 20,
                                "A key group's batch leaves for the router once its records hold this many bytes."),
        # Part of the state's shape: a savepoint restores only with the value it was taken with.
        "max.parallelism": Prop(_int(1, 32_768), 128,
                                "The number of key groups (Flink's max parallelism): the most the job can be "
                                "rescaled to. Part of the state's shape: a savepoint restores only with the value "
                                "it was taken with; 128 is what Flink chose for these jobs before it was a setting."),
    },
    "homeflow.aws": {
        "endpoint": Prop(_url, None, "One endpoint for every AWS service (the local sandbox); unset on AWS."),
        "access.key.id": Prop(_str, None, "Static credentials (the sandbox); unset on AWS, where the "
                              "application's role applies. Set both or neither."),
        "secret.access.key": Prop(_str, None, "The secret of `access.key.id`; set both or neither."),
        "account.id": Prop(_str, "123456789012", "The AWS account id (stream ARNs, bucket names)."),
    },
    "homeflow.streams": {
        "ingest": Prop(_name, "homeflow-ingest", "The Kinesis stream producers write to, in every region."),
        "forward": Prop(_name, "homeflow-forward", "The Kinesis stream other regions forward this region's keys to."),
        "dead.letter": Prop(_name, "homeflow-dead-letter", "The Kinesis stream bad records go to, with a reason."),
        "initial.position": Prop(_choice("TRIM_HORIZON", "LATEST"), "TRIM_HORIZON",
                                 "Where a start without state begins reading the streams."),
        "forward.ordering": Prop(_choice("key", "none"), "key",
                                 "key: the forward sink keeps each key's order across retries (homeflow's "
                                 "sink); none: the connector's stock KinesisStreamsSink."),
        "forward.aggregate": Prop(_choice("on", "off"), "on",
                                  "The key-ordered sink packs a key's consecutive records into one Kinesis record "
                                  "(KPL aggregation format)."),
        # Two sources per job, one ListShards each per interval: far inside the API's per-stream limit.
        "shard.discovery.ms": Prop(_int(1_000, 600_000), "2000",
                                   "How often each source lists its stream's shards: after a split or merge, a "
                                   "key of the closed shard waits up to this long for its child to be read."),
    },
    "homeflow.lake": {
        "catalog.table": Prop(_name, "homeflow-catalog",
                              "The DynamoDB (global) table holding the Iceberg tables' pointers."),
        "bucket.prefix": Prop(_name, "homeflow-lake", "The lake bucket of region R is `<bucket.prefix>-R`."),
        "namespace": Prop(_name, "homeflow", "The Iceberg namespace of the home tables."),
        "table.prefix": Prop(_name, "events", "The home table of region R is `<table.prefix>_<R with _>`."),
        # One small file per commit adds up (86,400 a day at 1 s checkpoints).
        "compact.commits": Prop(_off_or_int(2, 1_000_000), 60,
                                "Rewrite small files every N commits while the job runs (0: never; "
                                "`homeflow maintain` still can)."),
        "compact.min.interval.ms": Prop(_int(1_000, 86_400_000), 60_000,
                                        "At most one compaction per this interval."),
        "compact.target.bytes": Prop(_int(1024 * 1024, 2 * 1024 ** 3), 128 * 1024 * 1024,
                                     "Target size of a compacted data file."),
        # Every commit adds a snapshot (about 1.1 KB) to the metadata file every commit rewrites;
        # 10 minutes: 600-900 snapshots at 1 s checkpoints.
        "expire.older.than.ms": Prop(_off_or_int(1_000, 30 * 86_400_000), 600_000,
                                     "Expire snapshots older than this while the job runs (0: never). The chain "
                                     "down to the newest Flink job's last commit and the published lake view's "
                                     "snapshot are always kept."),
        "expire.retain.last": Prop(_int(1, 100_000), 10, "Snapshots always kept, however old."),
        "expire.interval.ms": Prop(_int(1_000, 86_400_000), 300_000, "At most one expiry run per this interval."),
        "dead.letter.retention.days": Prop(_off_or_int(1, 36_500), 90,
                                           "Days the dead-letter archive keeps (0: forever). Whole days older "
                                           "than this are deleted by the job, checked every expire.interval.ms."),
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
        for k, prop in spec.items():
            conv, default = prop.conv, prop.default
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
                          l["expire.older.than.ms"], l["expire.retain.last"], l["expire.interval.ms"],
                          l["dead.letter.retention.days"]),
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

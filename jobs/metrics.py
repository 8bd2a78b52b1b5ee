"""Every metric the job registers, with what it means.

All live in the metric group `kinesisanalytics`, the only group Managed Flink exports to
CloudWatch. docs/reference/metrics.md is generated from this list, and
tests/unit/test_docs_reference.py compares it with the names the code registers (Python and
Java), so a new metric without a line here fails the tests. `<reason>` and `<region>` stand for
a family: one metric per dead-letter reason (with `-` as `_`) or per remote region.
"""
from __future__ import annotations

from dataclasses import dataclass

GROUP = "kinesisanalytics"


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # counter | gauge
    operator: str  # the operator (uid) that registers it
    meaning: str


METRICS: tuple[Metric, ...] = (
    # The router (udfs/handoff.py decides; jobs/router.py BatchRouterFunction counts; the Java
    # CommittedEventDedup after it, uid router-dedup, counts what is committed and deduplicated)
    Metric("homeflow_records_home", "counter", "router-dedup", "Records routed to this region's table."),
    Metric("homeflow_records_forwarded_<region>", "counter", "router",
           "Records forwarded to `<region>`'s forward stream (their key's home is there)."),
    Metric("homeflow_dedup_dropped", "counter", "router-dedup",
           "Records dropped as duplicates of an event_id already routed or committed (a retry, a record the "
           "old home had committed)."),
    Metric("homeflow_replay_dropped", "counter", "router",
           "Records re-read after a start (a replay, or a restore from an older snapshot) whose event_id some "
           "home table already holds: dropped where they are read (the dedup seed)."),
    Metric("homeflow_dedup_seed_errors", "counter", "router",
           "A start without state could not read a home table for its dedup seed (the log says which)."),
    Metric("homeflow_dead_letter_<reason>", "counter", "router",
           "Records dead-lettered for `<reason>` (malformed_json, oversized, missing_event_id, wrong_type, "
           "unknown_region, key_too_long, routing_conflict, stale_routing_table, ...)."),
    Metric("homeflow_records_late", "counter", "router",
           "Home records committed behind a later record of their key (marked `unordered`); also per key in "
           "the subgroup `key` for the first 1,000 keys, then `other`."),
    Metric("homeflow_records_stale", "counter", "router",
           "Forwarded records routed under an older table than this region's: a move is still draining."),
    Metric("homeflow_holds", "counter", "router",
           "Records held at the router (no table yet, a newer epoch not yet read, a hand-off)."),
    Metric("homeflow_handoff_started", "counter", "router", "Hand-offs this region started to acquire a key."),
    Metric("homeflow_handoff_completed", "counter", "router", "Hand-offs completed by the old home's marker."),
    Metric("homeflow_handoff_timeouts", "counter", "router",
           "Hand-offs that gave up waiting (`handoff.timeout.ms`); their held rows are marked."),
    Metric("homeflow_handoff_unplanned", "counter", "router",
           "Keys acquired from a region that is DOWN: no marker can come."),
    Metric("homeflow_handoff_pause_ms_total", "counter", "router",
           "Total time keys waited in hand-offs, ms."),
    Metric("homeflow_markers_sent", "counter", "router", "Hand-off markers this region sent to a key's new home."),
    Metric("homeflow_markers_forwarded", "counter", "router", "Markers passed on towards a newer home."),
    Metric("homeflow_markers_dropped", "counter", "router",
           "Markers that could not be delivered (hop limit, or the target is DOWN); the waiter times out."),
    Metric("homeflow_router_table_rejected", "counter", "router",
           "Routing tables the router did not adopt (invalid, or not a valid successor of the one it routes under)."),
    Metric("homeflow_router_epoch", "gauge", "router", "The epoch this subtask routes under."),
    Metric("homeflow_records_held", "gauge", "router", "Records held at the router now."),
    Metric("homeflow_keys_held", "gauge", "router", "Keys with held records now (in hand-off or waiting)."),
    Metric("homeflow_handoff_last_pause_ms", "gauge", "router", "How long the last completed hand-off paused its key, ms."),
    # The routing feed (jobs/functions.py RoutingFeedFunction)
    Metric("homeflow_routing_epoch", "gauge", "routing-feed", "The epoch of the routing table the feed last read."),
    Metric("homeflow_routing_poll_errors", "counter", "routing-feed", "Failed reads of the routing table (retried)."),
    Metric("homeflow_routing_rejected", "counter", "routing-feed",
           "Invalid routing tables (dead-lettered as `bad-routing-table`; the last good table stays)."),
    # The read publisher (jobs/functions.py ReadPublisherFunction)
    Metric("homeflow_read_pointer_age_ms", "gauge", "read-publisher",
           "Age of this region's oldest read pointer, ms (-1 until every home has one)."),
    Metric("homeflow_read_pointer_advances", "counter", "read-publisher", "Read pointers moved to a newer snapshot."),
    Metric("homeflow_read_view_versions", "counter", "read-publisher", "Lake views published."),
    Metric("homeflow_read_publish_errors", "counter", "read-publisher", "Failed publishing rounds (retried)."),
    # The lake (Java: LakeStatsFunction, LakeMaintenanceFunction)
    Metric("homeflow_lake_snapshots", "gauge", "lake-stats", "Snapshots in the home table's metadata."),
    Metric("homeflow_lake_data_files", "gauge", "lake-stats", "Data files in the current snapshot."),
    Metric("homeflow_lake_small_file_permille", "gauge", "lake-stats", "Data files under 32 MiB, per mille."),
    Metric("homeflow_lake_avg_file_bytes", "gauge", "lake-stats", "Mean data file size, bytes."),
    Metric("homeflow_lake_last_commit_files", "gauge", "lake-stats", "Files added by the newest commit that added data."),
    Metric("homeflow_lake_last_commit_bytes", "gauge", "lake-stats", "Bytes added by the newest commit that added data."),
    Metric("homeflow_lake_commit_age_ms", "gauge", "lake-stats",
           "Time since the home table's last commit, ms (the CommitAgeAlarm watches it)."),
    Metric("homeflow_lake_stats_errors", "counter", "lake-stats", "Failed reads of the table's statistics (retried)."),
    Metric("homeflow_lake_rewrites", "counter", "lake-maintenance", "Compactions committed."),
    Metric("homeflow_lake_rewritten_files", "counter", "lake-maintenance", "Data files replaced by compactions."),
    Metric("homeflow_lake_last_rewrite_ms", "gauge", "lake-maintenance", "Duration of the last compaction, ms."),
    Metric("homeflow_lake_expired_snapshots", "counter", "lake-maintenance", "Snapshots expired inside the job."),
    Metric("homeflow_dead_letters_expired_files", "counter", "dead-letter-maintenance",
           "Data files of the dead-letter archive deleted for being older than the retention."),
    Metric("homeflow_dead_letters_expired_snapshots", "counter", "dead-letter-maintenance",
           "Snapshots of the dead-letter archive expired (homeflow.lake/expire.* rules)."),
    Metric("homeflow_dead_letter_maintenance_errors", "counter", "dead-letter-maintenance",
           "Failed maintenance runs on the dead-letter archive (retried at the next tick)."),
    Metric("homeflow_lake_rewrite_errors", "counter", "lake-maintenance",
           "Failed compactions or expiries (retried at the next interval)."),
)


def documented(name: str) -> bool:
    """True when `name` (as Flink reports it) is one of METRICS, families included."""
    import re
    for m in METRICS:
        pattern = "^" + re.sub(r"<[a-z]+>", "[a-z0-9_]+", m.name) + "$"
        if re.match(pattern, name):
            return True
    return False

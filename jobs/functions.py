"""Flink functions: thin wrappers that put the pure logic of `udfs/` into operators (the router,
the largest, has a module of its own: jobs/router.py).

Metrics live under the group `kinesisanalytics`, the only group Managed Flink exports to
CloudWatch.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any

from pyflink.common import Row, Time, Types
from pyflink.datastream import OutputTag
from pyflink.datastream.functions import ProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, StateTtlConfig

from jobs import rows
from udfs.dead_letter import dead_letter
from udfs.routing_table import RoutingTable, RoutingTableError, accept

log = logging.getLogger("homeflow")
METRIC_GROUP = "kinesisanalytics"
DEAD_LETTER_TAG = OutputTag("dead-letter", rows.KINESIS_OUT)
ROUTING_STATE = MapStateDescriptor("routing-table", Types.STRING(), Types.STRING())
HISTORY_KEY = "history"
# Log every decision for one business key (debugging a hand-off): HOMEFLOW_TRACE_KEY=<key>.
TRACE_KEY = os.environ.get("HOMEFLOW_TRACE_KEY")


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Counters:
    """Lazily created counters under kinesisanalytics, labelled by a name suffix."""

    def __init__(self, ctx: RuntimeContext, prefix: str):
        self._group = ctx.get_metrics_group().add_group(METRIC_GROUP)
        self._prefix = prefix
        self._counters: dict[str, Any] = {}

    def inc(self, name: str, n: int = 1) -> None:
        c = self._counters.get(name)
        if c is None:
            c = self._counters[name] = self._group.counter(f"{self._prefix}{name}")
        c.inc(n)


class Level:
    """A value Flink's metrics threads may read at any time, kept in a Java counter and set from
    the task thread. Not a Python gauge: PyFlink calls one from the metrics thread through the
    operator's interpreter, which that thread does not own; while the task thread was in Python
    (a router opening, seeding its dedup) that crashed the JVM (SIGSEGV in PyObject_GetItem,
    the CI run of 2026-12-05)."""

    def __init__(self, group, name: str):
        self._counter = group.counter(name)
        self._value = 0

    def set(self, value: int) -> None:
        if value != self._value:
            self._counter.inc(value - self._value)
            self._value = value


class RoutingFeedFunction(ProcessFunction):
    """Polls the routing table in DynamoDB on every tick (parallelism 1) and emits the current valid
    version on every tick (the routers compare; the tick also paces their acknowledgements).
    Invalid items go to the dead-letter stream; the last good table stays in force. DynamoDB
    errors are counted and retried on the next tick, never fatal."""

    def __init__(self, settings_doc: dict[str, Any]):
        self.settings_doc = settings_doc

    def open(self, ctx: RuntimeContext) -> None:
        from conf.settings import settings_from_groups
        from connectors.routing_store import RoutingStore
        self.settings = settings_from_groups(self.settings_doc)
        self.store = RoutingStore(self.settings, self.settings.job.region)
        self.known = frozenset(self.settings.job.regions)
        self.current: RoutingTable | None = None
        self.current_text: str | None = None
        self.last_rejected: str | None = None
        self.metrics = _Counters(ctx, "homeflow_routing_")
        self._epoch = Level(ctx.get_metrics_group().add_group(METRIC_GROUP), "homeflow_routing_epoch")

    def process_element(self, value: int, ctx: ProcessFunction.Context):
        try:
            text = self.store.read_raw()
        except Exception as e:  # the emulator or DynamoDB may be briefly unavailable
            self.metrics.inc("poll_errors")
            log.warning("routing table poll failed: %s", e)
            text = None
        if text is not None and (self.current is None or text != self.current.to_json()):
            try:
                table = RoutingTable.from_json(text, self.known)
                reason = accept(self.current, table)
            except RoutingTableError as e:
                table, reason = None, str(e)
            if reason is not None:
                if text != self.last_rejected:  # report each bad version once, not every tick
                    self.last_rejected = text
                    self.metrics.inc("rejected")
                    log.error("routing table rejected: %s", reason)
                    yield DEAD_LETTER_TAG, Row("routing-table", dead_letter(
                        text, "bad-routing-table", reason, self.settings.job.region, _now_ms(),
                        f"dynamodb/{self.settings.job.routing_table}"))
            else:
                if table.epoch != (self.current.epoch if self.current else None):
                    log.info("routing table epoch %d loaded", table.epoch)
                self.current, self.current_text = table, table.to_json()
                self._epoch.set(table.epoch)
        if self.current_text is not None:
            yield self.current_text


class ReadPublisherFunction(ProcessFunction):
    """On each tick (parallelism 1), advances this region's read pointers for every other home's
    table and, when anything moved, its lake view: what `homeflow publish` does by hand, kept alive
    by the regional job so a deployment needs nothing else running. Pointers and views are
    conditional writes that only move forward, so a person running `homeflow publish` beside it is
    harmless. Errors (a home region unreachable, replication behind) are counted and retried on
    the next tick, never fatal: publishing is best effort, the pointer is always safe.

    The work runs on a thread of its own; a tick only wakes it. Done on the task thread, a tick's
    requests (0.5-1.6 s on a busy machine) held every checkpoint barrier behind them, and so every
    commit of the home table: home freshness p50 went from 2.8 s to 5.5 s with the publisher in the
    job (scripts/bench_freshness.py). The thread touches no Flink object; counts reach the metrics
    on the next tick, on the task thread."""

    def __init__(self, settings_doc: dict[str, Any]):
        self.settings_doc = settings_doc

    def open(self, ctx: RuntimeContext) -> None:
        import threading
        from conf.settings import settings_from_groups
        # Imported here, on the task thread: the publishing thread then imports nothing.
        from connectors import aws, lake, lake_view, read_pointer
        self._aws, self._lake, self._lake_view, self._read_pointer = aws, lake, lake_view, read_pointer
        self.settings = settings_from_groups(self.settings_doc)
        self.reader = self.settings.job.region
        self.homes = self.settings.job.remote_regions
        self.metrics = _Counters(ctx, "homeflow_read_")
        self._published: dict[str, int] = {}  # home -> published_at of the pointer it last moved
        self._own_meta: str | None = None
        self._publishers: dict[str, Any] = {}  # home -> read_pointer.Publisher, kept between ticks
        self._ddb = None
        self._own_catalog = None
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="read-publisher", daemon=True)
        self._thread.start()
        # Age of the oldest home's pointer: how far this region's readers trail, set on every tick.
        self._age = Level(ctx.get_metrics_group().add_group(METRIC_GROUP), "homeflow_read_pointer_age_ms")

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)

    def _oldest_age(self) -> int:
        published = dict(self._published)
        if len(published) < len(self.homes):
            return -1
        return _now_ms() - min(published.values())

    def process_element(self, value: int, ctx: ProcessFunction.Context):
        self._wake.set()  # a tick while the thread is busy folds into its next round
        self._age.set(self._oldest_age())
        with self._lock:
            counts, self._counts = self._counts, {}
        for name, n in counts.items():
            self.metrics.inc(name, n)
        return []

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if not self._stop.is_set():
                self._tick()

    def _tick(self) -> None:
        lake, lake_view, read_pointer = self._lake, self._lake_view, self._read_pointer
        moved = False
        for home in self.homes:
            try:
                if home not in self._publishers:
                    self._publishers[home] = read_pointer.Publisher(self.settings, home, self.reader)
                if self._publishers[home].publish():
                    moved = True
                    self._count("pointer_advances")
                    self._published[home] = _now_ms()
            except Exception as e:  # a home or its bucket unreachable: the pointer stays where it is
                self._count("publish_errors")
                log.warning("read pointer for %s not published: %s", home, e)
        try:
            if self._ddb is None:
                self._ddb = self._aws.client("dynamodb", self.reader, self.settings.aws)
            own_meta = lake.pointer_location(self.settings, self.reader, self._ddb)
            if moved or own_meta != self._own_meta:
                own = None
                if own_meta is not None:
                    if self._own_catalog is None:
                        self._own_catalog = lake.catalog(self.settings, self.reader)
                    t = lake.load_table(self.settings, self.reader, catalog=self._own_catalog)
                    snap = t.current_snapshot() if t else None
                    own = (t.metadata_location, snap.snapshot_id) if snap is not None else None
                lake_view.publish_view(self.settings, self.reader, ddb=self._ddb, own=own)
                self._own_meta = own_meta
                self._count("view_versions")
        except Exception as e:
            self._count("publish_errors")
            log.warning("lake view not published: %s", e)


# Any truthy value: PyFlink stores it but hands only the entry count to Java (see state_ttl).
_PERIODIC_COMPACTION = "30d"


def state_ttl(ms: int) -> StateTtlConfig:
    """TTL with explicit cleanup strategies. PyFlink 1.20's default background cleanup builds
    `Duration.of_days(30)` through a py4j gateway, which exists in a minicluster's process but not
    inside a cluster's TaskManager (THREAD mode), so the operator failed to open on a standalone
    cluster, and on Managed Flink (found with `homeflow cluster`). RocksDB (Managed Flink's backend)
    drops expired entries in compaction. The heap backend (local runs) drops one when it is read: its
    incremental cleanup copies a key's whole map on every visit (TtlMapState.getUnexpiredOrNull;
    CommittedEventDedup says what it cost), and the router's key is a whole key group."""
    return (StateTtlConfig.new_builder(Time.milliseconds(ms))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            .disable_cleanup_in_background()
            .cleanup_in_rocksdb_compact_filter(1000, _PERIODIC_COMPACTION)
            .build())

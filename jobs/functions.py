"""Flink functions: thin wrappers that put the pure logic of `udfs/` into operators.

Metrics live under the group `kinesisanalytics`, the only group Managed Flink exports to
CloudWatch.
"""
from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from typing import Any

from pyflink.common import Row, Time, Types
from pyflink.datastream import OutputTag
from pyflink.datastream.functions import KeyedBroadcastProcessFunction, ProcessFunction, RuntimeContext
from pyflink.datastream.state import (ListStateDescriptor, MapStateDescriptor, StateTtlConfig,
                                      ValueStateDescriptor)

from jobs import rows
from udfs.dead_letter import dead_letter
from udfs.handoff import Dead, Forward, Held, Home, KeyRouter, KeyState
from udfs.routing_table import RoutingTable, RoutingTableError, TableHistory, accept

log = logging.getLogger("homeflow")
METRIC_GROUP = "kinesisanalytics"
DEAD_LETTER_TAG = OutputTag("dead-letter", rows.KINESIS_OUT)
ROUTING_STATE = MapStateDescriptor("routing-table", Types.STRING(), Types.STRING())
HISTORY_KEY = "history"
WAIT_RETRY_MS = 200  # held keys look again this often (a new table may have come)
KEY_CACHE = 50_000  # key states kept decoded in memory (LRU); keyed state stays the truth
LATE_KEY_METRICS = 1000  # keys with their own late-records counter, then one shared "other"
ACK_EVERY_MS = 1000
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
        self._epoch = 0
        ctx.get_metrics_group().add_group(METRIC_GROUP).gauge("homeflow_routing_epoch", lambda: self._epoch)

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
                self._epoch = table.epoch
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
        group = ctx.get_metrics_group().add_group(METRIC_GROUP)
        # Age of the oldest home's pointer: how far this region's readers trail, per tick.
        group.gauge("homeflow_read_pointer_age_ms", self._oldest_age)

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
    cluster, and on Managed Flink (found with `homeflow cluster`). Incremental cleanup serves the
    heap state backend, the compaction filter RocksDB (Managed Flink's)."""
    return (StateTtlConfig.new_builder(Time.milliseconds(ms))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            .disable_cleanup_in_background()
            .cleanup_incrementally(10, False)
            .cleanup_in_rocksdb_compact_filter(1000, _PERIODIC_COMPACTION)
            .build())


_NO_TABLE = TableHistory()


def _held_row(h: Held) -> Row:
    return Row(h.source, h.raw, h.arrived_ms, h.late, h.entry, h.entered_ms)


class _Seen:
    """udfs.handoff.Seen over keyed map state (event_id -> ms committed)."""

    def __init__(self, state):
        self.state = state

    def contains(self, event_id: str) -> bool:
        return self.state.contains(event_id)

    def put(self, event_id: str, at_ms: int) -> None:
        self.state.put(event_id, at_ms)

    def recent(self, n: int) -> list[str]:
        return [e for e, _ in sorted(self.state.items(), key=lambda kv: kv[1])[-n:]]


class RouterFunction(KeyedBroadcastProcessFunction):
    """Home-region router, keyed by business key, with the routing table (and its recent history)
    as broadcast state. The logic is `udfs.handoff.KeyRouter`; this class keeps its per-key state
    in keyed state, its held records in keyed list state with a timer, and emits what it decides:
    home records to the lake, forwards (and hand-off markers) to the side output of their region,
    rejects to the dead-letter stream."""

    def __init__(self, settings_doc: dict[str, Any]):
        self.settings_doc = settings_doc

    def open(self, ctx: RuntimeContext) -> None:
        from conf.settings import settings_from_groups
        s = self.settings = settings_from_groups(self.settings_doc)
        job = s.job
        self.region = job.region
        self.regions = frozenset(job.regions)
        ttl = state_ttl(job.dedup_ttl_hours * 3_600_000)
        descs = {
            "seen": MapStateDescriptor("seen-event-ids-v2", Types.STRING(), Types.LONG()),
            # entry lane -> mark (udfs/lanes.py); "origin-high-water" before entry lanes is not read:
            # it compared sequence numbers of different streams.
            "order": MapStateDescriptor("lane-marks", Types.STRING(), Types.STRING()),
            "kstate": ValueStateDescriptor("handoff-state", Types.STRING()),
            "held": ListStateDescriptor("held-records-v2", rows.HELD),
            "held_v1": ListStateDescriptor("held-records", rows.HELD_V1),
        }
        for d in descs.values():
            d.enable_time_to_live(ttl)
        self.seen = ctx.get_map_state(descs["seen"])
        self.order = ctx.get_map_state(descs["order"])
        self.kstate = ctx.get_state(descs["kstate"])
        self.held = ctx.get_list_state(descs["held"])
        self.held_v1 = ctx.get_list_state(descs["held_v1"])
        self.metrics = _Counters(ctx, "homeflow_")
        group = ctx.get_metrics_group().add_group(METRIC_GROUP)
        self._late_groups: dict[str, Any] = {}
        self._group = group
        self._tables: TableHistory | None = None
        # After any start the table restored from a checkpoint may be old (a region returning
        # from a loss would route its backlog as if nothing had moved): route only with a table
        # read since this start, or after FRESH_WAIT_MS with the restored one (DynamoDB gone).
        self._fresh = False
        self._opened = _now_ms()
        self._fresh_wait_ms = max(5_000, 5 * job.routing_poll_ms)
        self._cache: OrderedDict[str, list] = OrderedDict()  # key -> [KeyState, stored view, stored order]
        self._busy: set = set()
        self._held_now = 0
        self._last_pause = 0
        self._stale_at = 0
        self._timers: dict[Any, int] = {}
        group.gauge("homeflow_router_epoch", lambda: self._tables.current.epoch if self._tables and self._tables.current else 0)
        group.gauge("homeflow_records_held", lambda: self._held_now)
        group.gauge("homeflow_keys_held", lambda: len(self._busy))
        group.gauge("homeflow_handoff_last_pause_ms", lambda: self._last_pause)
        self.subtask = ctx.get_index_of_this_subtask()
        self.parallelism = ctx.get_number_of_parallel_subtasks()
        self._acked: tuple | None = None
        self._acks = None
        self.ingest = s.streams.ingest
        from udfs import disk_id_set
        self._committed = self._dl_seen = disk_id_set.empty()
        if job.dedup_seed != "none":
            self._load_seeds(job.dedup_seed)
        self.core = KeyRouter(self.region, job.regions, job.max_hops, job.max_record_bytes,
                              ordered=job.handoff == "ordered", handoff_timeout_ms=job.handoff_timeout_ms,
                              table_wait_ms=job.table_wait_ms, count=self._count, pause=self._pause,
                              committed=self._committed.__contains__ if len(self._committed) else None,
                              skew_ms=job.order_skew_ms, lanes_by=job.order_lanes)

    def _load_seeds(self, scope: str) -> None:
        """What the lake and the dead-letter archive already hold, for a start without state: a
        replay from the streams' start then commits no event_id and dead-letters no record twice,
        whichever home committed it (connectors/lake_seed.py). On a restore it repeats what keyed
        state knows. Routing starts once it is read. A failed read is logged and counted."""
        from connectors import lake_seed
        t0 = time.monotonic()
        try:
            since = _now_ms() - lake_seed.replay_window_ms(self.settings, self.region)
            ids, st = lake_seed.committed_ids(self.settings, self.region, since, scope, progress=log.info)
            self._committed.close()
            self._committed = ids
            log.info("dedup seed: %d event_ids of %s (%d rows in %d files, %d KiB on disk) in %.1fs", st.ids,
                     st.tables, st.rows, st.files, st.disk_bytes // 1024, st.seconds)
        except Exception as e:  # noqa: BLE001
            self.metrics.inc("dedup_seed_errors")
            log.warning("dedup seed from the lake failed: %s", e)
        try:
            dl = lake_seed.dead_lettered_sources(self.settings, self.region)
            self._dl_seen.close()
            self._dl_seen = dl
        except Exception as e:  # noqa: BLE001
            self.metrics.inc("dedup_seed_errors")
            log.warning("dead-letter seed failed: %s", e)
        log.info("router %d seeded with %d event_ids and %d dead-lettered sources in %.1fs", self.subtask,
                 len(self._committed), len(self._dl_seen), time.monotonic() - t0)

    # -- metrics hooks of the core

    def _count(self, name: str, n: int = 1) -> None:
        if name == "records_stale":
            self._stale_at = _now_ms()
        self.metrics.inc(name, n)

    def _pause(self, ms: int) -> None:
        self._last_pause = ms
        self.metrics.inc("handoff_pause_ms_total", ms)

    def _late_metric(self, key: str) -> None:
        c = self._late_groups.get(key)
        if c is None:
            label = key if len(self._late_groups) < LATE_KEY_METRICS else "other"
            c = self._late_groups.get(label)
            if c is None:
                c = self._late_groups[label] = self._group.add_group("key", label).counter("homeflow_records_late")
            self._late_groups[key] = c
        c.inc()

    # -- routing table (broadcast side)

    def _history(self, ctx) -> TableHistory:
        # Broadcast state changes only in process_broadcast_element of this instance, which
        # refreshes the cache; it is read here only after a restore from a checkpoint.
        if self._tables is None:
            text = ctx.get_broadcast_state(ROUTING_STATE).get(HISTORY_KEY)
            self._tables = TableHistory.from_json(text, self.regions) if text else TableHistory()
        return self._tables

    def _routing_tables(self, ctx, now: int) -> TableHistory:
        if self._fresh or now - self._opened >= self._fresh_wait_ms:
            return self._history(ctx)
        return _NO_TABLE

    def process_broadcast_element(self, value: str, ctx):
        self._fresh = True
        tables = self._history(ctx)
        cur = tables.current
        if cur is None or value != cur.to_json():
            try:
                table = RoutingTable.from_json(value, self.regions)
                reason = accept(cur, table)
            except RoutingTableError as e:
                reason = str(e)
            if reason is not None:
                self.metrics.inc("router_table_rejected")
                log.error("router kept its table: %s", reason)
            else:
                tables.adopt(table)
                ctx.get_broadcast_state(ROUTING_STATE).put(HISTORY_KEY, tables.to_json())
        self._ack(force=cur is None or tables.current.epoch != cur.epoch)

    def _ack(self, force: bool = False) -> None:
        """Tell the control plane (routing table item ack#<region>#<subtask>) which epoch this
        subtask routes under, how many keys it holds for a hand-off, and when it last met a record
        routed under an older epoch; `homeflow routes` waits on these before the next move.
        Written by a background thread (routing_store.AckWriter)."""
        tables = self._tables
        if tables is None or tables.current is None:
            return
        state = (tables.current.epoch, len(self._busy), self._stale_at)
        if state == self._acked:
            return
        if self._acks is None:
            from connectors import aws
            from connectors.routing_store import AckWriter
            s = self.settings
            self._acks = AckWriter(lambda: aws.client("dynamodb", self.region, s.aws), s.job.routing_table,
                                   ACK_EVERY_MS / 1000)
        from connectors.routing_store import Ack
        self._acks.offer(Ack(self.region, self.subtask, self.parallelism, *state, _now_ms()), urgent=force)
        self._acked = state

    def close(self) -> None:
        if getattr(self, "_acks", None) is not None:
            self._acks.close()
        for ids in (getattr(self, "_committed", None), getattr(self, "_dl_seen", None)):
            if ids is not None:
                ids.close()

    # -- records (keyed side)

    def _load(self, key: str) -> KeyState:
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit[0]
        ks = KeyState.from_json(self.kstate.value())
        ks.order = dict(self.order.items())
        held = list(self.held.get() or [])
        if not held:
            # Held before entry lanes (a snapshot of 2026-12-03 or older): moved to the new layout
            # the first time the key is loaded; their entry is unknown, so their order is not vouched for.
            old = list(self.held_v1.get() or [])
            if old:
                held = [Row(r[0], r[1], r[2], r[3], None, None) for r in old]
                self.held_v1.clear()
                self.held.update(held)
        ks.held = [Held(bytes(r[1]), r[0], r[2], r[3], r[4], r[5]) for r in held]
        # [KeyState, stored core view, stored order, stored held list as (Held, late) pairs]
        self._cache[key] = [ks, self._core_view(ks), dict(ks.order), [(h, h.late) for h in ks.held]]
        if len(self._cache) > KEY_CACHE:
            self._cache.popitem(last=False)
        return ks

    @staticmethod
    def _core_view(ks: KeyState) -> tuple:
        return (ks.last_home, ks.homed, ks.owned_since, ks.checked, ks.acquiring, ks.unverified,
                tuple(ks.awaiting.items()) if ks.awaiting else (), tuple(ks.markers.items()) if ks.markers else (),
                tuple(ks.late_via.items()) if ks.late_via else ())

    def _store(self, key: str, ks: KeyState, held_before: int, held_changed: bool) -> None:
        """Write back what changed: the small per-key state, new high-water marks, held records."""
        entry = self._cache.get(key)
        if entry is None:  # evicted meanwhile (cannot happen within one call, but stay safe)
            entry = self._cache[key] = [ks, None, {}, None]
        view = self._core_view(ks)
        if view != entry[1]:
            self.kstate.update(ks.to_json_core())
            entry[1] = view
        known = entry[2]
        for origin, oseq in ks.order.items():
            if known.get(origin) != oseq:
                self.order.put(origin, oseq)
                known[origin] = oseq
        if held_changed:
            stored, held = entry[3], ks.held
            if not held:
                if stored is None or stored:
                    self.held.clear()
            elif stored is not None and len(held) >= len(stored) and all(
                    h is s and h.late == late for h, (s, late) in zip(held, stored)):
                # Only appended to (records queue behind a wait): add the new ones. Rewriting the
                # whole list on every arrival made holding quadratic, one conversion per held row.
                if len(held) > len(stored):
                    self.held.add_all([_held_row(h) for h in held[len(stored):]])
            else:
                self.held.update([_held_row(h) for h in held])
            entry[3] = [(h, h.late) for h in held]
            self._held_now += len(held) - held_before

    @staticmethod
    def _key(ctx) -> str:
        k = ctx.get_current_key()  # Row(business key): PyFlink's key_by shape (connectors/kinesis.py)
        return k[0] if isinstance(k, Row) else k

    def process_element(self, value: Row, ctx):
        key = self._key(ctx)
        ks = self._load(key)
        before = len(ks.held)
        now = _now_ms()
        if value[0].rsplit("/", 1)[-1] == self.ingest:  # it enters the system here (udfs/lanes.py)
            item = Held(bytes(value[3]), rows.source_of(value), now, None, f"{self.region}/{value[1]}/{value[2]}",
                        value[4])
        else:
            item = Held(bytes(value[3]), rows.source_of(value), now)
        outs = self.core.on_item(ks, _Seen(self.seen), self._routing_tables(ctx, now), item, now)
        yield from self._after(key, ks, before, before > 0 or bool(ks.held), outs, ctx, now)

    def on_timer(self, timestamp: int, ctx):
        key = self._key(ctx)
        if self._timers.get(key) == timestamp:
            del self._timers[key]
        ks = self._load(key)
        before = len(ks.held)
        now = _now_ms()
        outs = self.core.pump(ks, _Seen(self.seen), self._routing_tables(ctx, now), now)
        yield from self._after(key, ks, before, True, outs, ctx, now)

    def _after(self, key, ks: KeyState, held_before: int, held_changed: bool, outs, ctx, now: int):
        if key == TRACE_KEY:
            log.info("trace %s: held %d -> %d, acquiring %s, awaiting %s, out %s", key, held_before, len(ks.held),
                     ks.acquiring, ks.awaiting, [type(o).__name__ + ":" + getattr(getattr(o, "env", None), "event_id", "")
                                                 for o in outs])
        self._store(key, ks, held_before, held_changed)
        if ks.busy():
            self._busy.add(key)
            nxt = self.core.next_deadline(ks)
            at = min(now + WAIT_RETRY_MS, nxt if nxt is not None else now + WAIT_RETRY_MS)
            pending = self._timers.get(key)
            if pending is None or pending > at or pending < now:
                ctx.timer_service().register_processing_time_timer(at)
                self._timers[key] = at
        elif key in self._busy:
            self._busy.discard(key)
            self._timers.pop(key, None)
            self._ack(force=not self._busy)
        # Everything leaves through the main output (rows.ROUTED), split in Java: see
        # dev.homeflow.flink.RouterOutputSplitter for why (side outputs from on_timer are broken).
        for o in outs:
            if isinstance(o, Home):
                if o.late:
                    self._late_metric(o.env.key)
                yield rows.home_row(o.env, o.epoch, self.region, o.source, o.routed_at, o.held_ms, o.late,
                                    o.entry, o.entered_ms)
            elif isinstance(o, Forward):
                yield Row(o.region, o.env.key, o.env.to_json(), *rows.LAKE_NONE)
            elif isinstance(o, Dead):
                if o.source in self._dl_seen:
                    continue  # dead-lettered before a restart without state
                yield Row(rows.DEAD_LETTER_DEST, o.reason,
                          dead_letter(o.raw, o.reason, o.detail, self.region, now, o.source), *rows.LAKE_NONE)

"""The home-region router as the job runs it: one Python call per batch of a key group's records.

`dev.homeflow.flink.KeyGroupBatcher` packs each key group's records (in arrival order) into one
element keyed by the group's representative key; this function routes every record with
`udfs.handoff.KeyRouter` (the one definition of routing and of the hand-off) and returns the
call's decisions as one element (udfs/batch_codec.py), which Java unpacks, deduplicates by
event_id (`CommittedEventDedup`) and splits to the lake, the forward streams and the dead letters.

State, per key group (the keyed context), per business key inside it:
* `router-key-state-v3`: the key's hand-off state (KeyState's versioned codec);
* `router-lane-marks-v2`: its marks per entry lane (udfs/lanes.py pack_marks);
* `router-held-v2`: records it holds, in chunks appended per call (`<key>\\x1f<n>`), pickled bytes;
* `router-busy`: keys that hold records or wait, with their next deadline and chunk count, so a
  timer on the group finds them.
The routing table and its recent history are broadcast state, as before.
"""
from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from typing import Any

from pyflink.common import Types
from pyflink.datastream.functions import KeyedBroadcastProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor

from jobs.functions import HISTORY_KEY, METRIC_GROUP, ROUTING_STATE, TRACE_KEY, Level, _Counters, state_ttl
from udfs import batch_codec, lanes
from udfs.handoff import Dead, Held, Home, KeyRouter, KeyState
from udfs.router_policy import RouterPolicy
from udfs.routing_table import RoutingTable, RoutingTableError, TableHistory, accept

log = logging.getLogger("homeflow")
WAIT_RETRY_MS = 200  # held keys look again this often (a new table may have come)
KEY_CACHE = 50_000  # key states kept decoded in memory (LRU); keyed state stays the truth
LATE_KEY_METRICS = 1000  # keys with their own late-records counter, then one shared "other"
ACK_EVERY_MS = 1000
CALLS_LOG_S = 30
SEP = "\x1f"
# Per-group map states: (state name, value type). Held records are bytes, stored PICKLED: PyFlink
# converts a PRIMITIVE_ARRAY(BYTE) state value to a tuple of ints (an Object[] in Java), which
# the byte-array serializer refuses at the first TTL cleanup or snapshot that meets it.
STATES = {
    "kstate": ("router-key-state-v3", Types.STRING()),
    "marks": ("router-lane-marks-v2", Types.STRING()),
    "held": ("router-held-v2", Types.PICKLED_BYTE_ARRAY()),
    "busy": ("router-busy", Types.STRING()),
}


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Key:
    """A business key's decoded state and what is stored of it."""
    __slots__ = ("ks", "view", "marks", "held", "chunks", "deadline")

    def __init__(self, ks: KeyState, chunks: int, deadline: int | None):
        self.ks = ks
        self.view = ks.view()
        self.marks = dict(ks.order)
        self.held = [(h, h.late) for h in ks.held]  # as stored: each record and its mark
        self.chunks = chunks
        self.deadline = deadline


class BatchRouterFunction(KeyedBroadcastProcessFunction):
    def __init__(self, settings_doc: dict[str, Any]):
        self.settings_doc = settings_doc

    def open(self, ctx: RuntimeContext) -> None:
        from conf.settings import settings_from_groups
        from udfs import disk_id_set
        s = self.settings = settings_from_groups(self.settings_doc)
        job = s.job
        self.region = job.region
        self.regions = frozenset(job.regions)
        ttl = state_ttl(job.dedup_ttl_hours * 3_600_000)
        descs = {k: MapStateDescriptor(name, Types.STRING(), vt) for k, (name, vt) in STATES.items()}
        for d in descs.values():
            d.enable_time_to_live(ttl)
        self.kstate = ctx.get_map_state(descs["kstate"])
        self.marks = ctx.get_map_state(descs["marks"])
        self.held = ctx.get_map_state(descs["held"])
        self.busy = ctx.get_map_state(descs["busy"])
        self.metrics = _Counters(ctx, "homeflow_")
        self._counts: dict[str, int] = {}
        group = self._group = ctx.get_metrics_group().add_group(METRIC_GROUP)
        self._late_groups: dict[str, Any] = {}
        self._tables: TableHistory | None = None
        self._cache: OrderedDict[str, _Key] = OrderedDict()
        self._busy: set[str] = set()
        self._held_now = 0
        self._held_loaded = False
        self._timers: dict[Any, int] = {}
        self._calls = self._routed = 0  # batches and records since the last log line (how full batches are)
        self._calls_logged = time.monotonic()
        # Levels, not Python gauges (jobs/functions.py Level says why): set on the task thread.
        self._levels = {"router_epoch": Level(group, "homeflow_router_epoch"),
                        "records_held": Level(group, "homeflow_records_held"),
                        "keys_held": Level(group, "homeflow_keys_held"),
                        "handoff_last_pause_ms": Level(group, "homeflow_handoff_last_pause_ms")}
        self.subtask = ctx.get_index_of_this_subtask()
        self.parallelism = ctx.get_number_of_parallel_subtasks()
        self._acked: tuple | None = None
        self._acks = None
        self._committed = self._dl_seen = disk_id_set.empty()
        if job.dedup_seed != "none":
            self._load_seeds(job.dedup_seed)
        self.policy = RouterPolicy(_now_ms(), job.routing_poll_ms,
                                   self._dl_seen.__contains__ if len(self._dl_seen) else None)
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

    # -- metrics: summed per call, one counter call per name

    def _count(self, name: str, n: int = 1) -> None:
        self._counts[name] = self._counts.get(name, 0) + n

    def _flush_counts(self, now: int) -> None:
        for name, n in self._counts.items():
            self.policy.counted(name, now)
            self.metrics.inc(name, n)
        self._counts.clear()

    def _pause(self, ms: int) -> None:
        self._levels["handoff_last_pause_ms"].set(ms)
        self._count("handoff_pause_ms_total", ms)

    def _set_levels(self) -> None:
        t = self._tables
        lv = self._levels
        lv["router_epoch"].set(t.current.epoch if t is not None and t.current is not None else 0)
        lv["records_held"].set(self._held_now)
        lv["keys_held"].set(len(self._busy))

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
        if self._tables is None:
            text = ctx.get_broadcast_state(ROUTING_STATE).get(HISTORY_KEY)
            self._tables = TableHistory.from_json(text, self.regions) if text else TableHistory()
        return self._tables

    def process_broadcast_element(self, value: str, ctx):
        self.policy.table_read()
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
        self._set_levels()

    def _ack(self, force: bool = False) -> None:
        """Tell the control plane (routing table item ack#<region>#<subtask>) which epoch this
        subtask routes under, how many keys it holds for a hand-off, and when it last met a record
        routed under an older epoch; `homeflow routes` waits on these before the next move."""
        tables = self._tables
        if tables is None or tables.current is None:
            return
        state = (tables.current.epoch, len(self._busy), self.policy.stale_at)
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

    def _log_calls(self) -> None:
        log.info("router %d routed %d records in %d calls (%.1f a call)", self.subtask, self._routed,
                 self._calls, self._routed / self._calls)
        self._calls = self._routed = 0
        self._calls_logged = time.monotonic()

    def close(self) -> None:
        if getattr(self, "_calls", 0):
            self._log_calls()
        if getattr(self, "_acks", None) is not None:
            self._acks.close()
        for ids in (getattr(self, "_committed", None), getattr(self, "_dl_seen", None)):
            if ids is not None:
                ids.close()

    # -- records (keyed side: one key group per element)

    def _load(self, key: str) -> _Key:
        k = self._cache.get(key)
        if k is not None:
            self._cache.move_to_end(key)
            return k
        ks = KeyState.decode(self.kstate.get(key))
        marks = self.marks.get(key)
        ks.order = lanes.unpack_marks(marks) if marks else {}
        busy = self.busy.get(key)
        deadline, chunks = (int(x) for x in busy.split(",")) if busy else (None, 0)
        for i in range(chunks):
            ks.held += batch_codec.unpack_held(bytes(self.held.get(f"{key}{SEP}{i}")))
        if chunks and not self._held_loaded:
            # the first key whose held records came from state rather than this process (a
            # restore, or one evicted from the cache): e2e/test_exactly_once_restarts.py looks for it
            self._held_loaded = True
            log.info("router %d loaded held records from state: key %r, %d record(s) in %d chunk(s)",
                     self.subtask, key, len(ks.held), chunks)
        k = self._cache[key] = _Key(ks, chunks, deadline)
        if len(self._cache) > KEY_CACHE:
            self._cache.popitem(last=False)
        return k

    def process_element(self, batch: bytes, ctx):
        now = _now_ms()
        tables = self.policy.tables(self._history(ctx), now)
        touched: dict[str, _Key] = {}
        entries: list[list] = []
        self._calls += 1
        for rec in batch_codec.records(batch):
            self._routed += 1
            k = touched.get(rec.key) or self._load(rec.key)
            touched[rec.key] = k
            item = Held(rec.raw, rec.source, rec.read_ms, None, rec.entry, rec.arrived if rec.entry else None)
            self._emit(rec.key, self.core.on_item(k.ks, tables, item, now), entries, now)
        if time.monotonic() - self._calls_logged > CALLS_LOG_S:
            self._log_calls()
        yield from self._finish(touched, entries, ctx, now)

    def on_timer(self, timestamp: int, ctx):
        group = ctx.get_current_key()
        if self._timers.get(group) == timestamp:
            del self._timers[group]
        now = _now_ms()
        tables = self.policy.tables(self._history(ctx), now)
        touched: dict[str, _Key] = {}
        entries: list[list] = []
        for key, _ in list(self.busy.items()):
            k = self._load(key)
            touched[key] = k
            self._emit(key, self.core.pump(k.ks, tables, now), entries, now)
        yield from self._finish(touched, entries, ctx, now)

    def _emit(self, key: str, outs, entries: list[list], now: int) -> None:
        if key == TRACE_KEY:
            log.info("trace %s: %s", key, [(type(o).__name__, getattr(getattr(o, "env", None), "event_id", ""))
                                           for o in outs])
        for o in outs:
            if isinstance(o, Home) and o.late:
                self._late_metric(key)
            elif isinstance(o, Dead) and not self.policy.write_dead_letter(o.source):
                continue  # dead-lettered before a start without state
            entries.append(batch_codec.entry(key, o, self.region, now))

    def _finish(self, touched: dict[str, _Key], entries: list[list], ctx, now: int):
        """Store what changed (one call per state per element), set the group's timer, emit."""
        self._store(touched, now)
        nxt = min((k.deadline for k in touched.values() if k.deadline is not None), default=None)
        if nxt is not None:
            group = ctx.get_current_key()
            pending = self._timers.get(group)
            if pending is None or pending > nxt or pending < now:
                ctx.timer_service().register_processing_time_timer(nxt)
                self._timers[group] = nxt
        self._flush_counts(now)
        self._set_levels()
        if entries:
            yield batch_codec.encode(entries)

    def _store(self, touched: dict[str, _Key], now: int) -> None:
        core, marks, held_puts, busy_puts = {}, {}, {}, {}
        for key, k in touched.items():
            ks = k.ks
            view = ks.view()
            if view != k.view:
                core[key] = ks.encode()
                k.view = view
            if len(ks.order) != len(k.marks) or any(k.marks.get(lane) is not m for lane, m in ks.order.items()):
                # by identity: lanes.advance returns the mark itself when it does not change
                marks[key] = lanes.pack_marks(ks.order)
                k.marks = dict(ks.order)
            before = len(k.held)
            if len(ks.held) != before or any(h is not s or h.late != late for h, (s, late) in zip(ks.held, k.held)):
                appended = len(ks.held) > before and all(
                    h is s and h.late == late for h, (s, late) in zip(ks.held, k.held))
                if appended:  # records queued behind a wait: one new chunk, the stored ones stay
                    held_puts[f"{key}{SEP}{k.chunks}"] = batch_codec.pack_held(ks.held[before:])
                    k.chunks += 1
                else:
                    for i in range(k.chunks):
                        self.held.remove(f"{key}{SEP}{i}")
                    k.chunks = 0
                    if ks.held:
                        held_puts[f"{key}{SEP}0"] = batch_codec.pack_held(ks.held)
                        k.chunks = 1
                k.held = [(h, h.late) for h in ks.held]
                self._held_now += len(ks.held) - before
            if ks.busy():
                nd = self.core.next_deadline(ks)
                k.deadline = min(now + WAIT_RETRY_MS, nd if nd is not None else now + WAIT_RETRY_MS)
                busy_puts[key] = f"{k.deadline},{k.chunks}"
                if key not in self._busy:
                    self._busy.add(key)
            elif k.deadline is not None or key in self._busy:
                k.deadline = None
                self.busy.remove(key)
                self._busy.discard(key)
                self._ack(force=not self._busy)
        if core:
            self.kstate.put_all(core)
        if marks:
            self.marks.put_all(marks)
        if held_puts:
            self.held.put_all(held_puts)
        if busy_puts:
            self.busy.put_all(busy_puts)

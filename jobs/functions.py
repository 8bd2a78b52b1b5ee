"""Flink functions: thin wrappers that put the pure logic of `udfs/` into operators.

Metrics live under the group `kinesisanalytics`, the only group Managed Flink exports to
CloudWatch.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Iterable

from pyflink.common import Row, Time, Types
from pyflink.datastream import OutputTag
from pyflink.datastream.functions import KeyedBroadcastProcessFunction, ProcessFunction, RuntimeContext
from pyflink.datastream.state import (ListStateDescriptor, MapStateDescriptor, StateTtlConfig,
                                      ValueStateDescriptor)

from jobs import rows
from udfs import envelope as env_mod
from udfs.dead_letter import dead_letter
from udfs.envelope import Rejection
from udfs.router import FORWARD, HOME, decide
from udfs.routing_table import RoutingTable, RoutingTableError, accept

log = logging.getLogger("homeflow")
METRIC_GROUP = "kinesisanalytics"
DEAD_LETTER_TAG = OutputTag("dead-letter", rows.KINESIS_OUT)
ROUTING_STATE = MapStateDescriptor("routing-table", Types.STRING(), Types.STRING())
ROUTING_KEY = "current"
WAIT_RETRY_MS = 200


def forward_tag(region: str) -> OutputTag:
    return OutputTag(f"forward-{region}", rows.KINESIS_OUT)


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
    """Polls the routing table in DynamoDB on every tick (parallelism 1) and emits each new valid
    version once. Invalid items go to the dead-letter stream; the last good table stays in force.
    DynamoDB errors are counted and retried on the next tick, never fatal."""

    def __init__(self, settings_doc: dict[str, Any]):
        self.settings_doc = settings_doc

    def open(self, ctx: RuntimeContext) -> None:
        from conf.settings import settings_from_groups
        from connectors.routing_store import RoutingStore
        self.settings = settings_from_groups(self.settings_doc)
        self.store = RoutingStore(self.settings, self.settings.job.region)
        self.known = frozenset(self.settings.job.regions)
        self.current: RoutingTable | None = None
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
            return
        if text is None:
            return
        if self.current is not None and text == self.current.to_json():
            return
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
            return
        if table.epoch != (self.current.epoch if self.current else None):
            log.info("routing table epoch %d loaded", table.epoch)
        self.current = table
        self._epoch = table.epoch
        yield table.to_json()


class RouterFunction(KeyedBroadcastProcessFunction):
    """Home-region router, keyed by business key, with the routing table as broadcast state.

    * no record is routed before a table is in broadcast state: earlier records wait in keyed
      state (with a timer) and leave in arrival order;
    * home records are deduplicated by event_id (keyed map state with TTL) and go to the lake;
    * other records go to the side output of their home region with hops+1 and our epoch;
    * disagreements that cannot be resolved by a newer epoch go to the dead-letter stream.
    """

    def __init__(self, region: str, regions: Iterable[str], max_hops: int, dedup_ttl_ms: int,
                 max_record_bytes: int):
        self.region = region
        self.regions = tuple(regions)
        self.known = frozenset(regions)
        self.max_hops = max_hops
        self.dedup_ttl_ms = dedup_ttl_ms
        self.max_record_bytes = max_record_bytes

    def open(self, ctx: RuntimeContext) -> None:
        seen = MapStateDescriptor("seen-event-ids", Types.STRING(), Types.BOOLEAN())
        seen.enable_time_to_live(
            StateTtlConfig.new_builder(Time.milliseconds(self.dedup_ttl_ms))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            .build())
        self.seen = ctx.get_map_state(seen)
        self.waiting = ctx.get_list_state(ListStateDescriptor("waiting-for-table", rows.SOURCE))
        self.has_waiting = ctx.get_state(ValueStateDescriptor("has-waiting", Types.BOOLEAN()))
        self.tags = {r: forward_tag(r) for r in self.regions if r != self.region}
        self.forward_metric = {r: f"records_forwarded_{r.replace('-', '_')}" for r in self.tags}
        self.metrics = _Counters(ctx, "homeflow_")
        self._table: RoutingTable | None = None
        self._waiting_now = 0
        group = ctx.get_metrics_group().add_group(METRIC_GROUP)
        group.gauge("homeflow_router_epoch", lambda: self._table.epoch if self._table else 0)
        group.gauge("homeflow_records_waiting_for_table", lambda: self._waiting_now)

    # -- routing table (broadcast side)

    def _current(self, ctx) -> RoutingTable | None:
        # Broadcast state only changes in process_broadcast_element of this same instance, which
        # refreshes the cache; read the state itself only when the cache is empty (after a
        # restore from checkpoint, where the restored table is in state but not yet cached).
        if self._table is None:
            text = ctx.get_broadcast_state(ROUTING_STATE).get(ROUTING_KEY)
            if text is not None:
                self._table = RoutingTable.from_json(text, frozenset(self.regions))
        return self._table

    def process_broadcast_element(self, value: str, ctx):
        state = ctx.get_broadcast_state(ROUTING_STATE)
        try:
            table = RoutingTable.from_json(value, frozenset(self.regions))
            current_text = state.get(ROUTING_KEY)
            current = RoutingTable.from_json(current_text, frozenset(self.regions)) if current_text else None
            reason = accept(current, table)
        except RoutingTableError as e:
            reason = str(e)
        if reason is not None:
            self.metrics.inc("router_table_rejected")
            log.error("router kept its table: %s", reason)
            return
        state.put(ROUTING_KEY, value)
        self._table = table

    # -- records (keyed side)

    def process_element(self, value: Row, ctx):
        table = self._current(ctx)
        if table is None or self.has_waiting.value():
            if table is None:
                self.waiting.add(value)
                if not self.has_waiting.value():
                    self.has_waiting.update(True)
                    ctx.timer_service().register_processing_time_timer(
                        ctx.timer_service().current_processing_time() + WAIT_RETRY_MS)
                self._waiting_now += 1
                self.metrics.inc("records_waited_for_table")
                return
            # The table arrived but older records of this key still wait: they go first.
            yield from self._drain(table, ctx)
        yield from self._route(value, table)

    def on_timer(self, timestamp: int, ctx):
        table = self._current(ctx)
        if table is None:
            ctx.timer_service().register_processing_time_timer(timestamp + WAIT_RETRY_MS)
            return
        yield from self._drain(table, ctx)

    def _drain(self, table: RoutingTable, ctx):
        for r in list(self.waiting.get() or []):
            self._waiting_now -= 1
            yield from self._route(r, table)
        self.waiting.clear()
        self.has_waiting.clear()

    def _route(self, raw: Row, table: RoutingTable):
        """Parse one Kinesis record (Row(stream, shard_id, seq, data)) and send it on its way."""
        data = bytes(raw[3])
        source = f"{raw[0].rsplit('/', 1)[-1]}/{raw[1]}/{raw[2]}"
        env = env_mod.parse(data, self.known, self.max_record_bytes)
        if isinstance(env, Rejection):
            self.metrics.inc(f"dead_letter_{env.reason.replace('-', '_')}")
            yield DEAD_LETTER_TAG, Row(env.reason, dead_letter(
                data, env.reason, env.detail, self.region, _now_ms(), source))
            return
        d = decide(env, table, self.region, self.max_hops)
        if d.action == HOME:
            if self.seen.contains(env.event_id):
                self.metrics.inc("dedup_dropped")
                return
            self.seen.put(env.event_id, True)
            self.metrics.inc("records_home")
            payload = None if env.payload is None else json.dumps(env.payload, separators=(",", ":"))
            # epoch = the routing epoch under which this region accepted the record as home; it
            # decides between two copies committed during a partition (udfs/resolve.py).
            yield Row(env.event_id, env.key, env.ts, env.ts, env.origin, env.hops, table.epoch, self.region,
                      payload, source)
        elif d.action == FORWARD:
            self.metrics.inc(self.forward_metric[d.region])
            yield self.tags[d.region], Row(env.key, env.forwarded(table.epoch).to_json())
        else:
            self.metrics.inc(f"dead_letter_{d.reason.replace('-', '_')}")
            yield DEAD_LETTER_TAG, Row(d.reason, dead_letter(
                env.to_json(), d.reason, d.detail, self.region, _now_ms(), source))

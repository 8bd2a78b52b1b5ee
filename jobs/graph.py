"""The homeflow job graph, readable in one screen. Stable uids make savepoints restorable."""
from __future__ import annotations

from pyflink.common import Row, Types, WatermarkStrategy
from pyflink.datastream import DataStream, KeyedStream, StreamExecutionEnvironment
from pyflink.datastream.connectors import Source
from pyflink.java_gateway import get_gateway

from conf.settings import Settings
from connectors import iceberg_sink, kinesis
from connectors.lake_schema import DEAD_LETTER_SCHEMA
from jobs import rows
from jobs.functions import DEAD_LETTER_TAG, ROUTING_STATE, ReadPublisherFunction, RoutingFeedFunction
from jobs.router import BatchRouterFunction
from udfs.dead_letter import archive_row
from udfs.envelope import MAX_SEEN_IDS


def _tick_source(period_ms: int) -> Source:
    jvm = get_gateway().jvm
    gen = jvm.org.apache.flink.connector.datagen.source
    j = gen.DataGeneratorSource(
        jvm.dev.homeflow.flink.TickGenerator(), jvm.java.lang.Long.MAX_VALUE,
        jvm.org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy.perSecond(1000.0 / period_ms),
        jvm.org.apache.flink.api.common.typeinfo.Types.LONG)
    return Source(j)


def batch_key_groups(keyed: KeyedStream, settings: Settings) -> KeyedStream:
    """Each key group's records packed into one element (dev.homeflow.flink.KeyGroupBatcher), keyed
    in place by the group's representative key: the router gets many records per Python call."""
    jvm = get_gateway().jvm
    job = settings.job
    batcher = jvm.dev.homeflow.flink.KeyGroupBatcher(job.batch_max_records, job.batch_max_bytes, job.batch_max_ms,
                                                     job.region, settings.streams.ingest)
    j = keyed._j_data_stream.transform("router-batch", rows.KEYED_BATCH.get_java_type_info(), batcher) \
        .uid("router-batch").name("router-batch")
    j_keyed = jvm.org.apache.flink.streaming.api.datastream.DataStreamUtils.reinterpretAsKeyedStream(
        j, jvm.KeyByKeySelector(), Types.ROW([Types.STRING()]).get_java_type_info())
    return KeyedStream(j_keyed, rows.BATCH, DataStream(j))


def unpack_router_output(routed: DataStream, settings: Settings) -> DataStream:
    """The router's decisions, one row each, deduplicated by event_id per business key
    (dev.homeflow.flink.RouterBatchUnpacker, CommittedEventDedup), as the splitter takes them."""
    jvm = get_gateway().jvm
    flink = jvm.dev.homeflow.flink
    lake_fields = len(rows.LAKE.get_field_names())
    # A chain of its own: the Python router and the Java path to the lake run on two threads (the
    # edge between them carries one byte array per call, cheap to hand over).
    entries = routed._j_data_stream.flatMap(flink.RouterBatchUnpacker(lake_fields, settings.job.region),
                                            rows.ROUTED_ENTRY.get_java_type_info()) \
        .uid("router-unbatch").name("router-unbatch").startNewChain()
    by_key = jvm.org.apache.flink.streaming.api.datastream.DataStreamUtils.reinterpretAsKeyedStream(
        entries, flink.RouterBatchUnpacker.BusinessKey(lake_fields), Types.ROW([Types.STRING()]).get_java_type_info())
    dedup = flink.CommittedEventDedup(3 + lake_fields, settings.job.dedup_ttl_hours * 3_600_000, MAX_SEEN_IDS)
    return DataStream(by_key.process(dedup, rows.ROUTED.get_java_type_info()).uid("router-dedup").name("router-dedup"))


def route(records: DataStream, tables: DataStream, settings: Settings, settings_doc: dict) -> DataStream:
    """The router: records keyed by business key in Java, batched per key group, routed in Python
    with the routing table broadcast, deduplicated and unpacked in Java: the router's rows."""
    # uid "router-batched": the per-key state of the unbatched router (uid "router", before 2026-12)
    # does not map onto this one's per-group layout; jobs/ingest.py says so if a restore carries it.
    routed = (batch_key_groups(kinesis.key_by_business_key(records), settings)
              .connect(tables.broadcast(ROUTING_STATE))
              .process(BatchRouterFunction(settings_doc), output_type=rows.BATCH)
              .uid("router-batched").name("router"))
    return unpack_router_output(routed, settings)


def split_router_output(routed: DataStream) -> tuple[DataStream, callable]:
    """(home records, side(dest)) from the router's rows (dev.homeflow.flink.RouterOutputSplitter)."""
    jvm = get_gateway().jvm
    splitter = jvm.dev.homeflow.flink.RouterOutputSplitter(len(rows.LAKE.get_field_names()))
    j_split = routed._j_data_stream.process(splitter, rows.LAKE.get_java_type_info()) \
        .uid("router-split").name("router-split")

    def side(dest: str) -> DataStream:
        return DataStream(j_split.getSideOutput(jvm.dev.homeflow.flink.RouterOutputSplitter.tag(dest)))
    return DataStream(j_split), side


def build(env: StreamExecutionEnvironment, settings: Settings, settings_doc: dict) -> None:
    job, region = settings.job, settings.job.region
    no_wm = WatermarkStrategy.no_watermarks()

    def kinesis_in(stream: str, uid: str):
        src = kinesis.source(region, settings.aws, stream, settings.streams.initial_position,
                             settings.streams.shard_discovery_ms)
        return env.from_source(src, no_wm, uid, type_info=kinesis.KEYED_SOURCE_ROW).uid(uid).name(uid)

    def ticks(uid: str, period_ms: int) -> DataStream:
        return env.from_source(_tick_source(period_ms), no_wm, uid, type_info=Types.LONG()) \
            .uid(uid).set_parallelism(1)

    records = kinesis_in(settings.streams.ingest, "source-ingest").union(
        kinesis_in(settings.streams.forward, "source-forward"))

    tables = ticks("routing-ticks", job.routing_poll_ms) \
        .process(RoutingFeedFunction(settings_doc), output_type=Types.STRING()) \
        .uid("routing-feed").name("routing-feed").set_parallelism(1)

    homed, side = split_router_output(route(records, tables, settings, settings_doc))

    iceberg_sink.add_sink(homed, settings, uid_prefix="iceberg-home")
    if settings.lake.compact_commits or settings.lake.expire_older_than_ms:
        # Checked once per checkpoint interval: about a commit's worth.
        iceberg_sink.add_maintenance(ticks("lake-compaction-ticks", job.checkpoint_interval_ms), settings)
    iceberg_sink.add_stats(ticks("lake-stats-ticks", job.lake_stats_interval_ms), settings)
    if job.read_publish_interval_ms and job.remote_regions:
        ticks("read-publish-ticks", job.read_publish_interval_ms) \
            .process(ReadPublisherFunction(settings_doc), output_type=Types.STRING()) \
            .uid("read-publisher").name("read-publisher").set_parallelism(1)
    for remote in job.remote_regions:
        side(remote).sink_to(kinesis.sink(remote, settings.aws, settings.streams.forward,
                                          key_ordered=settings.streams.forward_ordering == "key",
                                          aggregate=settings.streams.forward_aggregate)) \
            .uid(f"forward-{remote}").name(f"forward-{remote}")
    dead = side(rows.DEAD_LETTER_DEST).union(tables.get_side_output(DEAD_LETTER_TAG))
    dead.sink_to(kinesis.sink(region, settings.aws, settings.streams.dead_letter)) \
        .uid("dead-letter").name("dead-letter")
    # The stream is for alarms and fast consumers; the archive table is the record (exactly once).
    iceberg_sink.add_sink(
        dead.map(lambda r: Row(*archive_row(r[1])), output_type=rows.DEAD_LETTER_ARCHIVE)
            .uid("dead-letter-archive-rows").name("dead-letter-archive-rows"),
        settings, uid_prefix="iceberg-dead-letters", table_name=settings.lake.dead_letter_table_name(region),
        expected=DEAD_LETTER_SCHEMA)
    if settings.lake.dead_letter_retention_days or settings.lake.expire_older_than_ms:
        iceberg_sink.add_dead_letter_maintenance(
            ticks("dead-letter-maintenance-ticks", settings.lake.expire_interval_ms), settings)

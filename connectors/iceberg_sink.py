"""The Flink Iceberg sink, committing through Java's DynamoDbCatalog (iceberg-aws).

The Java FlinkSink writes data files on every checkpoint and commits them once the checkpoint
completes (its committer records `flink.max-committed-checkpoint-id` in the snapshot summary and
skips already-committed checkpoints after a restore); the commit itself is DynamoDbCatalog's
conditional UpdateItem (`v = :v`) on the table's pointer item. Python operators cannot see
checkpoint completion, so this part must stay in Java.
"""
from __future__ import annotations

from contextlib import contextmanager

from pyflink.datastream import DataStream
from pyflink.java_gateway import get_gateway

from conf.settings import Settings
from connectors.lake_schema import SMALL_FILE_BYTES

DYNAMODB_CATALOG = "org.apache.iceberg.aws.dynamodb.DynamoDbCatalog"


def catalog_properties(settings: Settings, home_region: str) -> dict[str, str]:
    props = {
        "warehouse": settings.lake.warehouse(home_region),
        "io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        "dynamodb.table-name": settings.lake.catalog_table,
        "client.region": home_region,
    }
    if settings.aws.endpoint:
        props["dynamodb.endpoint"] = settings.aws.endpoint
        props["s3.endpoint"] = settings.aws.endpoint
        props["s3.path-style-access"] = "true"
    if settings.aws.access_key_id:
        props["s3.access-key-id"] = settings.aws.access_key_id
        props["s3.secret-access-key"] = settings.aws.secret_access_key or ""
    return props


def _java_catalog_properties(settings: Settings, home_region: str):
    props = get_gateway().jvm.java.util.HashMap()
    for k, v in catalog_properties(settings, home_region).items():
        props.put(k, v)
    return props


def _table_name(settings: Settings, home_region: str, table: str | None = None) -> str:
    return f"{settings.lake.namespace}.{table or settings.lake.table_name(home_region)}"


def java_catalog_loader(settings: Settings, home_region: str):
    jvm = get_gateway().jvm
    return jvm.org.apache.iceberg.flink.CatalogLoader.custom(
        f"homeflow-{home_region}", _java_catalog_properties(settings, home_region),
        jvm.org.apache.hadoop.conf.Configuration(), DYNAMODB_CATALOG)


def java_table_loader(settings: Settings, home_region: str, table: str | None = None):
    jvm = get_gateway().jvm
    ident = jvm.org.apache.iceberg.catalog.TableIdentifier.parse(_table_name(settings, home_region, table))
    return jvm.org.apache.iceberg.flink.TableLoader.fromCatalog(java_catalog_loader(settings, home_region), ident)


@contextmanager
def java_table(settings: Settings, home_region: str, table: str | None = None):
    """The table (default: the home table) as Java's DynamoDbCatalog loads it (the object the Flink
    sink commits to); usable until the block ends (closing the loader closes the catalog's clients)."""
    table_loader = java_table_loader(settings, home_region, table)
    table_loader.open()
    try:
        try:
            table = table_loader.loadTable()
        except Exception as e:  # py4j wraps NoSuchTableException
            raise RuntimeError(
                f"Iceberg table {_table_name(settings, home_region, table)} is missing in "
                f"catalog {settings.lake.catalog_table} ({home_region}); create it with `homeflow lake init`"
            ) from e
        yield table
    finally:
        table_loader.close()


def add_sink(rows: DataStream, settings: Settings, uid_prefix: str, table_name: str | None = None,
             expected=None) -> None:
    """Rows (in the table's column order) committed to this region's home table, or to
    `table_name` in the same catalog, once per completed checkpoint."""
    jvm = get_gateway().jvm
    region = settings.job.region
    with java_table(settings, region, table_name) as table:
        schema = table.schema()
    from connectors.lake_schema import SCHEMA
    have = {f.name() for f in schema.columns()}
    missing = [f.name for f in (expected or SCHEMA).fields if f.name not in have]
    if missing:
        raise RuntimeError(f"Iceberg table of {region} lacks column(s) {', '.join(missing)} this job writes; "
                           f"upgrade it with `homeflow lake init`")
    row_type = jvm.org.apache.iceberg.flink.FlinkSchemaUtil.convert(schema)
    (
        jvm.org.apache.iceberg.flink.sink.FlinkSink.builderFor(
            rows._j_data_stream, jvm.dev.homeflow.flink.RowToRowData(row_type),
            jvm.org.apache.flink.table.runtime.typeutils.InternalTypeInfo.of(row_type))
        .tableLoader(java_table_loader(settings, region, table_name))
        .uidPrefix(uid_prefix)
        .writeParallelism(settings.job.parallelism)
        .setSnapshotProperty("homeflow.writer-region", region)
        .append()
    )


def add_stats(ticks: DataStream, settings: Settings) -> None:
    """The Java lake-stats operator: the home table's shape as kinesisanalytics gauges."""
    jvm = get_gateway().jvm
    fn = jvm.dev.homeflow.flink.LakeStatsFunction(java_table_loader(settings, settings.job.region), SMALL_FILE_BYTES)
    ticks._j_data_stream.process(fn).uid("lake-stats").name("lake-stats").setParallelism(1)


def add_maintenance(ticks: DataStream, settings: Settings) -> None:
    """Compaction and snapshot expiry of the home table inside the job, on a thread of the
    operator's own (dev.homeflow.flink.LakeMaintenanceFunction): a tick only starts the checks.
    The uid is the one the operator had when it only compacted: savepoints since then restore."""
    from connectors.lake_view import VIEW_KEY
    from connectors.read_pointer import POINTER_TABLE
    lake, region = settings.lake, settings.job.region
    fn = get_gateway().jvm.dev.homeflow.flink.LakeMaintenanceFunction(
        java_table_loader(settings, region), lake.compact_commits, lake.compact_min_interval_ms,
        lake.compact_target_bytes, lake.expire_older_than_ms, lake.expire_retain_last, lake.expire_interval_ms,
        _java_catalog_properties(settings, region), POINTER_TABLE, VIEW_KEY, region)
    ticks._j_data_stream.process(fn).uid("lake-compaction").name("lake-maintenance").setParallelism(1)


def add_dead_letter_maintenance(ticks: DataStream, settings: Settings) -> None:
    """The dead-letter archive kept inside the job (dev.homeflow.flink.DeadLetterRetention, on a
    thread of its own): whole days older than homeflow.lake/dead.letter.retention.days deleted,
    and old snapshots expired with the home table's homeflow.lake/expire.* settings."""
    lake, region = settings.lake, settings.job.region
    fn = get_gateway().jvm.dev.homeflow.flink.DeadLetterRetention(
        java_table_loader(settings, region, lake.dead_letter_table_name(region)),
        lake.dead_letter_retention_days * 86_400_000, lake.expire_older_than_ms, lake.expire_retain_last)
    ticks._j_data_stream.process(fn).uid("dead-letter-maintenance").name("dead-letter-maintenance").setParallelism(1)

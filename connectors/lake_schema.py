"""The Iceberg table layout shared by the Flink writer and the Python readers."""
from __future__ import annotations

from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import IntegerType, LongType, NestedField, StringType, TimestamptzType

# Field order here IS the row order the router emits (jobs/router_function.py, LAKE_ROW).
SCHEMA = Schema(
    NestedField(1, "event_id", StringType(), required=True),
    NestedField(2, "key", StringType(), required=True),
    NestedField(3, "event_time", TimestamptzType(), required=True),
    NestedField(4, "ts", LongType(), required=True),
    NestedField(5, "origin", StringType(), required=True),
    NestedField(6, "hops", IntegerType(), required=True),
    NestedField(7, "epoch", LongType(), required=True),
    NestedField(8, "home_region", StringType(), required=True),
    NestedField(9, "payload", StringType(), required=False),
    # "stream/shard/sequence" this row was read from: evidence for order and for forwarding
    NestedField(10, "source", StringType(), required=True),
    # When the router accepted it (ms): with `epoch`, a key's order across home tables is
    # (epoch, routed_at). Optional so that older tables can be evolved (`homeflow lake init`).
    NestedField(11, "routed_at", LongType(), required=False),
    # How long it waited at the router (table not loaded, newer epoch, hand-off), ms.
    NestedField(12, "held_ms", LongType(), required=False),
    # Null when committed in its key's order; else why not: "reordered" (a record that entered its
    # lane later was committed first), "stranded:<region>" (held by a lost region until it
    # returned), "handoff-timeout:<region>" (udfs/handoff.py, udfs/lanes.py).
    NestedField(13, "unordered", StringType(), required=False),
    # Where the record entered the system: "region/shard/sequence" of the ingest stream a job first
    # read it from (not the producer's `origin`), and Kinesis's arrival time there (ms). A key's
    # order is per entry lane (region) by position, across lanes by entered_at.
    NestedField(14, "entry", StringType(), required=False),
    NestedField(15, "entered_at", LongType(), required=False),
)
# Readers ask for "one day" and "one key over a time range": partition by day, sort by key.
PARTITION_SPEC = PartitionField(source_id=3, field_id=1000, transform=DayTransform(), name="event_day")
SPEC = PartitionSpec(PARTITION_SPEC)
SORT_ORDER = SortOrder(SortField(source_id=2, transform=IdentityTransform()),
                       SortField(source_id=4, transform=IdentityTransform()))
TABLE_PROPERTIES = {
    "format-version": "2",
    "write.format.default": "parquet",
    "write.parquet.compression-codec": "zstd",
    "write.metadata.previous-versions-max": "50",
    "write.metadata.delete-after-commit.enabled": "true",
}
# "Small" data file, for the small-file ratio (CLI stats and the job's gauges): under a quarter of
# the 128 MB compaction target.
SMALL_FILE_BYTES = 32 * 1024 * 1024

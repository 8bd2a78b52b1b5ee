"""The Iceberg table layout shared by the Flink writer and the Python readers."""
from __future__ import annotations

from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import IntegerType, LongType, NestedField, StringType, TimestamptzType

# Field order here IS the row order the router emits (jobs/rows.py, LAKE). Each column's
# doc is stored in the table's schema and printed by docs/reference/lake-schema.md.
SCHEMA = Schema(
    NestedField(1, "event_id", StringType(), required=True,
                doc="The producer's unique id of the event: the lake holds each event_id once across every home table."),
    NestedField(2, "key", StringType(), required=True,
                doc="The business key: it decides the home region, and its rows keep their order."),
    NestedField(3, "event_time", TimestamptzType(), required=True,
                doc="The event's time as the producer stated it (`ts`); the table is partitioned by its day."),
    NestedField(4, "ts", LongType(), required=True, doc="The producer's timestamp, epoch milliseconds."),
    NestedField(5, "origin", StringType(), required=True,
                doc="The region the producer says it wrote the event in (declared, not checked)."),
    NestedField(6, "hops", IntegerType(), required=True,
                doc="How many times the record was forwarded between regions before it was committed here."),
    NestedField(7, "epoch", LongType(), required=True, doc="The routing table's epoch the record was routed under."),
    NestedField(8, "home_region", StringType(), required=True, doc="The region whose table holds the row."),
    NestedField(9, "payload", StringType(), required=False, doc="The event's payload, as JSON text."),
    NestedField(10, "source", StringType(), required=True,
                doc="`stream/shard/sequence` this row was last read from (the ingest or forward stream)."),
    # Optional so that older tables can be evolved (`homeflow lake init`).
    NestedField(11, "routed_at", LongType(), required=False,
                doc="When the home's router accepted the record (epoch ms): with `epoch`, a key's order across "
                    "home tables is (epoch, routed_at)."),
    NestedField(12, "held_ms", LongType(), required=False,
                doc="From when this region's job read the record to when its router routed it, ms: its time in a "
                    "key group's batch and in the router's queue, and any hold (no table yet, a newer epoch, a "
                    "hand-off)."),
    NestedField(13, "unordered", StringType(), required=False,
                doc="Null when the row was committed in its key's order; otherwise why not: `reordered`, "
                    "`stranded:<region>` or `handoff-timeout:<region>` (see the hand-off concept page)."),
    NestedField(14, "entry", StringType(), required=False,
                doc="Where the record entered the system: `region/shard/sequence` of the ingest stream a job first "
                    "read it from. A key's order is kept per entry lane."),
    NestedField(15, "entered_at", LongType(), required=False,
                doc="Kinesis's arrival time of the record in its entry stream (epoch ms): orders a key's records "
                    "across entry lanes."),
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
# The dead-letter archive: every dead letter of a region, committed with the job's checkpoints
# like the home table (homeflow.dead_letters_<region>). The stream keeps them for its retention;
# this table is the record (`homeflow dead-letters`).
DEAD_LETTER_SCHEMA = Schema(
    NestedField(1, "at", TimestamptzType(), required=True, doc="When the record was dead-lettered."),
    NestedField(2, "reason", StringType(), required=True,
                doc="Why: malformed-json, oversized, missing-event-id, wrong-type, routing-conflict, ..."),
    NestedField(3, "detail", StringType(), required=False, doc="What exactly was wrong, for a person."),
    NestedField(4, "region", StringType(), required=True, doc="The region whose job dead-lettered it."),
    NestedField(5, "source", StringType(), required=False,
                doc="`stream/shard/sequence` the record was read from (empty for a bad routing table)."),
    NestedField(6, "event_id", StringType(), required=False, doc="The record's event_id, when it could be read."),
    NestedField(7, "key", StringType(), required=False, doc="The record's business key, when it could be read."),
    NestedField(8, "raw", StringType(), required=True,
                doc="The record's original bytes: as text when they are UTF-8, else base64 (`raw_encoding`)."),
    NestedField(9, "raw_encoding", StringType(), required=True, doc="`utf-8` or `base64`."),
)
DEAD_LETTER_SPEC = PartitionSpec(PartitionField(source_id=1, field_id=1000, transform=DayTransform(), name="at_day"))

# "Small" data file, for the small-file ratio (CLI stats and the job's gauges): under a quarter of
# the 128 MB compaction target.
SMALL_FILE_BYTES = 32 * 1024 * 1024

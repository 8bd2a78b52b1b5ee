"""Row types passed between the job's operators (PyFlink type information), and the builders of
the rows the router emits."""
import json

from pyflink.common import Row, Types

from connectors.kinesis import SOURCE_ROW

SOURCE = SOURCE_ROW  # records as read: Row(stream, shard_id, seq, data, arrived) with the original bytes
# Home records, in the Iceberg table's column order (connectors/lake_schema.py); event_time is
# epoch ms here and becomes a timestamp in dev.homeflow.flink.RowToRowData.
LAKE = Types.ROW_NAMED(
    ["event_id", "key", "event_time", "ts", "origin", "hops", "epoch", "home_region", "payload", "source",
     "routed_at", "held_ms", "unordered", "entry", "entered_at"],
    [Types.STRING(), Types.STRING(), Types.LONG(), Types.LONG(), Types.STRING(), Types.INT(),
     Types.LONG(), Types.STRING(), Types.STRING(), Types.STRING(), Types.LONG(), Types.LONG(), Types.STRING(),
     Types.STRING(), Types.LONG()],
)
# What the router emits: Row(dest, partition_key, data, *LAKE): dest "" = a home record (the LAKE
# fields), else a Kinesis record for `dest` (a region's forward stream, or "dead-letter"); split in
# Java by dev.homeflow.flink.RouterOutputSplitter.
ROUTED = Types.ROW_NAMED(["dest", "partition_key", "data", *LAKE.get_field_names()],
                         [Types.STRING(), Types.STRING(), Types.STRING(), *LAKE.get_field_types()])
LAKE_NONE = (None,) * len(LAKE.get_field_names())
# The router's decisions unpacked in Java (dev.homeflow.flink.RouterBatchUnpacker): a ROUTED row and
# the control fields its dedup step reads (business key, kind, event_id, flags, event_ids as JSON).
ROUTED_ENTRY = Types.ROW_NAMED([*ROUTED.get_field_names(), "c_key", "c_kind", "c_event_id", "c_flags", "c_ids"],
                               [*ROUTED.get_field_types(), Types.STRING(), Types.STRING(), Types.STRING(),
                                Types.INT(), Types.STRING()])
# A key group's records packed for the router (dev.homeflow.flink.KeyGroupBatcher, udfs/batch_codec.py),
# keyed by the group's representative key; and the router's output per call.
BATCH = Types.PRIMITIVE_ARRAY(Types.BYTE())
KEYED_BATCH = Types.ROW([Types.STRING(), BATCH])
DEAD_LETTER_DEST = "dead-letter"
# A record held at the router (udfs.handoff.Held), in keyed list state. HELD_V1 is the layout
# before entry lanes (2026-12-04), still read once per key from older snapshots.
HELD = Types.ROW_NAMED(["source", "data", "arrived", "late", "entry", "entered"],
                       [Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.LONG(), Types.STRING(),
                        Types.STRING(), Types.LONG()])
HELD_V1 = Types.ROW_NAMED(["source", "data", "arrived", "late"],
                          [Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.LONG(), Types.STRING()])
# The dead-letter archive's rows (connectors/lake_schema.py DEAD_LETTER_SCHEMA; `at` in epoch ms).
DEAD_LETTER_ARCHIVE = Types.ROW_NAMED(
    ["at", "reason", "detail", "region", "source", "event_id", "key", "raw", "raw_encoding"],
    [Types.LONG(), *[Types.STRING()] * 8])
# To a Kinesis sink: (partition key, JSON data).
KINESIS_OUT = Types.ROW_NAMED(["partition_key", "data"], [Types.STRING(), Types.STRING()])


def source_of(record) -> str:
    """stream/shard/sequence of a SOURCE row, the stream by its short name: a record's position as read."""
    return f"{record[0].rsplit('/', 1)[-1]}/{record[1]}/{record[2]}"


def home_row(env, epoch: int, region: str, source: str, routed_at: int, held_ms: int, late: str | None,
             entry: str | None = None, entered_ms: int | None = None) -> Row:
    """A ROUTED row for the home table (dest ""). `epoch` is the routing epoch under which `region`
    accepted the record as home; it orders a key's rows across home tables and decides between
    two copies (udfs/resolve.py). `entry` is where it entered the system (udfs/lanes.py)."""
    payload = None if env.payload is None else json.dumps(env.payload, separators=(",", ":"))
    return Row("", None, None, env.event_id, env.key, env.ts, env.ts, env.origin, env.hops, epoch, region,
               payload, source, routed_at, held_ms, late, entry, entered_ms)

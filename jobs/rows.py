"""Row types passed between the job's operators (PyFlink type information)."""
from pyflink.common import Types

from connectors.kinesis import SOURCE_ROW

SOURCE = SOURCE_ROW  # records as read: Row(stream, shard_id, seq, data) with the original bytes
# Home records, in the Iceberg table's column order (connectors/lake_schema.py); event_time is
# epoch ms here and becomes a timestamp in dev.homeflow.flink.RowToRowData.
LAKE = Types.ROW_NAMED(
    ["event_id", "key", "event_time", "ts", "origin", "hops", "epoch", "home_region", "payload", "source"],
    [Types.STRING(), Types.STRING(), Types.LONG(), Types.LONG(), Types.STRING(), Types.INT(),
     Types.LONG(), Types.STRING(), Types.STRING(), Types.STRING()],
)
# To a Kinesis sink: (partition key, JSON data).
KINESIS_OUT = Types.ROW_NAMED(["partition_key", "data"], [Types.STRING(), Types.STRING()])

package dev.homeflow.flink;

import java.io.IOException;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.kinesis.source.serialization.KinesisDeserializationSchema;
import org.apache.flink.kinesis.shaded.software.amazon.awssdk.services.kinesis.model.Record;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * Emits Row(stream, shard_id, sequence_number, data, arrived) with the record's ORIGINAL bytes, so
 * that bad input (even invalid UTF-8) reaches the dead-letter stream unchanged, and every lake row
 * can name the shard position it came from. {@code arrived} is Kinesis's
 * ApproximateArrivalTimestamp in epoch ms (null if the service gave none): the time the record
 * entered the stream, which orders a key's records across streams (udfs/lanes.py).
 */
public final class KinesisRecordRowSchema implements KinesisDeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;

    public static final TypeInformation<Row> TYPE = Types.ROW_NAMED(
            new String[] {"stream", "shard_id", "seq", "data", "arrived"},
            Types.STRING, Types.STRING, Types.STRING,
            PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO, Types.LONG);

    /** A record's arrival time in epoch ms, or null. */
    public static Long arrived(Record record) {
        return record.approximateArrivalTimestamp() == null ? null : record.approximateArrivalTimestamp().toEpochMilli();
    }

    @Override
    public void deserialize(Record record, String stream, String shardId, Collector<Row> out)
            throws IOException {
        out.collect(Row.of(stream, shardId, record.sequenceNumber(), record.data().asByteArray(), arrived(record)));
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return TYPE;
    }
}

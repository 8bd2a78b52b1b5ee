package dev.homeflow.flink;

import java.nio.charset.StandardCharsets;
import org.apache.flink.api.common.serialization.SerializationSchema;
import org.apache.flink.types.Row;

/** Writes one string field of the Row (the JSON envelope) as the Kinesis record data, UTF-8. */
public final class RowFieldBytesSerializationSchema implements SerializationSchema<Row> {
    private static final long serialVersionUID = 1L;
    private final int field;

    public RowFieldBytesSerializationSchema(int field) {
        this.field = field;
    }

    @Override
    public byte[] serialize(Row row) {
        Object value = row.getField(field);
        return value == null ? new byte[0] : value.toString().getBytes(StandardCharsets.UTF_8);
    }
}

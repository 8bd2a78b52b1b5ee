package dev.homeflow.flink;

import org.apache.flink.connector.kinesis.sink.PartitionKeyGenerator;
import org.apache.flink.types.Row;

/**
 * Kinesis partition key = one string field of the Row (the business key), so that a forwarded
 * key lands on one shard of the remote stream and keeps its order there. PyFlink has no way to
 * pass a Python function to the JVM-side sink, hence this tiny class.
 */
public final class RowFieldPartitionKeyGenerator implements PartitionKeyGenerator<Row> {
    private static final long serialVersionUID = 1L;
    private final int field;

    public RowFieldPartitionKeyGenerator(int field) {
        this.field = field;
    }

    @Override
    public String apply(Row row) {
        Object value = row.getField(field);
        if (value == null) {
            throw new IllegalArgumentException("partition key field " + field + " is null in " + row);
        }
        return value.toString();
    }
}

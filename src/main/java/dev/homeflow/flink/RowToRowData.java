package dev.homeflow.flink;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.LogicalTypeRoot;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.types.Row;

/**
 * Row from the Python router -> RowData for the Iceberg sink, field by field in table order.
 * Timestamps travel from Python as epoch milliseconds (PyFlink's THREAD mode cannot hand a
 * java.time.Instant across), and are converted here.
 */
public final class RowToRowData implements MapFunction<Row, RowData> {
    private static final long serialVersionUID = 1L;
    private final LogicalTypeRoot[] roots;

    public RowToRowData(RowType rowType) {
        roots = new LogicalTypeRoot[rowType.getFieldCount()];
        for (int i = 0; i < roots.length; i++) {
            LogicalType t = rowType.getTypeAt(i);
            roots[i] = t.getTypeRoot();
        }
    }

    @Override
    public RowData map(Row row) {
        if (row.getArity() != roots.length) {
            throw new IllegalArgumentException(
                    "row has " + row.getArity() + " fields, table has " + roots.length + ": " + row);
        }
        GenericRowData out = new GenericRowData(roots.length);
        for (int i = 0; i < roots.length; i++) {
            Object v = row.getField(i);
            if (v == null) {
                continue;
            }
            switch (roots[i]) {
                case VARCHAR:
                case CHAR:
                    out.setField(i, StringData.fromString(v.toString()));
                    break;
                case TIMESTAMP_WITH_LOCAL_TIME_ZONE:
                case TIMESTAMP_WITHOUT_TIME_ZONE:
                    out.setField(i, TimestampData.fromEpochMillis(((Number) v).longValue()));
                    break;
                case INTEGER:
                    out.setField(i, ((Number) v).intValue());
                    break;
                case BIGINT:
                    out.setField(i, ((Number) v).longValue());
                    break;
                default:
                    throw new IllegalArgumentException("unsupported column type " + roots[i] + " at " + i);
            }
        }
        return out;
    }
}

package dev.homeflow.flink;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Splits the router's single output into the lake stream and one side output per destination.
 *
 * <p>The Python router emits Row(dest, partition_key, data, lake fields...): dest "" is a home record
 * (the lake fields go on as the main output), any other dest is a Kinesis record for that side
 * output (a remote region's forward stream, or the dead-letter stream). It cannot use side outputs
 * itself: in PyFlink 1.20's THREAD mode a keyed broadcast process function's on_timer output skips
 * the side-output routing that process_element gets (pyflink/fn_execution/datastream/embedded/
 * operations.py, KEYED_CO_BROADCAST_PROCESS), so a forward released by a timer would reach the main
 * output and fail the job. Chained to the router, this costs no serialization.
 */
public final class RouterOutputSplitter extends ProcessFunction<Row, Row> {
    private static final long serialVersionUID = 1L;
    public static final int LAKE_OFFSET = 3;
    /** The destination of dead letters (jobs/rows.py DEAD_LETTER_DEST). */
    public static final String DEAD_LETTER = "dead-letter";
    public static final TypeInformation<Row> KINESIS_OUT =
            Types.ROW_NAMED(new String[] {"partition_key", "data"}, Types.STRING, Types.STRING);

    private final int lakeFields;

    public RouterOutputSplitter(int lakeFields) {
        this.lakeFields = lakeFields;
    }

    /** The side output carrying records for `dest` (a region name, or "dead-letter"). */
    public static OutputTag<Row> tag(String dest) {
        return new OutputTag<>("route-" + dest, KINESIS_OUT);
    }

    @Override
    public void processElement(Row r, Context ctx, Collector<Row> out) {
        String dest = (String) r.getField(0);
        if (dest == null || dest.isEmpty()) {
            Row lake = new Row(lakeFields);
            for (int i = 0; i < lakeFields; i++) {
                lake.setField(i, r.getField(LAKE_OFFSET + i));
            }
            out.collect(lake);
        } else {
            ctx.output(tag(dest), Row.of(r.getField(1), r.getField(2)));
        }
    }
}

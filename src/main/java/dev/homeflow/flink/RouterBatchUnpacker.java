package dev.homeflow.flink;

import java.io.IOException;
import org.apache.flink.api.common.functions.RichFlatMapFunction;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonGenerator;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * Turns one call's worth of the Python router's decisions (udfs/batch_codec.py: a JSON array of
 * entries, in the order the router made them) into one row per entry, for the dedup step keyed by
 * business key ({@link CommittedEventDedup}) and then the splitter ({@link RouterOutputSplitter}).
 *
 * <p>Entry forms (first element the kind, second the business key):
 * <ul>
 *   <li>["H", key, event_id, ts, origin, hops, epoch, payload, source, routed_at, held_ms, unordered,
 *       entry, entered]: a home record, committed unless this region committed its event_id (payload
 *       is the envelope's JSON value, written into the lake as its text);</li>
 *   <li>["F", key, region, envelope, event_id, flags]: a forward (or a hand-off marker) to a region's
 *       forward stream, the envelope a JSON object; flags: 1 = drop it if this region committed the
 *       event_id (unless it carries `after`, 4), 2 = an old home's answer to an acquire marker: fill
 *       `seen` with this region's recent event_ids of the key;</li>
 *   <li>["D", key, reason, dead letter]: to the dead-letter stream, the dead letter a JSON text;</li>
 *   <li>["S", key, [event_ids]]: event_ids another home committed for the key (a hand-over).</li>
 * </ul>
 * Output rows are the router's rows (dest, partition key, data, lake fields) followed by three
 * control fields: business key, kind, and event_id / flags / ids as the kind needs
 * ({@link #CONTROL}).
 */
public final class RouterBatchUnpacker extends RichFlatMapFunction<byte[], Row> {
    private static final long serialVersionUID = 1L;
    // Payloads and envelopes are written back with non-ASCII escaped, as Python's json.dumps writes
    // them: the lake's payload text and the forwarded records stay what they were before batching.
    static final ObjectMapper JSON = new ObjectMapper().enable(JsonGenerator.Feature.ESCAPE_NON_ASCII);
    /** Control fields after the router's row: business key, kind, event_id, flags, ids (JSON text). */
    public static final int CONTROL = 5;
    public static final int FLAG_UNLESS_COMMITTED = 1;
    public static final int FLAG_WITH_SEEN = 2;
    public static final int FLAG_AFTER = 4;

    private final int lakeFields;
    private final String region;

    public RouterBatchUnpacker(int lakeFields, String region) {
        this.lakeFields = lakeFields;
        this.region = region;
    }

    /** The business key of an unpacked row, as the job's keyBy keys it (Row(key)). */
    public static final class BusinessKey implements KeySelector<Row, Row> {
        private static final long serialVersionUID = 1L;
        private final int pos;

        public BusinessKey(int lakeFields) {
            this.pos = 3 + lakeFields;
        }

        @Override
        public Row getKey(Row r) {
            return Row.of(r.getField(pos));
        }
    }

    private Row row(String dest, String partitionKey, String data) {
        Row r = new Row(3 + lakeFields + CONTROL);
        r.setField(0, dest);
        r.setField(1, partitionKey);
        r.setField(2, data);
        return r;
    }

    @Override
    public void flatMap(byte[] batch, Collector<Row> out) throws IOException {
        for (Row r : unpack(batch)) {
            out.collect(r);
        }
    }

    /** The rows of one call's decisions, in order. Read with a streaming parser: a JSON tree per
     * call cost more than the rest of this operator. */
    public java.util.List<Row> unpack(byte[] batch) throws IOException {
        java.util.List<Row> out = new java.util.ArrayList<>();
        int c = 3 + lakeFields;
        try (JsonParser p = JSON.getFactory().createParser(batch)) {
            expect(p.nextToken(), JsonToken.START_ARRAY);
            while (p.nextToken() == JsonToken.START_ARRAY) {
                String kind = string(p);
                String key = string(p);
                Row r;
                switch (kind) {
                    case "H": {
                        r = row("", null, null);
                        String id = string(p);
                        long ts = number(p);
                        Object[] lake = {id, key, ts, ts, string(p), (int) number(p), number(p), region, value(p),
                            string(p), optionalNumber(p), optionalNumber(p), string(p), string(p), optionalNumber(p)};
                        for (int i = 0; i < lake.length && i < lakeFields; i++) {
                            r.setField(3 + i, lake[i]);
                        }
                        r.setField(c + 2, id);
                        break;
                    }
                    case "F": {
                        String dest = string(p);
                        r = row(dest, key, value(p));
                        r.setField(c + 2, string(p));
                        r.setField(c + 3, (int) number(p));
                        break;
                    }
                    case "D": {
                        String reason = string(p);
                        r = row(RouterOutputSplitter.DEAD_LETTER, reason, string(p));
                        break;
                    }
                    case "S":
                        r = row(null, null, null);
                        r.setField(c + 4, value(p));
                        break;
                    default:
                        throw new IllegalArgumentException("unknown router entry kind " + kind);
                }
                expect(p.nextToken(), JsonToken.END_ARRAY);
                r.setField(c, key);
                r.setField(c + 1, kind);
                out.add(r);
            }
        }
        return out;
    }

    private static void expect(JsonToken got, JsonToken want) {
        if (got != want) {
            throw new IllegalArgumentException("router output: expected " + want + ", got " + got);
        }
    }

    private static String string(JsonParser p) throws IOException {
        JsonToken t = p.nextToken();
        return t == JsonToken.VALUE_NULL ? null : p.getText();
    }

    private static long number(JsonParser p) throws IOException {
        p.nextToken();
        return p.getLongValue();
    }

    private static Long optionalNumber(JsonParser p) throws IOException {
        return p.nextToken() == JsonToken.VALUE_NULL ? null : p.getLongValue();
    }

    /** The next value as compact JSON text (non-ASCII escaped), or null for JSON null. */
    private static String value(JsonParser p) throws IOException {
        if (p.nextToken() == JsonToken.VALUE_NULL) {
            return null;
        }
        java.io.StringWriter w = new java.io.StringWriter();
        try (JsonGenerator g = JSON.getFactory().createGenerator(w)) {
            g.copyCurrentStructure(p);
        }
        return w.toString();
    }
}

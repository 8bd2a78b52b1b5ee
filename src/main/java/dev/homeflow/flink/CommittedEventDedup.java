package dev.homeflow.flink;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ArrayNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * The event_ids this region committed, per business key: the dedup by event_id, the one piece of
 * the router's state that is a plain lookup (udfs/handoff.py decides, this keeps the set).
 *
 * <p>Keyed by business key after {@link RouterBatchUnpacker} (reinterpreted in place: the router's
 * subtask already holds exactly these keys). In the router's order, per key:
 * a home entry is committed unless its event_id is here, and is then recorded; a forward flagged
 * "unless committed" is dropped when its event_id is here, except one that carries `after` (the
 * new home must see the flag; its own dedup has the old homes' recent event_ids); an old home's
 * answer to an acquire marker gets this key's most recent {@code maxSeen} event_ids in its `seen`;
 * a hand-over adds the ids it carries. Entries leave as the router's rows for the splitter.
 * State: map state event_id -> ms recorded, with the job's dedup TTL.
 */
public final class CommittedEventDedup extends KeyedProcessFunction<Row, Row, Row> {
    private static final long serialVersionUID = 1L;

    private final int routedFields;
    private final long ttlMs;
    private final int maxSeen;

    private transient MapState<String, Long> seen;
    private transient Counter home;
    private transient Counter dropped;

    public CommittedEventDedup(int routedFields, long ttlMs, int maxSeen) {
        this.routedFields = routedFields;
        this.ttlMs = ttlMs;
        this.maxSeen = maxSeen;
    }

    @Override
    public void open(Configuration parameters) {
        MapStateDescriptor<String, Long> d = new MapStateDescriptor<>("committed-event-ids", Types.STRING, Types.LONG);
        d.enableTimeToLive(ttl(ttlMs));
        seen = getRuntimeContext().getMapState(d);
        MetricGroup g = getRuntimeContext().getMetricGroup().addGroup("kinesisanalytics");
        home = g.counter("homeflow_records_home");
        dropped = g.counter("homeflow_dedup_dropped");
    }

    /**
     * The dedup state's TTL (the Java-only benchmark pipeline uses it too, so that the two differ in
     * what they do, not in how their state is configured). RocksDB (Managed Flink) drops expired ids
     * in compaction. The heap backend (local runs) drops one when it is read: its incremental cleanup
     * copies a key's whole map on every visit (TtlMapState.getUnexpiredOrNull), which took a quarter
     * of the router thread in a profile even at one visit per access; a local run is shorter than
     * the TTL anyway.
     */
    public static StateTtlConfig ttl(long ttlMs) {
        return StateTtlConfig.newBuilder(Duration.ofMillis(ttlMs))
                .setUpdateType(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                .disableCleanupInBackground()
                .cleanupInRocksdbCompactFilter(1000)
                .build();
    }

    private Row routed(Row r) {
        Row out = new Row(routedFields);
        for (int i = 0; i < routedFields; i++) {
            out.setField(i, r.getField(i));
        }
        return out;
    }

    @Override
    public void processElement(Row r, Context ctx, Collector<Row> out) throws Exception {
        String kind = (String) r.getField(routedFields + 1);
        long now = ctx.timerService().currentProcessingTime();
        switch (kind) {
            case "H": {
                String id = (String) r.getField(routedFields + 2);
                if (seen.contains(id)) {
                    dropped.inc();
                    return;
                }
                seen.put(id, now);
                home.inc();
                out.collect(routed(r));
                return;
            }
            case "F": {
                int flags = (Integer) r.getField(routedFields + 3);
                if ((flags & RouterBatchUnpacker.FLAG_UNLESS_COMMITTED) != 0
                        && (flags & RouterBatchUnpacker.FLAG_AFTER) == 0
                        && seen.contains((String) r.getField(routedFields + 2))) {
                    dropped.inc();
                    return;
                }
                Row o = routed(r);
                if ((flags & RouterBatchUnpacker.FLAG_WITH_SEEN) != 0) {
                    ObjectNode env = (ObjectNode) RouterBatchUnpacker.JSON.readTree((String) o.getField(2));
                    ArrayNode ids = env.putArray("seen");
                    recent().forEach(ids::add);
                    o.setField(2, RouterBatchUnpacker.JSON.writeValueAsString(env));
                }
                out.collect(o);
                return;
            }
            case "S":
                for (JsonNode id : RouterBatchUnpacker.JSON.readTree((String) r.getField(routedFields + 4))) {
                    if (!seen.contains(id.asText())) {
                        seen.put(id.asText(), now);
                    }
                }
                return;
            default:
                out.collect(routed(r));
        }
    }

    /** The key's most recently recorded event_ids, oldest first, at most maxSeen. */
    private List<String> recent() throws Exception {
        List<Map.Entry<String, Long>> all = new ArrayList<>();
        for (Map.Entry<String, Long> e : seen.entries()) {
            all.add(Map.entry(e.getKey(), e.getValue()));
        }
        all.sort(Map.Entry.comparingByValue());
        List<String> out = new ArrayList<>();
        for (int i = Math.max(0, all.size() - maxSeen); i < all.size(); i++) {
            out.add(all.get(i).getKey());
        }
        return out;
    }
}

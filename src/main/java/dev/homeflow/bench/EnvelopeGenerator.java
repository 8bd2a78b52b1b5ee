package dev.homeflow.bench;

import java.nio.charset.StandardCharsets;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.types.Row;

/**
 * Benchmark input shaped like the job's keyed source rows: Row(key, Row(stream, shard_id, seq, data)) where
 * data is an envelope whose ts is the generation time, so sinks can measure latency. The
 * generation time is also put in shard_id, so a pass-through baseline can report latency
 * without parsing JSON.
 */
public final class EnvelopeGenerator implements GeneratorFunction<Long, Row> {
    private static final long serialVersionUID = 1L;
    private final int keys;
    private final String origin;

    public EnvelopeGenerator(int keys, String origin) {
        this.keys = keys;
        this.origin = origin;
    }

    @Override
    public Row map(Long i) {
        long now = System.currentTimeMillis();
        String json = "{\"event_id\":\"e-" + i + "\",\"key\":\"key-" + (i % keys) + "\",\"ts\":"
                + now + ",\"origin\":\"" + origin
                + "\",\"hops\":0,\"epoch\":0,\"payload\":{\"seq\":" + i + "}}";
        Row record = Row.of("bench", Long.toString(now), Long.toString(i), json.getBytes(StandardCharsets.UTF_8), now);
        return Row.of("key-" + (i % keys), record);
    }
}

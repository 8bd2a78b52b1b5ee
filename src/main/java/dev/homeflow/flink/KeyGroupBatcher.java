package dev.homeflow.flink;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.types.Row;

/**
 * Packs the records of each key group into one element for the Python router, so that one Python
 * call routes many records (docs/design/router-state.md).
 *
 * <p>Runs right after the job keys its records by business key, in that keyed context. Each record
 * joins the open batch of its key group, in arrival order; a batch leaves as Row(representative key,
 * bytes) when it holds {@code maxRecords} records or {@code maxBytes} bytes, when its oldest record
 * has waited {@code maxMs}, and before every checkpoint barrier ({@link #prepareSnapshotPreBarrier}),
 * so a batch never spans a checkpoint and the operator keeps no state. The representative key is a
 * string whose key group is the batch's, so the router, keyed by it through
 * DataStreamUtils.reinterpretAsKeyedStream, stays in this subtask with no shuffle, and its state for
 * the group moves with the group on a rescale.
 *
 * <p>Each record is written as six big-endian lengths and times followed by its bytes: int key,
 * source, entry and data lengths; long arrival (Kinesis's ApproximateArrivalTimestamp, -1 if none);
 * long read time (when it reached this operator: the router measures holds from it); then the
 * business key, the source ("stream/shard/sequence", stream by its short name), the entry
 * ("region/shard/sequence" if it came from this region's ingest stream, else empty) and the
 * record's original bytes. udfs/batch_codec.py reads it.
 */
public final class KeyGroupBatcher extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, ProcessingTimeCallback {
    private static final long serialVersionUID = 1L;

    private final int maxRecords;
    private final int maxBytes;
    private final long maxMs;
    private final String region;
    private final String ingestStream;

    private transient int maxParallelism;
    private transient Map<Integer, Batch> open;
    private transient String[] reps;
    private transient long timerAt;
    private transient StreamRecord<Row> reuse;

    public KeyGroupBatcher(int maxRecords, int maxBytes, long maxMs, String region, String ingestStream) {
        this.maxRecords = maxRecords;
        this.maxBytes = maxBytes;
        this.maxMs = maxMs;
        this.region = region;
        this.ingestStream = ingestStream;
    }

    private static final class Batch {
        final DataOutputSerializer out = new DataOutputSerializer(4096);
        final long firstMs;
        int count;

        Batch(long firstMs) {
            this.firstMs = firstMs;
        }
    }

    @Override
    public void open() throws Exception {
        super.open();
        maxParallelism = getRuntimeContext().getMaxNumberOfParallelSubtasks();
        open = new HashMap<>();
        reps = new String[maxParallelism];
        timerAt = Long.MAX_VALUE;
        reuse = new StreamRecord<>(null);
    }

    /** A string whose Row key falls in key group {@code group}: the key the router's state for it lives under. */
    public static String representative(int group, int maxParallelism) {
        for (int n = 0; ; n++) {
            String s = "kg" + group + "." + n;
            if (KeyGroupRangeAssignment.assignToKeyGroup(Row.of(s), maxParallelism) == group) {
                return s;
            }
        }
    }

    private String rep(int group) {
        String s = reps[group];
        if (s == null) {
            s = reps[group] = representative(group, maxParallelism);
        }
        return s;
    }

    @Override
    public void processElement(StreamRecord<Row> element) throws Exception {
        Row in = element.getValue();
        Row rec = (Row) in.getField(1);
        int group = KeyGroupRangeAssignment.assignToKeyGroup(getCurrentKey(), maxParallelism);
        long now = getProcessingTimeService().getCurrentProcessingTime();
        Batch b = open.get(group);
        if (b == null) {
            b = new Batch(now);
            open.put(group, b);
            if (b.firstMs + maxMs < timerAt) {
                timerAt = b.firstMs + maxMs;
                getProcessingTimeService().registerTimer(timerAt, this);
            }
        }
        write(b.out, (String) in.getField(0), rec, now, region, ingestStream);
        b.count++;
        if (b.count >= maxRecords || b.out.length() >= maxBytes) {
            open.remove(group);
            emit(group, b);
        }
    }

    /** One record as the batch holds it (public for the codec's test against udfs/batch_codec.py). */
    public static void write(DataOutputSerializer out, String key, Row rec, long now, String region, String ingestStream)
            throws IOException {
        String stream = (String) rec.getField(0);
        String shortStream = stream.substring(stream.lastIndexOf('/') + 1);
        String shard = (String) rec.getField(1);
        String seq = (String) rec.getField(2);
        byte[] data = (byte[]) rec.getField(3);
        Number arrived = (Number) rec.getField(4);
        byte[] k = key.getBytes(StandardCharsets.UTF_8);
        byte[] source = (shortStream + "/" + shard + "/" + seq).getBytes(StandardCharsets.UTF_8);
        byte[] entry = shortStream.equals(ingestStream)
                ? (region + "/" + shard + "/" + seq).getBytes(StandardCharsets.UTF_8) : new byte[0];
        out.writeInt(k.length);
        out.writeInt(source.length);
        out.writeInt(entry.length);
        out.writeInt(data.length);
        out.writeLong(arrived == null ? -1L : arrived.longValue());
        out.writeLong(now);
        out.write(k);
        out.write(source);
        out.write(entry);
        out.write(data);
    }

    private void emit(int group, Batch b) {
        output.collect(reuse.replace(Row.of(rep(group), b.out.getCopyOfBuffer())));
    }

    @Override
    public void onProcessingTime(long time) {
        timerAt = Long.MAX_VALUE;
        long next = Long.MAX_VALUE;
        for (Iterator<Map.Entry<Integer, Batch>> it = open.entrySet().iterator(); it.hasNext(); ) {
            Map.Entry<Integer, Batch> e = it.next();
            if (e.getValue().firstMs + maxMs <= time) {
                it.remove();
                emit(e.getKey(), e.getValue());
            } else {
                next = Math.min(next, e.getValue().firstMs + maxMs);
            }
        }
        if (next != Long.MAX_VALUE) {
            timerAt = next;
            getProcessingTimeService().registerTimer(next, this);
        }
    }

    private void flushAll() {
        for (Map.Entry<Integer, Batch> e : open.entrySet()) {
            emit(e.getKey(), e.getValue());
        }
        open.clear();
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        super.prepareSnapshotPreBarrier(checkpointId);
        flushAll();  // a batch never spans a checkpoint: nothing of it is in this operator's state
    }

    @Override
    public void finish() throws Exception {
        flushAll();
        super.finish();
    }
}

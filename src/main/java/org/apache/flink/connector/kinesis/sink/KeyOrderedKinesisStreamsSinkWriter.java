package org.apache.flink.connector.kinesis.sink;

import dev.homeflow.flink.KeyOrderedBatch;
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.Deque;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.function.Consumer;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.connector.base.sink.writer.AsyncSinkWriter;
import org.apache.flink.connector.base.sink.writer.BufferedRequestState;
import org.apache.flink.connector.base.sink.writer.ElementConverter;
import org.apache.flink.kinesis.shaded.software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;

/** See {@link KeyOrderedKinesisStreamsSink}. */
final class KeyOrderedKinesisStreamsSinkWriter<InputT> extends KinesisStreamsSinkWriter<InputT> {
    static final long DRAIN_TIMEOUT_MS = 10_000;
    // AsyncSinkWriter (flink-connector-base 1.20.3) exposes neither its buffer nor a way to send one
    // batch; both are reached by reflection, checked once when the class loads.
    private static final Field BUFFER;
    private static final Method SEND_ONE_BATCH;

    static {
        try {
            BUFFER = AsyncSinkWriter.class.getDeclaredField("bufferedRequestEntries");
            BUFFER.setAccessible(true);
            SEND_ONE_BATCH = AsyncSinkWriter.class.getDeclaredMethod("flush");
            SEND_ONE_BATCH.setAccessible(true);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final boolean aggregate;
    private volatile boolean destinationFailing;

    KeyOrderedKinesisStreamsSinkWriter(
            ElementConverter<InputT, PutRecordsRequestEntry> elementConverter,
            Sink.InitContext context,
            int maxBatchSize,
            int maxInFlightRequests,
            int maxBufferedRequests,
            long maxBatchSizeInBytes,
            long maxTimeInBufferMS,
            long maxRecordSizeInBytes,
            boolean failOnError,
            String streamName,
            String streamArn,
            Properties kinesisClientProperties,
            Collection<BufferedRequestState<PutRecordsRequestEntry>> states,
            boolean aggregate) {
        super(elementConverter, context, maxBatchSize, maxInFlightRequests, maxBufferedRequests,
                maxBatchSizeInBytes, maxTimeInBufferMS, maxRecordSizeInBytes, failOnError,
                streamName, streamArn, kinesisClientProperties, states);
        this.aggregate = aggregate;
    }

    /**
     * Before a checkpoint, writes out the buffer too, not only the requests in flight, so that the
     * checkpointed writer state is empty whenever the destination accepts records. Buffered entries
     * in state are redistributed round-robin when a job is restored with another parallelism: a
     * key's restored entries would sit in one subtask's writer while its new entries leave through
     * another and overtake them (measured: 33 per-key inversions in an upgrade drill p 1 -> 2 -> 1
     * -> 2 -> 1). The drain stops as soon as a whole request fails (the destination region is down:
     * its records stay in state, as with the stock writer, and the checkpoint is not held up) or
     * after DRAIN_TIMEOUT_MS.
     */
    @Override
    public void flush(boolean endOfInput) throws InterruptedException {
        super.flush(endOfInput);
        long deadline = System.currentTimeMillis() + DRAIN_TIMEOUT_MS;
        while (!endOfInput && !destinationFailing && buffered() > 0 && System.currentTimeMillis() < deadline) {
            sendNextBatch();
            super.flush(false);  // wait for it; failed entries return to the head of the buffer
        }
    }

    private int buffered() {
        try {
            return ((Deque<?>) BUFFER.get(this)).size();
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    private void sendNextBatch() throws InterruptedException {
        try {
            SEND_ONE_BATCH.invoke(this);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        } catch (InvocationTargetException e) {
            if (e.getCause() instanceof InterruptedException) {
                throw (InterruptedException) e.getCause();
            }
            throw new IllegalStateException(e.getCause());
        }
    }

    @Override
    protected void submitRequestEntries(
            List<PutRecordsRequestEntry> batch, Consumer<List<PutRecordsRequestEntry>> requestToRetry) {
        KeyOrderedBatch split = KeyOrderedBatch.of(batch, aggregate);
        List<PutRecordsRequestEntry> send = split.send();
        if (split.deferred().isEmpty() && send.size() == batch.size()) {
            super.submitRequestEntries(batch, failed -> {
                destinationFailing = !batch.isEmpty() && failed.size() == batch.size();
                requestToRetry.accept(failed);
            });
            return;
        }
        super.submitRequestEntries(send, failed -> {
            destinationFailing = failed.size() == send.size();
            requestToRetry.accept(split.retry(failed));
        });
    }
}

package org.apache.flink.connector.kinesis.sink;

import java.util.Collection;
import java.util.Collections;
import java.util.Properties;
import org.apache.flink.api.common.serialization.SerializationSchema;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.StatefulSink;
import org.apache.flink.connector.base.sink.writer.BufferedRequestState;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.kinesis.shaded.software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;

/**
 * A KinesisStreamsSink that keeps per-partition-key order when PutRecords partly fails.
 *
 * <p>The stock writer re-queues the failed entries of a batch at the head of its buffer, but the
 * entries that succeeded in the same batch are already written: if a batch holds k:1 and k:2 and
 * only k:1 fails, k:2 lands first. This sink (1) allows one request in flight and (2) sends at
 * most ONE entry per partition key in a request; later entries of a key in the same batch go back
 * to the head of the buffer with the failed ones, in their original order. A failed entry of a
 * key therefore always precedes that key's later entries. With `aggregate`, that one entry is
 * the key's consecutive entries of the batch packed into one KPL aggregated record (see
 * KeyOrderedKinesisStreamsSinkWriter#aggregateByKey), so a hot key is not held to one record per
 * round trip. Lives in the connector's package because the stock writer's constructor is
 * package-private.
 */
public final class KeyOrderedKinesisStreamsSink<InputT> extends KinesisStreamsSink<InputT> {
    private static final long serialVersionUID = 1L;
    private final boolean failOnError;
    private final String streamName;
    private final String streamArn;
    private final Properties clientProperties;
    private final boolean aggregate;

    public KeyOrderedKinesisStreamsSink(
            SerializationSchema<InputT> serializationSchema,
            PartitionKeyGenerator<InputT> partitionKeyGenerator,
            String streamName,
            Properties clientProperties,
            int maxBatchSize,
            int maxBufferedRequests,
            long maxTimeInBufferMs,
            boolean aggregate) {
        super(
                KinesisStreamsSinkElementConverter.<InputT>builder()
                        .setSerializationSchema(serializationSchema)
                        .setPartitionKeyGenerator(partitionKeyGenerator)
                        .build(),
                maxBatchSize,
                1, // one request in flight: a retried entry can never be overtaken
                maxBufferedRequests,
                // PutRecords takes 5 MiB; the headroom covers aggregation's few bytes per member
                5L * 1024 * 1024 - 64 * 1024,
                maxTimeInBufferMs,
                1024L * 1024,
                false,
                streamName,
                null,
                clientProperties);
        this.failOnError = false;
        this.streamName = streamName;
        this.streamArn = null;
        this.clientProperties = clientProperties;
        this.aggregate = aggregate;
    }

    /** The stock state serializer corrupts non-ASCII partition keys; see the class used. */
    @Override
    public SimpleVersionedSerializer<BufferedRequestState<PutRecordsRequestEntry>> getWriterStateSerializer() {
        return new Utf8KinesisStreamsStateSerializer();
    }

    @Override
    public StatefulSink.StatefulSinkWriter<InputT, BufferedRequestState<PutRecordsRequestEntry>> createWriter(
            Sink.InitContext context) {
        return restoreWriter(context, Collections.emptyList());
    }

    @Override
    public StatefulSink.StatefulSinkWriter<InputT, BufferedRequestState<PutRecordsRequestEntry>> restoreWriter(
            Sink.InitContext context, Collection<BufferedRequestState<PutRecordsRequestEntry>> recoveredState) {
        return new KeyOrderedKinesisStreamsSinkWriter<>(
                getElementConverter(), context, getMaxBatchSize(), getMaxInFlightRequests(),
                getMaxBufferedRequests(), getMaxBatchSizeInBytes(), getMaxTimeInBufferMS(),
                getMaxRecordSizeInBytes(), failOnError, streamName, streamArn, clientProperties,
                recoveredState, aggregate);
    }
}

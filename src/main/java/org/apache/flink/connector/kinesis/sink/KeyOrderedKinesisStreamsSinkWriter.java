package org.apache.flink.connector.kinesis.sink;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.function.Consumer;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.connector.base.sink.writer.BufferedRequestState;
import org.apache.flink.connector.base.sink.writer.ElementConverter;
import org.apache.flink.kinesis.shaded.software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;

/** See {@link KeyOrderedKinesisStreamsSink}. */
final class KeyOrderedKinesisStreamsSinkWriter<InputT> extends KinesisStreamsSinkWriter<InputT> {

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
            Collection<BufferedRequestState<PutRecordsRequestEntry>> states) {
        super(elementConverter, context, maxBatchSize, maxInFlightRequests, maxBufferedRequests,
                maxBatchSizeInBytes, maxTimeInBufferMS, maxRecordSizeInBytes, failOnError,
                streamName, streamArn, kinesisClientProperties, states);
    }

    @Override
    protected void submitRequestEntries(
            List<PutRecordsRequestEntry> batch, Consumer<List<PutRecordsRequestEntry>> requestToRetry) {
        List<PutRecordsRequestEntry> send = new ArrayList<>(batch.size());
        List<PutRecordsRequestEntry> deferred = new ArrayList<>();
        Set<String> keys = new HashSet<>();
        for (PutRecordsRequestEntry e : batch) {
            (keys.add(e.partitionKey()) ? send : deferred).add(e);
        }
        if (deferred.isEmpty()) {
            super.submitRequestEntries(batch, requestToRetry);
            return;
        }
        Map<PutRecordsRequestEntry, Integer> position = new IdentityHashMap<>();
        for (int i = 0; i < batch.size(); i++) {
            position.put(batch.get(i), i);
        }
        super.submitRequestEntries(send, failed -> {
            // Failed and deferred entries go back to the head of the buffer in batch order, so a
            // key's failed entry stays ahead of its later entries.
            List<PutRecordsRequestEntry> retry = new ArrayList<>(failed.size() + deferred.size());
            retry.addAll(failed);
            retry.addAll(deferred);
            retry.sort((a, b) -> Integer.compare(position.get(a), position.get(b)));
            requestToRetry.accept(retry);
        });
    }
}

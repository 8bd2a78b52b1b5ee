package dev.homeflow.flink;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.flink.kinesis.shaded.software.amazon.awssdk.core.SdkBytes;
import org.apache.flink.kinesis.shaded.software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;

/**
 * How the key-ordered forward sink turns a batch into one PutRecords request: at most ONE entry
 * per partition key is sent; the rest is deferred to the head of the buffer. A Kinesis record is
 * written or rejected whole, so a key's failed entry always precedes its later entries.
 *
 * <p>With {@code aggregate}, a key's one entry is its consecutive entries of the batch packed
 * into a KPL aggregated record (members in batch order; an entry that is already an aggregate,
 * i.e. a retried one, contributes its members), so a hot key moves a request's worth of records
 * per round trip instead of one, and pays one PUT payload unit per 25 KB instead of per record.
 * What does not fit the 1 MiB record limit is deferred, and with it every later entry of that
 * key. A key with a single entry is sent unchanged (a plain record stays plain).
 */
public final class KeyOrderedBatch {
    /** A Kinesis record's data and partition key together may not exceed 1 MiB. */
    public static final long MAX_RECORD_BYTES = 1024L * 1024;

    private final List<PutRecordsRequestEntry> send = new ArrayList<>();
    private final List<PutRecordsRequestEntry> deferred = new ArrayList<>();
    private final Map<PutRecordsRequestEntry, Integer> position = new IdentityHashMap<>();

    private KeyOrderedBatch() {}

    public static KeyOrderedBatch of(List<PutRecordsRequestEntry> batch, boolean aggregate) {
        KeyOrderedBatch b = new KeyOrderedBatch();
        if (aggregate) {
            b.aggregateByKey(batch);
        } else {
            Set<String> keys = new HashSet<>();
            for (int i = 0; i < batch.size(); i++) {
                PutRecordsRequestEntry e = batch.get(i);
                b.position.put(e, i);
                (keys.add(e.partitionKey()) ? b.send : b.deferred).add(e);
            }
        }
        return b;
    }

    /** The entries of the request, in batch order. */
    public List<PutRecordsRequestEntry> send() {
        return Collections.unmodifiableList(send);
    }

    public List<PutRecordsRequestEntry> deferred() {
        return Collections.unmodifiableList(deferred);
    }

    /** What goes back to the head of the buffer: the failed sent entries and the deferred ones, in batch order. */
    public List<PutRecordsRequestEntry> retry(List<PutRecordsRequestEntry> failed) {
        List<PutRecordsRequestEntry> retry = new ArrayList<>(failed.size() + deferred.size());
        retry.addAll(failed);
        retry.addAll(deferred);
        retry.sort((a, b) -> Integer.compare(position.get(a), position.get(b)));
        return retry;
    }

    private void aggregateByKey(List<PutRecordsRequestEntry> batch) {
        Map<String, Group> groups = new LinkedHashMap<>();
        for (int i = 0; i < batch.size(); i++) {
            PutRecordsRequestEntry e = batch.get(i);
            position.put(e, i);
            final int at = i;
            Group g = groups.computeIfAbsent(e.partitionKey(), k -> new Group(k, at));
            if (g.closed || !g.add(e)) {
                g.closed = true;
                deferred.add(e);
            }
        }
        for (Group g : groups.values()) {
            PutRecordsRequestEntry out = g.entry();
            position.put(out, g.first);
            send.add(out);
        }
    }

    private static final class Group {
        final String key;
        final int first;
        final long limit;
        final List<PutRecordsRequestEntry> entries = new ArrayList<>();
        final List<byte[]> members = new ArrayList<>();
        long membersSize;
        boolean closed;

        Group(String key, int first) {
            this.key = key;
            this.first = first;
            this.limit = MAX_RECORD_BYTES - key.getBytes(StandardCharsets.UTF_8).length;
        }

        boolean add(PutRecordsRequestEntry e) {
            byte[] data = e.data().asByteArrayUnsafe();
            List<byte[]> parts = KplAggregate.decode(data);
            if (parts == null) {
                parts = List.of(data);
            }
            long add = 0;
            for (byte[] p : parts) {
                add += KplAggregate.memberSize(p.length);
            }
            // The first entry always fits: alone it was within the record limit (as itself or, if it
            // was an aggregate, as the same aggregate).
            if (!entries.isEmpty() && KplAggregate.size(key, membersSize + add) > limit) {
                return false;
            }
            entries.add(e);
            members.addAll(parts);
            membersSize += add;
            return true;
        }

        PutRecordsRequestEntry entry() {
            if (entries.size() == 1) {
                return entries.get(0);
            }
            return PutRecordsRequestEntry.builder()
                    .partitionKey(key)
                    .data(SdkBytes.fromByteArrayUnsafe(KplAggregate.encode(key, members)))
                    .build();
        }
    }
}

package dev.homeflow.flink;

import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.iceberg.ExpireSnapshots;
import org.apache.iceberg.Snapshot;
import org.apache.iceberg.Table;
import org.apache.iceberg.aws.AwsClientFactories;
import org.apache.iceberg.flink.sink.SinkUtil;
import org.apache.iceberg.relocated.com.google.common.collect.Lists;
import org.apache.iceberg.shaded.com.fasterxml.jackson.databind.JsonNode;
import org.apache.iceberg.util.JsonUtil;
import org.apache.iceberg.util.SnapshotUtil;
import software.amazon.awssdk.services.dynamodb.DynamoDbClient;
import software.amazon.awssdk.services.dynamodb.model.AttributeValue;
import software.amazon.awssdk.services.dynamodb.model.GetItemRequest;
import software.amazon.awssdk.services.dynamodb.model.ResourceNotFoundException;

/**
 * Snapshot expiry with {@code homeflow maintain}'s rule for Flink (udfs/retention.py): Iceberg's
 * own {@code ExpireSnapshots}, with its age cutoff lowered so that it keeps
 * <ul>
 *   <li>every snapshot younger than the age (a reader may be scanning it) and the last N;</li>
 *   <li>the chain from the current snapshot down to the newest snapshot of the newest Flink job,
 *       and of every Flink job that committed within the age: a restored committer finds its last
 *       checkpoint by walking parents from the current snapshot and stops at the first missing
 *       one, so a compaction on top must not cut it off (it would commit its checkpoint again);</li>
 *   <li>the chain down to the snapshot the home region's published lake view names.</li>
 * </ul>
 * On a linear branch "keep everything from the head down to depth D" is "expire older than the
 * oldest timestamp in it", which is how Iceberg's branch retention walks (it keeps ancestors while
 * they are among the last N or not older than the cutoff). Files only expired snapshots reached
 * are deleted by Iceberg's incremental clean-up.
 */
public final class SnapshotExpiry {
    private SnapshotExpiry() {}

    /**
     * The cutoff for Iceberg's {@code expireOlderThan}, from the chain of the current snapshot
     * (index 0) to its oldest ancestor: timestamps and Flink job ids (null: not a Flink commit).
     * {@code pinnedDepth}: the chain index of the published view's snapshot, or -1.
     */
    public static long cutoff(long[] timestamps, String[] jobIds, int pinnedDepth, long nowMs, long olderThanMs) {
        long age = nowMs - olderThanMs;
        int depth = pinnedDepth;
        Set<String> seen = new HashSet<>();
        for (int d = 0; d < timestamps.length; d++) {
            if (timestamps[d] >= age) {
                depth = Math.max(depth, d);
            }
            String job = jobIds[d];
            if (job != null && seen.add(job) && (seen.size() == 1 || timestamps[d] >= age)) {
                depth = Math.max(depth, d); // the newest snapshot of this job: its committer resumes here
            }
        }
        long cutoff = age;
        for (int d = 0; d <= depth && d < timestamps.length; d++) {
            cutoff = Math.min(cutoff, timestamps[d]);
        }
        return cutoff;
    }

    /**
     * Expires what the rule allows and deletes the files only expired snapshots reached; the number
     * of snapshots expired (as planned: a commit retried over a concurrent append plans again).
     */
    static int expire(Table table, long olderThanMs, int retainLast, Long pinnedSnapshotId) {
        Snapshot current = table.currentSnapshot();
        if (current == null) {
            return 0;
        }
        List<Snapshot> chain = Lists.newArrayList(SnapshotUtil.ancestorsOf(current.snapshotId(), table::snapshot));
        long[] ts = new long[chain.size()];
        String[] jobs = new String[chain.size()];
        int pinned = -1;
        for (int d = 0; d < ts.length; d++) {
            Snapshot s = chain.get(d);
            ts[d] = s.timestampMillis();
            jobs[d] = s.summary() == null ? null : s.summary().get(SinkUtil.FLINK_JOB_ID);
            if (pinnedSnapshotId != null && s.snapshotId() == pinnedSnapshotId) {
                pinned = d;
            }
        }
        long cutoff = cutoff(ts, jobs, pinned, System.currentTimeMillis(), olderThanMs);
        ExpireSnapshots expiry = table.expireSnapshots().expireOlderThan(cutoff).retainLast(retainLast)
                .cleanExpiredFiles(true);
        // apply() first: committing an expiry that removes nothing would still write a metadata file.
        int planned = expiry.apply().size();
        if (planned > 0) {
            expiry.commit();
        }
        return planned;
    }

    /** Reads the snapshot of {@code home}'s table that the home region's published lake view names. */
    static final class ViewPin implements AutoCloseable {
        private final DynamoDbClient ddb;
        private final String pointerTable;
        private final String viewKey;
        private final String home;

        ViewPin(Map<String, String> catalogProperties, String pointerTable, String viewKey, String home) {
            this.ddb = AwsClientFactories.from(catalogProperties).dynamo();
            this.pointerTable = pointerTable;
            this.viewKey = viewKey;
            this.home = home;
        }

        /** Null when nothing is published (or the region has no read-pointer table). */
        Long snapshotId() throws Exception {
            Map<String, AttributeValue> item;
            try {
                item = ddb.getItem(GetItemRequest.builder().tableName(pointerTable)
                        .key(Map.of("table", AttributeValue.fromS(viewKey))).consistentRead(true).build()).item();
            } catch (ResourceNotFoundException e) {
                return null;
            }
            if (item == null || !item.containsKey("tables")) {
                return null;
            }
            JsonNode t = JsonUtil.mapper().readTree(item.get("tables").s()).get(home);
            return t == null || t.get("snapshot_id") == null ? null : t.get("snapshot_id").asLong();
        }

        @Override
        public void close() {
            ddb.close();
        }
    }
}

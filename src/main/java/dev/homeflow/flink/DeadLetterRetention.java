package dev.homeflow.flink;

import java.io.IOException;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.metrics.Counter;
import org.apache.iceberg.FileScanTask;
import org.apache.iceberg.Table;
import org.apache.iceberg.expressions.Expression;
import org.apache.iceberg.expressions.Expressions;
import org.apache.iceberg.flink.TableLoader;
import org.apache.iceberg.io.CloseableIterable;

/**
 * Retention of the dead-letter archive (homeflow.dead_letters_&lt;region&gt;): on each tick, deletes
 * the days older than {@code retentionMs}, whole partitions only. The table is partitioned by the
 * day of {@code at}, and the cut-off is a UTC day boundary, so every data file is either wholly
 * older (deleted by a metadata-only DeleteFiles) or kept; no row is rewritten. A commit happens
 * only when some file is that old. Then expires the archive's old snapshots with the home table's
 * rule and settings ({@link SnapshotExpiry}): every checkpoint that carried a dead letter, and every
 * tenth empty one, adds a snapshot. Runs off the task thread like the home table's maintenance.
 */
public final class DeadLetterRetention extends OffThreadTickFunction {
    private static final long serialVersionUID = 1L;
    private static final long DAY_MS = 86_400_000L;

    private final long retentionMs;
    private final long expireOlderThanMs;
    private final int expireRetainLast;
    private transient Counter expiredFiles;
    private transient Counter expiredSnapshots;

    /** {@code retentionMs} 0: keep every day; {@code expireOlderThanMs} 0: keep every snapshot. */
    public DeadLetterRetention(TableLoader loader, long retentionMs, long expireOlderThanMs, int expireRetainLast) {
        super(loader, "dead-letter-maintenance", "homeflow_dead_letter_maintenance_errors");
        this.retentionMs = retentionMs;
        this.expireOlderThanMs = expireOlderThanMs;
        this.expireRetainLast = expireRetainLast;
    }

    @Override
    public void open(OpenContext openContext) throws Exception {
        super.open(openContext);
        expiredFiles = metrics().counter("homeflow_dead_letters_expired_files");
        expiredSnapshots = metrics().counter("homeflow_dead_letters_expired_snapshots");
    }

    /** The first instant kept: the start (UTC) of the day {@code retentionMs} before {@code nowMs}. */
    public static long cutoffMs(long nowMs, long retentionMs) {
        long c = nowMs - retentionMs;
        return c - Math.floorMod(c, DAY_MS);
    }

    /** Deletes the data files whose rows are all before {@code cutoffMs} (a day boundary); returns how many. */
    public static int deleteBefore(Table table, long cutoffMs) throws IOException {
        if (Math.floorMod(cutoffMs, DAY_MS) != 0) {
            throw new IllegalArgumentException("cut-off " + cutoffMs + " is not a UTC day boundary");
        }
        if (table.currentSnapshot() == null) {
            return 0;
        }
        Expression older = Expressions.lessThan("at", cutoffMs * 1000L);
        int n = 0;
        try (CloseableIterable<FileScanTask> tasks = table.newScan().filter(older).planFiles()) {
            for (FileScanTask ignored : tasks) {
                n++;
            }
        }
        if (n > 0) {
            table.newDelete().deleteFromRowFilter(older).commit();
        }
        return n;
    }

    @Override
    protected void work(Table table) throws Exception {
        if (retentionMs > 0) {
            expiredFiles.inc(deleteBefore(table, cutoffMs(System.currentTimeMillis(), retentionMs)));
        }
        if (expireOlderThanMs > 0) {
            table.refresh();
            expiredSnapshots.inc(SnapshotExpiry.expire(table, expireOlderThanMs, expireRetainLast, null));
        }
    }
}

package dev.homeflow.flink;

import java.io.IOException;
import java.time.Duration;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.iceberg.flink.TableLoader;
import org.apache.iceberg.flink.maintenance.api.RewriteDataFiles;
import org.apache.iceberg.flink.maintenance.api.TableMaintenance;
import org.apache.iceberg.flink.maintenance.api.TriggerLockFactory;
import org.apache.iceberg.flink.maintenance.operator.MonitorSource;
import org.apache.iceberg.flink.maintenance.operator.TableChange;

/**
 * Compaction inside the regional job: Iceberg's Flink table maintenance watches the home table
 * and, every {@code commits} commits (but not more often than {@code minInterval}), rewrites its
 * small data files into files of up to {@code targetBytes}. A rewrite is a replace snapshot on top
 * of the committer's appends: no snapshot is expired, so the committer's restore still finds its
 * last committed checkpoint by walking the snapshot's ancestors.
 *
 * <p>The table is watched every {@code pollMs} (the checkpoint interval), not every
 * {@code minInterval}: {@code TableMaintenance.forTable} polls at the trigger's rate limit, and a
 * poll reads the manifest list and new manifests of every snapshot since the last one on the
 * source's task thread. At one commit per second and a 60 s limit that was 60 snapshots in one go,
 * 4-6 s on the sandbox, during which that task could not take a checkpoint barrier: every
 * checkpoint of the job, and so every home commit, waited (bench_freshness.py showed it). Polled
 * at the commit rate, a poll reads about one snapshot.
 */
public final class LakeMaintenance {
    private static final String UID_SUFFIX = "lake-maintenance";
    private static final long MAX_READ_BACK = 100; // TableMaintenance's default

    private LakeMaintenance() {
    }

    public static void append(StreamExecutionEnvironment env, TableLoader loader, TriggerLockFactory lock,
                              int commits, long minIntervalMs, long targetBytes, int parallelism, long pollMs)
            throws IOException {
        String table;
        try (TableLoader l = loader.clone()) {
            l.open();
            table = l.loadTable().name();
        }
        // The source TableMaintenance.forTable would build, with its uid (savepoints restore it),
        // but its own poll rate.
        DataStream<TableChange> changes = env.fromSource(
                        new MonitorSource(loader, RateLimiterStrategy.perSecond(1000.0 / pollMs), MAX_READ_BACK),
                        WatermarkStrategy.noWatermarks(), "Monitor source for " + table)
                .uid("Monitor source for " + UID_SUFFIX)
                .forceNonParallel();
        TableMaintenance.forChangeStream(changes, loader, lock)
                .uidSuffix(UID_SUFFIX)
                .rateLimit(Duration.ofMillis(minIntervalMs))
                .lockCheckDelay(Duration.ofSeconds(5))
                .parallelism(parallelism)
                .add(new RewriteDataFiles.Builder()
                        .scheduleOnCommitCount(commits)
                        .targetFileSizeBytes(targetBytes)
                        .partialProgressEnabled(false))
                .append();
    }
}

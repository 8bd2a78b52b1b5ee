package dev.homeflow.flink;

import java.io.IOException;
import java.time.Duration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.iceberg.flink.TableLoader;
import org.apache.iceberg.flink.maintenance.api.RewriteDataFiles;
import org.apache.iceberg.flink.maintenance.api.TableMaintenance;
import org.apache.iceberg.flink.maintenance.api.TriggerLockFactory;

/**
 * Compaction inside the regional job: Iceberg's Flink table maintenance watches the home table
 * and, every {@code commits} commits (but not more often than {@code minInterval}), rewrites its
 * small data files into files of up to {@code targetBytes}. A rewrite is a replace snapshot on top
 * of the committer's appends: no snapshot is expired, so the committer's restore still finds its
 * last committed checkpoint by walking the snapshot's ancestors.
 */
public final class LakeMaintenance {
    private LakeMaintenance() {
    }

    public static void append(StreamExecutionEnvironment env, TableLoader loader, TriggerLockFactory lock,
                              int commits, long minIntervalMs, long targetBytes, int parallelism) throws IOException {
        TableMaintenance.forTable(env, loader, lock)
                .uidSuffix("lake-maintenance")
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

package dev.homeflow.flink;

import java.util.HashMap;
import java.util.Map;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;
import org.apache.iceberg.DataFile;
import org.apache.iceberg.ManifestFile;
import org.apache.iceberg.ManifestFiles;
import org.apache.iceberg.ManifestReader;
import org.apache.iceberg.Snapshot;
import org.apache.iceberg.Table;
import org.apache.iceberg.flink.TableLoader;

/**
 * On every tick, reads the region's home table through the catalog and publishes its shape as
 * gauges under {@code kinesisanalytics} (the group Managed Flink exports to CloudWatch): snapshots,
 * data files, small-file ratio, average file size, the files and bytes of the last commit that added data, and how long
 * ago it landed. Manifests are immutable and a fast append adds one, so each is read once. In Java
 * (not a Python operator) so the packaged job needs no PyIceberg on the service. Emits nothing.
 *
 * <p>The reading runs on a thread of its own ({@link OffThreadTickFunction}): on the task thread,
 * after a compaction the new manifests took 3.7-5.7 s to read on the sandbox, and the checkpoint
 * waited.
 */
public final class LakeStatsFunction extends OffThreadTickFunction {
    private static final long serialVersionUID = 1L;
    private static final int MAX_WALK = 1000;

    private final long smallFileBytes;

    private transient Map<String, long[]> manifests; // path -> {files, small files, bytes}
    private transient volatile long snapshots;
    private transient volatile long dataFiles;
    private transient volatile long smallFiles;
    private transient volatile long dataBytes;
    private transient volatile long lastCommitFiles;
    private transient volatile long lastCommitBytes;
    private transient volatile long lastCommitMs;

    public LakeStatsFunction(TableLoader loader, long smallFileBytes) {
        super(loader, "lake-stats", "homeflow_lake_stats_errors");
        this.smallFileBytes = smallFileBytes;
    }

    @Override
    public void open(OpenContext openContext) throws Exception {
        super.open(openContext);
        manifests = new HashMap<>();
        MetricGroup g = metrics();
        g.gauge("homeflow_lake_snapshots", (Gauge<Long>) () -> snapshots);
        g.gauge("homeflow_lake_data_files", (Gauge<Long>) () -> dataFiles);
        g.gauge("homeflow_lake_small_file_permille", (Gauge<Long>) () -> dataFiles == 0 ? 0 : smallFiles * 1000 / dataFiles);
        g.gauge("homeflow_lake_avg_file_bytes", (Gauge<Long>) () -> dataFiles == 0 ? 0 : dataBytes / dataFiles);
        g.gauge("homeflow_lake_last_commit_files", (Gauge<Long>) () -> lastCommitFiles);
        g.gauge("homeflow_lake_last_commit_bytes", (Gauge<Long>) () -> lastCommitBytes);
        g.gauge("homeflow_lake_commit_age_ms",
                (Gauge<Long>) () -> lastCommitMs == 0 ? -1 : System.currentTimeMillis() - lastCommitMs);
    }

    @Override
    protected void work(Table table) throws Exception {
        Snapshot current = table.currentSnapshot();
        long n = 0;
        for (Snapshot ignored : table.snapshots()) {
            n++;
        }
        snapshots = n;
        if (current == null) {
            return;
        }
        Map<String, long[]> next = new HashMap<>();
        long files = 0, small = 0, bytes = 0;
        for (ManifestFile m : current.dataManifests(table.io())) {
            long[] v = manifests.get(m.path());
            if (v == null) {
                v = new long[3];
                try (ManifestReader<DataFile> r = ManifestFiles.read(m, table.io())) {
                    for (DataFile f : r) { // live entries only
                        v[0]++;
                        v[1] += f.fileSizeInBytes() < smallFileBytes ? 1 : 0;
                        v[2] += f.fileSizeInBytes();
                    }
                }
            }
            next.put(m.path(), v);
            files += v[0];
            small += v[1];
            bytes += v[2];
        }
        manifests = next;
        dataFiles = files;
        smallFiles = small;
        dataBytes = bytes;
        lastCommitMs = current.timestampMillis();
        // Files and bytes of the newest commit that added data: Flink's committer also commits
        // empty snapshots (every flink.max-continuous-empty-commits checkpoints without data).
        Snapshot s = current;
        for (int i = 0; s != null && i < MAX_WALK; i++) {
            long added = Long.parseLong(s.summary().getOrDefault("added-data-files", "0"));
            if (added > 0) {
                lastCommitFiles = added;
                lastCommitBytes = Long.parseLong(s.summary().getOrDefault("added-files-size", "0"));
                break;
            }
            s = s.parentId() == null ? null : table.snapshot(s.parentId());
        }
    }
}

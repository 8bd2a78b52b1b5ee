package dev.homeflow.flink;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.data.RowData;
import org.apache.iceberg.BaseCombinedScanTask;
import org.apache.iceberg.DataFile;
import org.apache.iceberg.DataOperations;
import org.apache.iceberg.FileFormat;
import org.apache.iceberg.FileScanTask;
import org.apache.iceberg.Snapshot;
import org.apache.iceberg.Table;
import org.apache.iceberg.TableProperties;
import org.apache.iceberg.actions.BinPackRewriteFilePlanner;
import org.apache.iceberg.actions.FileRewritePlan;
import org.apache.iceberg.actions.RewriteDataFiles;
import org.apache.iceberg.actions.RewriteDataFilesCommitManager;
import org.apache.iceberg.actions.RewriteFileGroup;
import org.apache.iceberg.expressions.Expressions;
import org.apache.iceberg.flink.FlinkSchemaUtil;
import org.apache.iceberg.flink.TableLoader;
import org.apache.iceberg.flink.sink.RowDataTaskWriterFactory;
import org.apache.iceberg.flink.source.DataIterator;
import org.apache.iceberg.flink.source.RowDataFileScanTaskReader;
import org.apache.iceberg.io.CloseableIterator;
import org.apache.iceberg.io.TaskWriter;
import org.apache.iceberg.relocated.com.google.common.collect.Iterables;
import org.apache.iceberg.util.PropertyUtil;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Maintenance of the region's home table inside the job, off the checkpoint path: compaction and
 * snapshot expiry, one after the other on a thread of its own ({@link OffThreadTickFunction}).
 *
 * <p>Compaction: every {@code commits} commits that added data (counted back from the table's
 * current snapshot to its last rewrite), and not more often than {@code minIntervalMs}, it bin-packs
 * each partition's small files into files of up to {@code targetBytes} with Iceberg's own planner,
 * reader, writer and rewrite commit (the pieces of Iceberg's Flink {@code RewriteDataFiles}
 * maintenance task). Why not Iceberg's {@code TableMaintenance} operators, which this replaced: their
 * planner, rewrite runner and rewrite committer each do their work on their task thread, and a
 * checkpoint barrier waits behind each in turn. On the sandbox one rewrite held a checkpoint, and so
 * every home commit, for 8.6-14.7 s (bench_freshness.py, per-task start delay).
 *
 * <p>Expiry ({@link SnapshotExpiry}): at most every {@code expireIntervalMs}, the snapshots older
 * than {@code expireOlderThanMs} go, except those a restored Flink committer or the published lake
 * view still needs; without it the metadata file, which every commit rewrites, grows by a snapshot
 * per commit.
 *
 * <p>No Flink state: the compaction count comes from the table, so a restored job neither loses nor
 * repeats it. A rewrite is a replace snapshot committed through the catalog's conditional write,
 * validated from the snapshot it was planned on; it interleaves with the committer's appends like
 * any other writer, and one that loses (its input files gone, a job killed mid-way) leaves only
 * unreferenced files, which {@code homeflow maintain} removes as orphans. Only the home region's job
 * writes its table, so no lock is taken. The operator's uid stays {@code lake-compaction}, the
 * name it had before expiry joined it, so savepoints taken since then restore.
 */
public final class LakeMaintenanceFunction extends OffThreadTickFunction {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(LakeMaintenanceFunction.class);
    // Enough for the trigger: the walk stops at the last rewrite or after `commits` data commits.
    private static final int MAX_WALK = 100_000;

    private final int commits;
    private final long minIntervalMs;
    private final long targetBytes;
    private final long expireOlderThanMs;
    private final int expireRetainLast;
    private final long expireIntervalMs;
    private final Map<String, String> catalogProperties;
    private final String pointerTable;
    private final String viewKey;
    private final String home;

    private transient volatile long lastAttemptMs;
    private transient long lastPlannedSnapshotId;
    private transient int attempt;
    private transient int subtask;
    private transient Counter rewrites;
    private transient Counter rewrittenFiles;
    private transient volatile long lastRewriteMs;
    private transient volatile long lastExpiryMs;
    private transient Counter expiredSnapshots;
    private transient SnapshotExpiry.ViewPin viewPin;

    /**
     * {@code commits} 0: no compaction; {@code expireOlderThanMs} 0: no expiry. The catalog's
     * properties reach DynamoDB the way the catalog does, to read {@code home}'s published lake
     * view, item {@code viewKey} of {@code pointerTable}.
     */
    public LakeMaintenanceFunction(TableLoader loader, int commits, long minIntervalMs, long targetBytes,
                                   long expireOlderThanMs, int expireRetainLast, long expireIntervalMs,
                                   Map<String, String> catalogProperties, String pointerTable, String viewKey,
                                   String home) {
        // Errors counted under the compaction metric's old name: dashboards keep working.
        super(loader, "lake-maintenance", "homeflow_lake_rewrite_errors");
        this.commits = commits;
        this.minIntervalMs = minIntervalMs;
        this.targetBytes = targetBytes;
        this.expireOlderThanMs = expireOlderThanMs;
        this.expireRetainLast = expireRetainLast;
        this.expireIntervalMs = expireIntervalMs;
        this.catalogProperties = new HashMap<>(catalogProperties);
        this.pointerTable = pointerTable;
        this.viewKey = viewKey;
        this.home = home;
    }

    @Override
    public void open(OpenContext openContext) throws Exception {
        super.open(openContext);
        MetricGroup g = metrics();
        rewrites = g.counter("homeflow_lake_rewrites");
        rewrittenFiles = g.counter("homeflow_lake_rewritten_files");
        g.gauge("homeflow_lake_last_rewrite_ms", (Gauge<Long>) () -> lastRewriteMs);
        expiredSnapshots = g.counter("homeflow_lake_expired_snapshots");
        lastPlannedSnapshotId = -1;
        // The first expiry waits one interval: a job restored in a loop does not expire on every start.
        lastExpiryMs = System.currentTimeMillis();
        subtask = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
    }

    private boolean compactionDue(long now) {
        return commits > 0 && now - lastAttemptMs >= minIntervalMs;
    }

    private boolean expiryDue(long now) {
        return expireOlderThanMs > 0 && now - lastExpiryMs >= expireIntervalMs;
    }

    @Override
    protected boolean due() {
        long now = System.currentTimeMillis();
        return compactionDue(now) || expiryDue(now);
    }

    @Override
    protected void work(Table table) throws Exception {
        Snapshot current = table.currentSnapshot();
        if (current != null && compactionDue(System.currentTimeMillis())
                && dataCommitsSinceRewrite(table, current) >= commits) {
            lastAttemptMs = System.currentTimeMillis();
            lastPlannedSnapshotId = current.snapshotId();
            rewrite(table, current); // its commit makes the table refresh on next use
        }
        if (expiryDue(System.currentTimeMillis())) {
            lastExpiryMs = System.currentTimeMillis();
            expire(table);
        }
    }

    private void expire(Table table) throws Exception {
        long t0 = System.currentTimeMillis();
        if (viewPin == null) {
            viewPin = new SnapshotExpiry.ViewPin(catalogProperties, pointerTable, viewKey, home);
        }
        Long pinned = viewPin.snapshotId();
        int expired = SnapshotExpiry.expire(table, expireOlderThanMs, expireRetainLast, pinned);
        if (expired > 0) {
            expiredSnapshots.inc(expired);
            LOG.info("expiry of {}: {} snapshots expired, {} kept (view pins {}); {} ms", table.name(), expired,
                    Iterables.size(table.snapshots()), pinned, System.currentTimeMillis() - t0);
        }
    }

    @Override
    public void close() throws Exception {
        super.close();
        if (viewPin != null) {
            viewPin.close();
        }
    }

    /** Commits that added data files since the last rewrite (or since the last plan that found nothing). */
    private int dataCommitsSinceRewrite(Table table, Snapshot current) {
        int n = 0;
        Snapshot s = current;
        for (int i = 0; s != null && i < MAX_WALK && n < commits; i++) {
            if (DataOperations.REPLACE.equals(s.operation()) || s.snapshotId() == lastPlannedSnapshotId) {
                break;
            }
            if (Long.parseLong(s.summary().getOrDefault("added-data-files", "0")) > 0) {
                n++;
            }
            s = s.parentId() == null ? null : table.snapshot(s.parentId());
        }
        return n;
    }

    private void rewrite(Table table, Snapshot base) throws Exception {
        long t0 = System.currentTimeMillis();
        BinPackRewriteFilePlanner planner = new BinPackRewriteFilePlanner(
                table, Expressions.alwaysTrue(), base.snapshotId(), false);
        Map<String, String> options = new HashMap<>();
        options.put(BinPackRewriteFilePlanner.TARGET_FILE_SIZE_BYTES, Long.toString(targetBytes));
        // The trigger already decided that enough has been committed; any partition with two
        // small files is worth a rewrite.
        options.put(BinPackRewriteFilePlanner.MIN_INPUT_FILES, "2");
        planner.init(options);
        FileRewritePlan<RewriteDataFiles.FileGroupInfo, FileScanTask, DataFile, RewriteFileGroup> plan = planner.plan();
        List<RewriteFileGroup> groups = new ArrayList<>();
        try (CloseableIterator<RewriteFileGroup> it = plan.groups().iterator()) {
            it.forEachRemaining(groups::add);
        }
        long t1 = System.currentTimeMillis();
        if (groups.isEmpty()) {
            LOG.info("compaction of {}: nothing to rewrite at snapshot {} (planned in {} ms)",
                    table.name(), base.snapshotId(), t1 - t0);
            return;
        }
        int in = 0, out = 0;
        for (RewriteFileGroup group : groups) {
            group.setOutputFiles(write(table, group));
            in += group.rewrittenFiles().size();
            out += group.addedFiles().size();
        }
        long t2 = System.currentTimeMillis();
        new RewriteDataFilesCommitManager(table, base.snapshotId()).commitFileGroups(new HashSet<>(groups));
        long t3 = System.currentTimeMillis();
        rewrites.inc();
        rewrittenFiles.inc(in);
        lastRewriteMs = t3 - t0;
        LOG.info("compaction of {}: {} files into {} in {} group(s) at snapshot {}; plan {} ms, rewrite {} ms, "
                        + "commit {} ms", table.name(), in, out, groups.size(), base.snapshotId(), t1 - t0, t2 - t1,
                t3 - t2);
    }

    private Set<DataFile> write(Table table, RewriteFileGroup group) throws Exception {
        String format = PropertyUtil.propertyAsString(table.properties(), TableProperties.DEFAULT_FILE_FORMAT,
                TableProperties.DEFAULT_FILE_FORMAT_DEFAULT);
        RowDataTaskWriterFactory factory = new RowDataTaskWriterFactory(table, FlinkSchemaUtil.convert(table.schema()),
                group.inputSplitSize(), FileFormat.fromString(format), table.properties(), null, false);
        // File names carry (task, attempt) and a per-factory uuid; the attempt only tells rewrites apart in listings.
        factory.initialize(subtask, ++attempt);
        TaskWriter<RowData> writer = factory.create();
        RowDataFileScanTaskReader reader = new RowDataFileScanTaskReader(table.schema(), table.schema(),
                PropertyUtil.propertyAsString(table.properties(), TableProperties.DEFAULT_NAME_MAPPING, null), false,
                Collections.emptyList());
        try (DataIterator<RowData> rows = new DataIterator<>(reader, new BaseCombinedScanTask(group.fileScanTasks()),
                table.io(), table.encryption())) {
            while (rows.hasNext()) {
                writer.write(rows.next());
            }
            return new HashSet<>(List.of(writer.dataFiles()));
        } catch (Exception e) {
            writer.abort(); // deletes what it wrote
            throw e;
        } finally {
            writer.close();
        }
    }
}

package dev.homeflow.flink;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.iceberg.Table;
import org.apache.iceberg.flink.TableLoader;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An operator driven by ticks that works on the region's home table on a thread of its own: a
 * tick only starts {@link #work(Table)} on the freshly refreshed table, or does nothing while the
 * last run is still going. Work on the task thread would hold back that task's checkpoint barrier,
 * and so every checkpoint and home commit of the job (bench_freshness.py's per-task start delay
 * showed it for lake stats and compaction). A failed run counts an error and never fails the job:
 * the next tick runs again. Emits nothing. The thread gets the job jar's class loader: classes it
 * loads later come from there.
 */
abstract class OffThreadTickFunction extends ProcessFunction<Long, Long> {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(OffThreadTickFunction.class);
    /** The metric group Managed Flink exports to CloudWatch. */
    private static final String GROUP = "kinesisanalytics";

    private final TableLoader loader;
    private final String threadName;
    private final String errorCounter;

    private transient Table table;
    private transient Counter errors;
    private transient ExecutorService worker;
    private transient AtomicBoolean running;

    OffThreadTickFunction(TableLoader loader, String threadName, String errorCounter) {
        this.loader = loader;
        this.threadName = threadName;
        this.errorCounter = errorCounter;
    }

    /** One run, on the worker thread, with the table refreshed. */
    protected abstract void work(Table table) throws Exception;

    /** Checked on the task thread before a run is started: must be cheap. */
    protected boolean due() {
        return true;
    }

    /** The {@code kinesisanalytics} group, for the subclass's gauges and counters. */
    protected MetricGroup metrics() {
        return getRuntimeContext().getMetricGroup().addGroup(GROUP);
    }

    @Override
    public void open(OpenContext openContext) throws Exception {
        errors = metrics().counter(errorCounter);
        running = new AtomicBoolean();
        ClassLoader userCode = Thread.currentThread().getContextClassLoader();
        worker = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, threadName);
            t.setDaemon(true);
            t.setContextClassLoader(userCode);
            return t;
        });
    }

    @Override
    public final void processElement(Long tick, Context ctx, Collector<Long> out) {
        if (due() && running.compareAndSet(false, true)) {
            worker.execute(() -> {
                try {
                    run();
                } finally {
                    running.set(false);
                }
            });
        }
    }

    private void run() {
        try {
            if (table == null) {
                loader.open();
                table = loader.loadTable();
            } else {
                table.refresh();
            }
            work(table);
        } catch (Exception e) {
            errors.inc();
            LOG.warn("{} of {} failed", threadName, table == null ? "the home table" : table.name(), e);
        }
    }

    @Override
    public void close() throws Exception {
        if (worker != null) {
            worker.shutdownNow();
            worker.awaitTermination(10, TimeUnit.SECONDS);
        }
        loader.close();
    }
}

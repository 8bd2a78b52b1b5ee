package dev.homeflow.flink;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;

/**
 * An operator driven by ticks whose work runs on a thread of its own: a tick only starts
 * {@link #work()}, or does nothing while the last run is still going. Work on the task thread
 * would hold back that task's checkpoint barrier, and so every checkpoint and home commit of the
 * job (bench_freshness.py's per-task start delay showed it for lake stats and compaction). Emits
 * nothing. The thread gets the job jar's class loader: classes it loads later come from there.
 */
abstract class OffThreadTickFunction extends ProcessFunction<Long, Long> {
    private static final long serialVersionUID = 1L;

    private transient ExecutorService worker;
    private transient AtomicBoolean running;

    /** The worker thread's name. */
    protected abstract String threadName();

    /** One run, on the worker thread; must not throw (the next tick runs it again). */
    protected abstract void work();

    /** Checked on the task thread before a run is started: must be cheap. */
    protected boolean due() {
        return true;
    }

    @Override
    public void open(OpenContext openContext) throws Exception {
        running = new AtomicBoolean();
        ClassLoader userCode = Thread.currentThread().getContextClassLoader();
        String name = threadName();
        worker = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, name);
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
                    work();
                } finally {
                    running.set(false);
                }
            });
        }
    }

    @Override
    public void close() throws Exception {
        if (worker != null) {
            worker.shutdownNow();
            worker.awaitTermination(10, TimeUnit.SECONDS);
        }
    }
}

package dev.homeflow.flink;

import org.apache.flink.api.common.state.MapState;

/**
 * The router's per-record keyed-state work for a home record, in one call from Python.
 *
 * <p>In PyFlink's THREAD mode each call from the Python router into Java state crosses the embedded
 * bridge (pemja), and that crossing, not the state access, is the cost: about 40 µs per call on
 * this 2-core machine (scripts/bench_capacity.py --floor: a Python operator that only parses and
 * emits drained 10.2k events/s; with MapState contains + put 7.0k/s; with the high-water put as
 * well 5.6k/s). A home record needed three calls (dedup contains, dedup put, the origin's
 * high-water put); {@link #claim} does the three in one. The Python router calls it through
 * pemja with the Java state objects behind its PyFlink state handles (jobs/functions.py, _Seen).
 * An instance, not static methods: pemja resolves classes on the JVM's class path only, so Python
 * loads this one through the user-code class loader and calls methods on the object.
 */
public final class RouterStateOps {
    public RouterStateOps() {}

    /**
     * Claims {@code eventId} for the current key. If it is already in {@code seen}, writes nothing
     * and returns false (a duplicate). Otherwise records it with {@code nowMs} and, when
     * {@code origin} is not null, {@code origin}'s new high-water mark {@code highWater} in
     * {@code order}; returns true. The caller has set the current key (the operator does).
     */
    public boolean claim(MapState<String, Long> seen, MapState<String, String> order, String eventId,
                                long nowMs, String origin, String highWater) throws Exception {
        if (seen.contains(eventId)) {
            return false;
        }
        seen.put(eventId, nowMs);
        if (origin != null) {
            order.put(origin, highWater);
        }
        return true;
    }
}

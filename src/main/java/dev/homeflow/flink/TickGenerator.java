package dev.homeflow.flink;

import org.apache.flink.connector.datagen.source.GeneratorFunction;

/** A tick per period for the routing-table poller (FLIP-27 DataGeneratorSource + rate limit). */
public final class TickGenerator implements GeneratorFunction<Long, Long> {
    private static final long serialVersionUID = 1L;

    @Override
    public Long map(Long index) {
        return index;
    }
}

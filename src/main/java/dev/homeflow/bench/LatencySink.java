package dev.homeflow.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.types.Row;

/**
 * Discards rows, recording (now - row[tsField]) in ms and the first/last arrival times; on close
 * appends "count first_ms last_ms p50 p95 p99 max" to a file, one line per subtask.
 */
public final class LatencySink implements Sink<Row> {
    private static final long serialVersionUID = 1L;
    private final int tsField;
    private final String outFile;

    public LatencySink(int tsField, String outFile) {
        this.tsField = tsField;
        this.outFile = outFile;
    }

    @Override
    @SuppressWarnings("deprecation")
    public SinkWriter<Row> createWriter(InitContext context) {
        return new Writer();
    }

    private final class Writer implements SinkWriter<Row> {
        private long[] lat = new long[1 << 16];
        private int n;
        private long first = -1;
        private long last;

        @Override
        public void write(Row row, Context context) {
            long now = System.currentTimeMillis();
            if (first < 0) {
                first = now;
            }
            last = now;
            if (n == lat.length) {
                lat = Arrays.copyOf(lat, n * 2);
            }
            lat[n++] = now - ((Number) row.getField(tsField)).longValue();
        }

        @Override
        public void flush(boolean endOfInput) {}

        @Override
        public void close() throws IOException {
            long[] s = Arrays.copyOf(lat, n);
            Arrays.sort(s);
            String line = n == 0 ? "0 0 0 0 0 0 0\n"
                    : n + " " + first + " " + last + " " + s[(int) (0.50 * (n - 1))] + " " + s[(int) (0.95 * (n - 1))]
                      + " " + s[(int) (0.99 * (n - 1))] + " " + s[n - 1] + "\n";
            Files.write(Paths.get(outFile), line.getBytes(StandardCharsets.UTF_8),
                    StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        }
    }
}

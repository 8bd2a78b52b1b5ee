package dev.homeflow.bench;

import dev.homeflow.flink.CommittedEventDedup;
import dev.homeflow.flink.KeyedKinesisRecordSchema;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.kinesis.source.KinesisStreamsSource;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.streaming.api.CheckpointingMode;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.logical.RowType;
import org.apache.iceberg.Table;
import org.apache.iceberg.catalog.TableIdentifier;
import org.apache.iceberg.flink.CatalogLoader;
import org.apache.iceberg.flink.FlinkSchemaUtil;
import org.apache.iceberg.flink.TableLoader;
import org.apache.iceberg.flink.sink.FlinkSink;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * The baseline of scripts/bench_capacity.py: what a user would write in Java instead of homeflow
 * for one region. The same Kinesis source and record schema, keyed by the business key, exactly
 * once by event_id (keyed map state with a 24 h TTL, as homeflow's router), the same Iceberg sink
 * and DynamoDB catalog, the same lake columns; no routing, no forwarding, no Python.
 *
 * <pre>java -cp homeflow-connectors.jar:$PYFLINK/lib/* dev.homeflow.bench.JavaOnlyPipeline \
 *   --region R --stream-arn ARN --endpoint URL --access-key K --secret-key S \
 *   --catalog-table T --warehouse s3://... --table ns.name --checkpoint-dir file:///...
 *   [--checkpoint-ms 1000] [--parallelism 1]</pre>
 */
public final class JavaOnlyPipeline {
    private JavaOnlyPipeline() {}

    public static void main(String[] argv) throws Exception {
        Map<String, String> a = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            if (!argv[i].startsWith("--")) {
                throw new IllegalArgumentException("expected --name value pairs, got " + argv[i]);
            }
            a.put(argv[i].substring(2), argv[i + 1]);
        }
        String region = need(a, "region");
        String endpoint = a.get("endpoint");
        int parallelism = Integer.parseInt(a.getOrDefault("parallelism", "1"));

        Configuration src = new Configuration();
        src.setString("aws.region", region);
        src.setString("flink.stream.initpos", "TRIM_HORIZON");
        if (endpoint != null) {
            src.setString("aws.endpoint", endpoint);
            src.setString("aws.trust.all.certificates", "true");
            src.setString("aws.http.protocol.version", "HTTP1_1");
        }
        if (a.containsKey("access-key")) {
            src.setString("aws.credentials.provider", "BASIC");
            src.setString("aws.credentials.provider.basic.accesskeyid", a.get("access-key"));
            src.setString("aws.credentials.provider.basic.secretkey", a.getOrDefault("secret-key", ""));
        }
        KinesisStreamsSource<Row> source = KinesisStreamsSource.<Row>builder()
                .setStreamArn(need(a, "stream-arn"))
                .setSourceConfig(src)
                .setDeserializationSchema(new KeyedKinesisRecordSchema())
                .build();

        Map<String, String> cat = new HashMap<>();
        cat.put("warehouse", need(a, "warehouse"));
        cat.put("io-impl", "org.apache.iceberg.aws.s3.S3FileIO");
        cat.put("dynamodb.table-name", need(a, "catalog-table"));
        cat.put("client.region", region);
        if (endpoint != null) {
            cat.put("dynamodb.endpoint", endpoint);
            cat.put("s3.endpoint", endpoint);
            cat.put("s3.path-style-access", "true");
        }
        if (a.containsKey("access-key")) {
            cat.put("s3.access-key-id", a.get("access-key"));
            cat.put("s3.secret-access-key", a.getOrDefault("secret-key", ""));
        }
        CatalogLoader catalog = CatalogLoader.custom("java-" + region, cat,
                new org.apache.hadoop.conf.Configuration(), "org.apache.iceberg.aws.dynamodb.DynamoDbCatalog");
        TableLoader tables = TableLoader.fromCatalog(catalog, TableIdentifier.parse(need(a, "table")));
        RowType rowType;
        tables.open();
        try {
            Table t = tables.loadTable();
            rowType = FlinkSchemaUtil.convert(t.schema());
        } finally {
            tables.close();
        }

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(parallelism);
        env.enableCheckpointing(Long.parseLong(a.getOrDefault("checkpoint-ms", "1000")), CheckpointingMode.EXACTLY_ONCE);
        // On files, as the homeflow job's: the dedup state outgrows the JobManager's 5 MB limit.
        env.getCheckpointConfig().setCheckpointStorage(need(a, "checkpoint-dir"));
        DataStream<RowData> rows = env
                .fromSource(source, WatermarkStrategy.noWatermarks(), "source-ingest", KeyedKinesisRecordSchema.TYPE).uid("source-ingest")
                .keyBy(r -> (String) r.getField(0), Types.STRING)
                .process(new DedupToRow(region, rowType.getFieldCount()), InternalTypeInfo.of(rowType))
                .uid("dedup").name("dedup");
        FlinkSink.forRowData(rows)
                .tableLoader(TableLoader.fromCatalog(catalog, TableIdentifier.parse(need(a, "table"))))
                .uidPrefix("iceberg-java")
                .writeParallelism(parallelism)
                .append();
        env.execute("java-only-" + region);
    }

    private static String need(Map<String, String> a, String name) {
        String v = a.get(name);
        if (v == null) {
            throw new IllegalArgumentException("missing --" + name);
        }
        return v;
    }

    /** Parses the envelope, drops an event_id seen before for this key, emits the lake row. */
    static final class DedupToRow extends KeyedProcessFunction<String, Row, RowData> {
        private static final long serialVersionUID = 1L;
        private static final ObjectMapper JSON = new ObjectMapper();
        private final String region;
        private final int arity;
        private transient MapState<String, Boolean> seen;

        DedupToRow(String region, int arity) {
            this.region = region;
            this.arity = arity;
        }

        @Override
        public void open(Configuration parameters) {
            MapStateDescriptor<String, Boolean> d = new MapStateDescriptor<>("seen", Types.STRING, Types.BOOLEAN);
            d.enableTimeToLive(CommittedEventDedup.ttl(Duration.ofHours(24).toMillis()));  // homeflow's dedup TTL
            seen = getRuntimeContext().getMapState(d);
        }

        @Override
        public void processElement(Row in, Context ctx, Collector<RowData> out) throws Exception {
            Row rec = (Row) in.getField(1);
            JsonNode doc = JSON.readTree((byte[]) rec.getField(3));
            String eventId = doc.path("event_id").asText(null);
            if (eventId == null || seen.contains(eventId)) {
                return;
            }
            seen.put(eventId, Boolean.TRUE);
            long ts = doc.path("ts").asLong();
            JsonNode payload = doc.get("payload");
            GenericRowData row = new GenericRowData(arity);
            row.setField(0, StringData.fromString(eventId));
            row.setField(1, StringData.fromString(doc.path("key").asText()));
            row.setField(2, TimestampData.fromEpochMillis(ts));
            row.setField(3, ts);
            row.setField(4, StringData.fromString(doc.path("origin").asText(region)));
            row.setField(5, doc.path("hops").asInt());
            row.setField(6, doc.path("epoch").asLong());
            row.setField(7, StringData.fromString(region));
            row.setField(8, payload == null || payload.isNull() ? null : StringData.fromString(payload.toString()));
            row.setField(9, StringData.fromString(rec.getField(0) + "/" + rec.getField(1) + "/" + rec.getField(2)));
            row.setField(10, System.currentTimeMillis());
            // The columns homeflow writes beside them (held_ms, entry, entered_at), so that both
            // pipelines write the same Parquet (the entry's unique sequence numbers cost dictionary
            // and statistics work that the comparison must include).
            if (arity > 14) {
                row.setField(11, 0L);
                row.setField(13, StringData.fromString(region + "/" + rec.getField(1) + "/" + rec.getField(2)));
                row.setField(14, rec.getField(4));
            }
            out.collect(row);
        }
    }
}

package dev.homeflow.bench;

import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import org.apache.iceberg.AppendFiles;
import org.apache.iceberg.CatalogUtil;
import org.apache.iceberg.DataFile;
import org.apache.iceberg.PartitionKey;
import org.apache.iceberg.Table;
import org.apache.iceberg.catalog.Catalog;
import org.apache.iceberg.catalog.TableIdentifier;
import org.apache.iceberg.FileFormat;
import org.apache.iceberg.data.GenericAppenderFactory;
import org.apache.iceberg.data.GenericRecord;
import org.apache.iceberg.data.InternalRecordWrapper;
import org.apache.iceberg.data.Record;
import org.apache.iceberg.encryption.EncryptedFiles;
import org.apache.iceberg.io.DataWriter;

/**
 * Fills a home table with N committed rows quickly, as the job would have committed them (the
 * same columns, statistics and a day partition), for scripts/bench_seed.py: a start without state
 * against a lake of 10 million event_ids is what the seed must survive, and driving 10 million
 * events through Kinesis and the job first would take an hour here.
 *
 * <pre>java -cp homeflow-connectors.jar:$PYFLINK/lib/* dev.homeflow.bench.LakeFill \
 *   --region R --endpoint URL --access-key K --secret-key S --catalog-table T \
 *   --warehouse s3://... --table ns.name --ids N [--files 100] [--seed 1]</pre>
 *
 * Event ids are random UUIDs (java.util.Random with the seed): 36 characters, as producers send.
 */
public final class LakeFill {
    private LakeFill() {}

    public static void main(String[] argv) throws Exception {
        Map<String, String> a = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            a.put(argv[i].substring(2), argv[i + 1]);
        }
        String region = a.get("region");
        Map<String, String> props = new HashMap<>();
        props.put("warehouse", a.get("warehouse"));
        props.put("io-impl", "org.apache.iceberg.aws.s3.S3FileIO");
        props.put("dynamodb.table-name", a.get("catalog-table"));
        props.put("client.region", region);
        if (a.containsKey("endpoint")) {
            props.put("dynamodb.endpoint", a.get("endpoint"));
            props.put("s3.endpoint", a.get("endpoint"));
            props.put("s3.path-style-access", "true");
        }
        if (a.containsKey("access-key")) {
            props.put("s3.access-key-id", a.get("access-key"));
            props.put("s3.secret-access-key", a.getOrDefault("secret-key", ""));
        }
        Catalog catalog = CatalogUtil.loadCatalog("org.apache.iceberg.aws.dynamodb.DynamoDbCatalog", "fill-" + region,
                props, null);
        Table table = catalog.loadTable(TableIdentifier.parse(a.get("table")));
        long ids = Long.parseLong(a.get("ids"));
        int files = Integer.parseInt(a.getOrDefault("files", "100"));
        Random rng = new Random(Long.parseLong(a.getOrDefault("seed", "1")));
        long now = System.currentTimeMillis();
        OffsetDateTime at = OffsetDateTime.ofInstant(Instant.ofEpochMilli(now), ZoneOffset.UTC);
        GenericRecord template = GenericRecord.create(table.schema());
        GenericAppenderFactory writers = new GenericAppenderFactory(table.schema(), table.spec());
        PartitionKey partition = new PartitionKey(table.spec(), table.schema());
        InternalRecordWrapper wrapper = new InternalRecordWrapper(table.schema().asStruct());
        long written = 0;
        AppendFiles append = table.newAppend();
        int pending = 0;
        for (int f = 0; f < files; f++) {
            long rows = ids / files + (f < ids % files ? 1 : 0);
            String path = table.locationProvider().newDataLocation("bench-fill-" + UUID.randomUUID() + ".parquet");
            DataWriter<Record> w = null;
            try {
                for (long i = 0; i < rows; i++, written++) {
                    GenericRecord r = template.copy();
                    r.setField("event_id", new UUID(rng.nextLong(), rng.nextLong()).toString());
                    r.setField("key", "key-" + (written % 10_000));
                    r.setField("event_time", at);
                    r.setField("ts", now);
                    r.setField("origin", region);
                    r.setField("hops", 0);
                    r.setField("epoch", 1L);
                    r.setField("home_region", region);
                    r.setField("source", "homeflow-ingest/shardId-000000000000/" + written);
                    r.setField("routed_at", now);
                    r.setField("held_ms", 0L);
                    r.setField("entry", region + "/shardId-000000000000/" + written);
                    r.setField("entered_at", now);
                    if (w == null) {
                        partition.partition(wrapper.wrap(r));
                        w = writers.newDataWriter(EncryptedFiles.plainAsEncryptedOutput(table.io().newOutputFile(path)),
                                FileFormat.PARQUET, partition);
                    }
                    w.write(r);
                }
            } finally {
                if (w != null) {
                    w.close();
                }
            }
            if (w == null) {
                continue;
            }
            DataFile df = w.toDataFile();
            append.appendFile(df);
            if (++pending == 10 || f == files - 1) {  // one snapshot per ten files, as commits would add them
                append.commit();
                append = table.newAppend();
                pending = 0;
            }
            System.out.printf("filled %d of %d rows (%d files)%n", written, ids, f + 1);
        }
    }
}

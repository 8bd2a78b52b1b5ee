// Retention of the dead-letter archive on a real Iceberg table (Iceberg's in-memory catalog): one
// data file per day, then DeadLetterRetention.deleteBefore at a day boundary; prints what is left.
// Run by tests/unit/test_dead_letter_retention.py.
import org.apache.iceberg.*;
import org.apache.iceberg.types.Types;
import org.apache.iceberg.types.Conversions;
import org.apache.iceberg.catalog.*;
import org.apache.iceberg.inmemory.InMemoryCatalog;
import dev.homeflow.flink.DeadLetterRetention;
var schema = new Schema(Types.NestedField.required(1, "at", Types.TimestampType.withZone()),
                        Types.NestedField.required(2, "reason", Types.StringType.get()));
var spec = PartitionSpec.builderFor(schema).day("at", "at_day").build();
var catalog = new InMemoryCatalog();
catalog.initialize("retention", java.util.Map.of());
catalog.createNamespace(Namespace.of("homeflow"));
var table = catalog.createTable(TableIdentifier.of("homeflow", "dead_letters_us_east_1"), schema, spec);
long DAY = 86_400_000L;
long day0 = 1_796_342_400_000L;  // 2026-12-04T00:00Z
DataFile file(long dayStart) { String d = java.time.Instant.ofEpochMilli(dayStart).toString().substring(0, 10); var lower = Conversions.toByteBuffer(Types.TimestampType.withZone(), (dayStart + 1000) * 1000); var upper = Conversions.toByteBuffer(Types.TimestampType.withZone(), (dayStart + DAY - 1000) * 1000); var metrics = new Metrics(1L, null, null, null, null, java.util.Map.of(1, lower), java.util.Map.of(1, upper)); return DataFiles.builder(spec).withPath("s3://lake/dead_letters/" + d + ".parquet").withFormat(FileFormat.PARQUET) .withPartitionPath("at_day=" + d).withFileSizeInBytes(100).withMetrics(metrics).build(); }
var append = table.newAppend();
for (int i = 0; i < 5; i++) append.appendFile(file(day0 - i * DAY));
append.commit();
String left(Table t) { var o = new java.util.TreeSet<String>(); t.refresh(); try (var ts = t.newScan().planFiles()) { for (var f : ts) o.add(f.file().path().toString().replaceAll(".*/", "")); } catch (Exception e) { throw new RuntimeException(e); } return String.join(",", o); }
System.out.println("before -> " + left(table));
System.out.println("cutoff(12-04T10:00, 2 days) -> " + java.time.Instant.ofEpochMilli(DeadLetterRetention.cutoffMs(day0 + 10 * 3_600_000L, 2 * DAY)));
System.out.println("deleted(keep from 12-02) -> " + DeadLetterRetention.deleteBefore(table, day0 - 2 * DAY));
System.out.println("after -> " + left(table));
long snaps = 0; for (var s : table.snapshots()) snaps++;
System.out.println("again(nothing older) -> " + DeadLetterRetention.deleteBefore(table, day0 - 2 * DAY));
long snaps2 = 0; for (var s : table.snapshots()) snaps2++;
System.out.println("snapshots added by a run with nothing to delete -> " + (snaps2 - snaps));
try { DeadLetterRetention.deleteBefore(table, day0 - 2 * DAY + 1); System.out.println("unaligned -> accepted"); } catch (IllegalArgumentException e) { System.out.println("unaligned -> refused"); }
/exit

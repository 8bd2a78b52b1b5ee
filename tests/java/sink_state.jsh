// Round-trips the forward/dead-letter sink state (buffered PutRecords entries) with non-ASCII
// partition keys through the stock and the fixed serializer; run by tests/unit/test_sink_state.py.
import org.apache.flink.connector.kinesis.sink.*;
import org.apache.flink.connector.base.sink.writer.*;
import org.apache.flink.kinesis.shaded.software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;
import org.apache.flink.kinesis.shaded.software.amazon.awssdk.core.SdkBytes;
var keys = java.util.List.of("acct-1", "ключ-009", "鍵-019", "🔑-039", "clé");
var entries = new java.util.ArrayList<RequestEntryWrapper<PutRecordsRequestEntry>>();
for (var k : keys) entries.add(new RequestEntryWrapper<>(PutRecordsRequestEntry.builder().partitionKey(k).data(SdkBytes.fromUtf8String("{\"k\":\"" + k + "\"}")).build(), ("{\"k\":\"" + k + "\"}").getBytes(java.nio.charset.StandardCharsets.UTF_8).length));
var state = new BufferedRequestState<>(entries);
var stock = new KinesisStreamsStateSerializer();
var fixed = new Utf8KinesisStreamsStateSerializer();
String show(BufferedRequestState<PutRecordsRequestEntry> s) { var o = new StringBuilder(); for (var e : s.getBufferedRequestEntries()) o.append(e.getRequestEntry().partitionKey()).append("|"); return o.toString(); }
try { System.out.println("stock->stock: " + show(stock.deserialize(1, stock.serialize(state)))); } catch (Exception e) { System.out.println("stock->stock FAILS: " + e); }
System.out.println("fixed->fixed: " + show(fixed.deserialize(2, fixed.serialize(state))));
System.out.println("stock->fixed(v1): " + show(fixed.deserialize(1, stock.serialize(state))));
/exit

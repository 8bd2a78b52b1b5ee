package dev.homeflow.flink;

import java.io.IOException;
import java.util.List;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.kinesis.source.serialization.KinesisDeserializationSchema;
import org.apache.flink.kinesis.shaded.software.amazon.awssdk.services.kinesis.model.Record;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * Emits Row(business_key, Row(stream, shard_id, seq, data)): the shape PyFlink's key_by produces
 * internally, so the job can key the stream in Java (DataStream.keyBy on field 0) and save a
 * Python operator on every record. The key is the envelope's top-level "key" string, read with
 * a streaming JSON parser; records without one get the key "" and are dead-lettered by the router,
 * which validates the whole envelope. So does a key that is not valid Unicode (an escaped lone
 * surrogate such as "\ud800"): the Python side cannot take such a string, and one record carrying
 * it would otherwise fail the job on every restart. KPL aggregated records are de-aggregated
 * ({@link KplAggregate}); one that is malformed passes through whole, to be dead-lettered.
 */
public final class KeyedKinesisRecordSchema implements KinesisDeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;
    private static final JsonFactory JSON = new JsonFactory();

    public static final TypeInformation<Row> TYPE = Types.ROW(Types.STRING, KinesisRecordRowSchema.TYPE);

    @Override
    public void deserialize(Record record, String stream, String shardId, Collector<Row> out) {
        byte[] data = record.data().asByteArray();
        Long arrived = KinesisRecordRowSchema.arrived(record);
        List<byte[]> members = KplAggregate.decode(data);
        if (members == null) {
            out.collect(Row.of(businessKey(data), Row.of(stream, shardId, record.sequenceNumber(), data, arrived)));
            return;
        }
        // A KPL aggregate (forwards of a hot key, or a user's KPL producer): each member is a record
        // of its own, positioned "sequence:subsequence" as the KCL numbers them.
        for (int i = 0; i < members.size(); i++) {
            byte[] m = members.get(i);
            out.collect(Row.of(businessKey(m), Row.of(stream, shardId, record.sequenceNumber() + ":" + i, m, arrived)));
        }
    }

    static String businessKey(byte[] data) {
        try (JsonParser p = JSON.createParser(data)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                return "";
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.getCurrentName();
                JsonToken value = p.nextToken();
                if ("key".equals(name)) {
                    return value == JsonToken.VALUE_STRING ? wellFormed(p.getText()) : "";
                }
                p.skipChildren();
            }
        } catch (IOException | RuntimeException e) {
            return "";
        }
        return "";
    }

    /** The string if every surrogate in it is paired, else "". */
    static String wellFormed(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                return "";
            }
        }
        return s;
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return TYPE;
    }
}

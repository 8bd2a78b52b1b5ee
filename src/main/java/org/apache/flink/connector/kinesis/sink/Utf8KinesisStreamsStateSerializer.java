package org.apache.flink.connector.kinesis.sink;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import org.apache.flink.connector.base.sink.writer.BufferedRequestState;
import org.apache.flink.kinesis.shaded.software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;

/**
 * The sink's buffered-request state with partition keys that survive a restore.
 *
 * <p>The connector's serializer (4.3.0) writes a partition key as {@code writeInt(key.length())}
 * followed by the key's UTF-8 bytes: a count of UTF-16 units, then more bytes than that for any
 * non-ASCII key. Reading it back takes too few bytes and misreads everything after it, so a
 * snapshot whose sink buffer holds a record with a non-ASCII key cannot be restored ("Failed to
 * deserialize value", EOFException): the job fails on every restart. Version 2 writes the byte
 * count. Version 1 state (written by the stock serializer) is still read: its key is decoded
 * from UTF-8 until the recorded number of UTF-16 units is reached.
 */
public final class Utf8KinesisStreamsStateSerializer extends KinesisStreamsStateSerializer {
    private int reading = 2;

    @Override
    public int getVersion() {
        return 2;
    }

    @Override
    public synchronized BufferedRequestState<PutRecordsRequestEntry> deserialize(int version, byte[] serialized)
            throws IOException {
        reading = version;
        try {
            return super.deserialize(version, serialized);
        } finally {
            reading = 2;
        }
    }

    @Override
    protected void serializePartitionKeyToStream(String partitionKey, DataOutputStream out) throws IOException {
        byte[] bytes = partitionKey.getBytes(StandardCharsets.UTF_8);
        out.writeInt(bytes.length);
        out.write(bytes);
    }

    @Override
    protected String deserializePartitionKeyFromStream(DataInputStream in) throws IOException {
        int n = in.readInt();
        if (reading >= 2) {
            byte[] bytes = new byte[n];
            in.readFully(bytes);
            return new String(bytes, StandardCharsets.UTF_8);
        }
        return readLegacy(in, n);
    }

    /** Version 1: n is the key's length in UTF-16 units; its bytes are UTF-8. */
    static String readLegacy(DataInputStream in, int units) throws IOException {
        StringBuilder sb = new StringBuilder(units);
        java.io.ByteArrayOutputStream seq = new java.io.ByteArrayOutputStream(4);
        while (sb.length() < units) {
            int b = in.readUnsignedByte();
            int len = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
            seq.reset();
            seq.write(b);
            for (int i = 1; i < len; i++) {
                seq.write(in.readUnsignedByte());
            }
            sb.append(new String(seq.toByteArray(), StandardCharsets.UTF_8));
        }
        return sb.toString();
    }
}

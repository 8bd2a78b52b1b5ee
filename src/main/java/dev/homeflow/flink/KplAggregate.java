package dev.homeflow.flink;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The Kinesis Producer Library's aggregated-record format, written and read without protobuf:
 * magic F3 89 9A C2, then a protobuf AggregatedRecord, then the MD5 of that protobuf.
 *
 * <pre>
 * message AggregatedRecord { repeated string partition_key_table = 1;
 *                            repeated string explicit_hash_key_table = 2;
 *                            repeated Record records = 3; }
 * message Record { required uint64 partition_key_index = 1; optional uint64 explicit_hash_key_index = 2;
 *                  required bytes data = 3; repeated Tag tags = 4; }
 * </pre>
 *
 * Using the KPL's format rather than one of our own means the forward streams stay readable by
 * every KCL consumer and the aws-kinesis-agg libraries, and homeflow's source de-aggregates what
 * a user's KPL producer writes into the ingest stream.
 */
public final class KplAggregate {
    static final byte[] MAGIC = {(byte) 0xF3, (byte) 0x89, (byte) 0x9A, (byte) 0xC2};
    private static final int DIGEST = 16;

    private KplAggregate() {}

    /** Bytes an aggregate of one partition key and these members takes. */
    public static long size(String partitionKey, long membersEncodedSize) {
        long table = fieldSize(utf8Length(partitionKey));
        return MAGIC.length + table + membersEncodedSize + DIGEST;
    }

    /** Bytes one member adds to an aggregate. */
    public static int memberSize(int dataLength) {
        int record = 2 + fieldSize(dataLength);  // partition_key_index = 0 (tag + 1-byte varint), data
        return fieldSize(record);
    }

    /** One aggregated record holding `members` (in order) under one partition key. */
    public static byte[] encode(String partitionKey, List<byte[]> members) {
        ByteArrayOutputStream pb = new ByteArrayOutputStream();
        byte[] pk = partitionKey.getBytes(StandardCharsets.UTF_8);
        writeField(pb, 1, pk);
        for (byte[] data : members) {
            ByteArrayOutputStream rec = new ByteArrayOutputStream(data.length + 8);
            writeVarint(rec, (1 << 3));  // partition_key_index, varint
            writeVarint(rec, 0);
            writeField(rec, 3, data);
            writeField(pb, 3, rec.toByteArray());
        }
        byte[] body = pb.toByteArray();
        ByteArrayOutputStream out = new ByteArrayOutputStream(MAGIC.length + body.length + DIGEST);
        out.write(MAGIC, 0, MAGIC.length);
        out.write(body, 0, body.length);
        byte[] md5 = md5(body);
        out.write(md5, 0, md5.length);
        return out.toByteArray();
    }

    /**
     * The members' data in order, or null when `data` is not a well-formed aggregate (no magic, a
     * wrong digest, a truncated field): the caller then treats it as one ordinary record, so
     * anything malformed reaches the router whole and is dead-lettered with its bytes.
     */
    public static List<byte[]> decode(byte[] data) {
        if (data.length < MAGIC.length + DIGEST || !Arrays.equals(data, 0, MAGIC.length, MAGIC, 0, MAGIC.length)) {
            return null;
        }
        byte[] body = Arrays.copyOfRange(data, MAGIC.length, data.length - DIGEST);
        if (!Arrays.equals(md5(body), 0, DIGEST, data, data.length - DIGEST, data.length)) {
            return null;
        }
        try {
            List<byte[]> out = new ArrayList<>();
            Reader r = new Reader(body, 0, body.length);
            while (r.more()) {
                long tag = r.varint();
                if ((tag >>> 3) == 3 && (tag & 7) == 2) {
                    out.add(memberData(r.bytes()));
                } else {
                    r.skip((int) (tag & 7));
                }
            }
            return out;
        } catch (IndexOutOfBoundsException | IllegalArgumentException e) {
            return null;
        }
    }

    private static byte[] memberData(byte[] record) {
        Reader r = new Reader(record, 0, record.length);
        byte[] data = null;
        while (r.more()) {
            long tag = r.varint();
            if ((tag >>> 3) == 3 && (tag & 7) == 2) {
                data = r.bytes();
            } else {
                r.skip((int) (tag & 7));
            }
        }
        if (data == null) {
            throw new IllegalArgumentException("record without data");
        }
        return data;
    }

    private static final class Reader {
        private final byte[] b;
        private int pos;
        private final int end;

        Reader(byte[] b, int pos, int end) {
            this.b = b;
            this.pos = pos;
            this.end = end;
        }

        boolean more() {
            return pos < end;
        }

        long varint() {
            long v = 0;
            for (int shift = 0; shift < 64; shift += 7) {
                if (pos >= end) {
                    throw new IndexOutOfBoundsException("truncated varint");
                }
                byte x = b[pos++];
                v |= (long) (x & 0x7F) << shift;
                if ((x & 0x80) == 0) {
                    return v;
                }
            }
            throw new IllegalArgumentException("varint too long");
        }

        byte[] bytes() {
            long n = varint();
            if (n < 0 || n > end - pos) {
                throw new IndexOutOfBoundsException("truncated field");
            }
            byte[] out = Arrays.copyOfRange(b, pos, pos + (int) n);
            pos += (int) n;
            return out;
        }

        void skip(int wireType) {
            switch (wireType) {
                case 0: varint(); break;
                case 1: advance(8); break;
                case 2: bytes(); break;
                case 5: advance(4); break;
                default: throw new IllegalArgumentException("wire type " + wireType);
            }
        }

        private void advance(int n) {
            if (n > end - pos) {
                throw new IndexOutOfBoundsException("truncated field");
            }
            pos += n;
        }
    }

    private static void writeField(ByteArrayOutputStream out, int field, byte[] value) {
        writeVarint(out, (field << 3) | 2);
        writeVarint(out, value.length);
        out.write(value, 0, value.length);
    }

    private static void writeVarint(ByteArrayOutputStream out, long v) {
        while ((v & ~0x7FL) != 0) {
            out.write((int) ((v & 0x7F) | 0x80));
            v >>>= 7;
        }
        out.write((int) v);
    }

    private static int fieldSize(int length) {
        return 1 + varintSize(length) + length;
    }

    private static int varintSize(long v) {
        int n = 1;
        while ((v & ~0x7FL) != 0) {
            v >>>= 7;
            n++;
        }
        return n;
    }

    private static int utf8Length(String s) {
        return s.getBytes(StandardCharsets.UTF_8).length;
    }

    private static byte[] md5(byte[] body) {
        try {
            return MessageDigest.getInstance("MD5").digest(body);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}

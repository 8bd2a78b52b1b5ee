"""The two formats that cross the Python bridge in the batched router, each written on one side and
read on the other (udfs/batch_codec.py against the jar's KeyGroupBatcher and RouterBatchUnpacker,
through py4j): skewed and unicode keys, bytes that are no UTF-8, payloads with lone surrogates,
every entry kind; and the batcher's representative keys land in their key groups."""
from __future__ import annotations

import json

import pytest

from udfs import batch_codec
from udfs.envelope import Envelope, parse
from udfs.handoff import Dead, Forward, Home, Remember

REGION, INGEST = "us-east-1", "homeflow-ingest"
KNOWN = frozenset({"us-east-1", "eu-west-1"})


def _java_batch(jvm, records: list[tuple]) -> bytes:
    out = jvm.org.apache.flink.core.memory.DataOutputSerializer(64)
    for key, stream, shard, seq, data, arrived, now in records:
        row = jvm.org.apache.flink.types.Row(5)
        for i, v in enumerate((stream, shard, seq, data, None if arrived is None else jvm.java.lang.Long(arrived))):
            row.setField(i, v)
        jvm.dev.homeflow.flink.KeyGroupBatcher.write(out, key, row, now, REGION, INGEST)
    return bytes(out.getCopyOfBuffer())


def test_what_the_batcher_writes_is_what_the_router_reads(jvm):
    recs = [("acct-001", f"arn:aws:kinesis:{REGION}:1:stream/{INGEST}", "shardId-000000000001", "4963", b'{"a":1}',
             1_700_000_000_123, 5),
            ("ключ-🔑", "arn:aws:kinesis:eu:1:stream/homeflow-forward", "shardId-000000000000", "77:3", b"\xff\xfe",
             None, 6),
            ("", f"arn:aws:kinesis:{REGION}:1:stream/{INGEST}", "shardId-000000000002", "9", b"", 7, 8)]
    got = list(batch_codec.records(_java_batch(jvm, recs)))
    assert got == [
        batch_codec.Record("acct-001", f"{INGEST}/shardId-000000000001/4963", f"{REGION}/shardId-000000000001/4963",
                           1_700_000_000_123, 5, b'{"a":1}'),
        batch_codec.Record("ключ-🔑", "homeflow-forward/shardId-000000000000/77:3", None, None, 6, b"\xff\xfe"),
        batch_codec.Record("", f"{INGEST}/shardId-000000000002/9", f"{REGION}/shardId-000000000002/9", 7, 8, b""),
    ]
    assert batch_codec.pack(got) == _java_batch(jvm, recs), "the Python packer (tests, benchmarks) writes the same"


def test_what_the_router_decides_is_what_java_unpacks(jvm):
    env = parse(json.dumps({"event_id": "e1", "key": "ключ", "ts": 5, "origin": REGION,
                            "payload": {"name": "Zoë", "odd": "\ud800"}}).encode(), KNOWN)
    assert isinstance(env, Envelope)
    fwd = env.forwarded(3, via=REGION, after=("us-east-1:3", "eu-west-1"), entry=f"{REGION}/s/1", entered=9)
    outs = [Home(env, 4, 100, 7, "reordered", "ingest/s/1", f"{REGION}/s/1", 9),
            Forward("eu-west-1", fwd, unless_committed=True),
            Forward("eu-west-1", fwd, with_seen=True),
            Dead("malformed-json", "bad", b"\xff{", "ingest/s/2"),
            Remember(("a", "b"))]
    blob = batch_codec.encode([batch_codec.entry("ключ", o, REGION, 123) for o in outs])
    lake = 15
    rows = list(jvm.dev.homeflow.flink.RouterBatchUnpacker(lake, REGION).unpack(blob))
    field = [[r.getField(i) for i in range(r.getArity())] for r in rows]
    c = 3 + lake
    home = field[0]
    assert home[:3] == ["", None, None] and home[c:c + 3] == ["ключ", "H", "e1"]
    payload = home[3 + 8]
    assert payload.isascii() and json.loads(payload) == env.payload, "ASCII JSON text of the same value, as before"
    home[3 + 8] = None
    assert home[3:3 + lake] == ["e1", "ключ", 5, 5, REGION, 0, 4, REGION, None, "ingest/s/1", 100, 7, "reordered",
                                f"{REGION}/s/1", 9]
    f1, f2 = field[1], field[2]
    assert f1[:2] == ["eu-west-1", "ключ"] and parse(f1[2].encode(), KNOWN) == fwd
    assert f1[c + 3] == batch_codec.FLAG_UNLESS_COMMITTED | batch_codec.FLAG_AFTER
    assert f2[c + 3] == batch_codec.FLAG_WITH_SEEN | batch_codec.FLAG_AFTER
    dead = field[3]
    assert dead[:2] == ["dead-letter", "malformed-json"] and json.loads(dead[2])["raw_encoding"] == "base64"
    assert field[4][c + 1] == "S" and json.loads(field[4][c + 4]) == ["a", "b"]


@pytest.mark.parametrize("payload", [
    {"name": "Zoë 😀", "f": [0.1, 1e16, -0.0, 1e300, 2.5e-8], "i": [0, -1, 2**63 - 1, -2**63], "n": None,
     "nested": {"a": [{"b": True}]}},
    "ключ \u2028 \x00 tab\t",
    {"big": 2**70, "odd": "\ud800"},  # what orjson cannot write: the batch is written by json.dumps
])
def test_the_lake_and_forward_text_is_what_it_was_before_orjson(jvm, payload):
    """The batch is written by orjson (UTF-8) where it can, else by json.dumps (ASCII escapes, the
    earlier encoder): Java writes the same payload and envelope text from both."""
    env = parse(json.dumps({"event_id": "e1", "key": "k", "ts": 5, "origin": REGION, "payload": payload}).encode(),
                KNOWN)
    assert isinstance(env, Envelope)
    entries = [batch_codec.entry("k", Home(env, 4, 100, 7, None, "ingest/s/1"), REGION, 1),
               batch_codec.entry("k", Forward("eu-west-1", env.forwarded(3, via=REGION)), REGION, 1)]
    unpack = jvm.dev.homeflow.flink.RouterBatchUnpacker(15, REGION).unpack

    def rows(blob):
        return [[str(r.getField(i)) for i in range(r.getArity())] for r in unpack(blob)]
    before = json.dumps(entries, separators=(",", ":")).encode("ascii")
    assert rows(batch_codec.encode(entries)) == rows(before)
    assert json.loads(rows(before)[0][3 + 8]) == json.loads(json.dumps(payload))


@pytest.mark.parametrize("max_parallelism", [128, 256, 32768])
def test_each_key_groups_representative_key_lands_in_that_group(jvm, max_parallelism):
    kg = jvm.org.apache.flink.runtime.state.KeyGroupRangeAssignment
    batcher = jvm.dev.homeflow.flink.KeyGroupBatcher
    for g in range(0, max_parallelism, max(1, max_parallelism // 128)):
        rep = batcher.representative(g, max_parallelism)
        key = jvm.org.apache.flink.types.Row(1)
        key.setField(0, rep)
        assert kg.assignToKeyGroup(key, max_parallelism) == g

"""Hot-key aggregation in the key-ordered forward sink (KPL aggregated records) and their
de-aggregation, on the Java classes of the built connector jar (through py4j), read back with an
independent implementation (AWS's aws-kinesis-agg) and homeflow's own Python reader.

The writer is simulated the way AsyncSinkWriter drives it: take a batch from the head of the
buffer, send what KeyOrderedBatch selects, fail a random part of it, put KeyOrderedBatch's retry
list back at the head. Whatever fails, every key's records must arrive exactly once and in order.
The stock writer's behaviour (send the whole batch, re-queue the failed entries) is the control:
the same check finds it reordering."""
from __future__ import annotations

import base64
import hashlib
import random
from collections import defaultdict

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records

from udfs import kpl

MiB = 1024 * 1024


def _aws_deaggregate(data: bytes, key: str) -> list[bytes]:
    event = {"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": key, "sequenceNumber": "1", "approximateArrivalTimestamp": 0,
                         "data": base64.b64encode(data).decode()}}
    return [base64.b64decode(r["kinesis"]["data"]) for r in deaggregate_records([event])]


MEMBERS = [b'{"key":"acct-1","n":1}', "ключ-🔑 \u00e9".encode(), b"", bytes(range(256)) * 4, b"\x00\xf3\x89"]


def test_java_aggregates_read_back_by_aws_kinesis_agg_and_python(jvm):
    key = "鍵-019"
    data = bytes(jvm.dev.homeflow.flink.KplAggregate.encode(key, MEMBERS))
    assert data.startswith(kpl.MAGIC)
    assert _aws_deaggregate(data, key) == MEMBERS
    assert kpl.deaggregate(data) == MEMBERS
    # size() predicts the encoded length exactly, which is what keeps an aggregate under 1 MiB
    members_size = sum(jvm.dev.homeflow.flink.KplAggregate.memberSize(len(m)) for m in MEMBERS)
    assert jvm.dev.homeflow.flink.KplAggregate.size(key, members_size) == len(data)


def test_java_and_python_read_kpl_producer_aggregates(jvm):
    agg = RecordAggregator()
    for m in MEMBERS:
        agg.add_user_record("acct-7", m)
    _, _, data = agg.clear_and_get().get_contents()
    assert [bytes(m) for m in jvm.dev.homeflow.flink.KplAggregate.decode(data)] == MEMBERS
    assert kpl.deaggregate(data) == MEMBERS


def test_malformed_aggregates_are_ordinary_records(jvm):
    good = bytes(jvm.dev.homeflow.flink.KplAggregate.encode("k", [b"a", b"b"]))
    flipped = good[:10] + bytes([good[10] ^ 1]) + good[11:]  # digest no longer matches
    bad_body = kpl.MAGIC + b"\x1a\xff\xff" + hashlib.md5(b"\x1a\xff\xff").digest()  # truncated
    for data in (flipped, good[:-1], bad_body, kpl.MAGIC, b'{"key":"k"}', b""):
        assert jvm.dev.homeflow.flink.KplAggregate.decode(data) is None, data
        assert kpl.deaggregate(data) is None, data
    assert kpl.deaggregate(good) == [b"a", b"b"]


def test_positions_order_subsequences():
    assert kpl.is_position("49590338271490256608559692538361571095921575989136588898")
    assert kpl.is_position("12:0") and not kpl.is_position("12:") and not kpl.is_position("a1")
    assert sorted(["13", "12:1", "12:0", "11", "12:10"], key=kpl.position) == ["11", "12:0", "12:1", "12:10", "13"]


def _records(rng: random.Random, n: int, big: bool) -> list[tuple[str, bytes]]:
    """Skewed keys (one hot key carries ~half), unicode keys, sizes up to 300 KB when `big`."""
    keys = ["hot", "ключ", "🔑", *(f"k{i}" for i in range(20))]
    seq: dict[str, int] = defaultdict(int)
    out = []
    for _ in range(n):
        k = "hot" if rng.random() < 0.5 else rng.choice(keys)
        seq[k] += 1
        size = rng.choice([20, 200, 300_000]) if big else rng.choice([20, 200, 2_000])
        out.append((k, f"{k}|{seq[k]}|".encode() + b"x" * size))
    return out


def _entry(jvm, key: str, data: bytes):
    """A PutRecordsRequestEntry of the connector's shaded AWS SDK."""
    shaded = jvm.org.apache.flink.kinesis.shaded.software.amazon.awssdk
    return shaded.services.kinesis.model.PutRecordsRequestEntry.builder() \
        .partitionKey(key).data(shaded.core.SdkBytes.fromByteArray(data)).build()


def _simulate(jvm, recs, rng, aggregate: bool | None, fail_rate: float = 0.3):
    """Per key, the members in the order the destination accepted them. aggregate=None is the stock writer."""
    buffer = [_entry(jvm, k, d) for k, d in recs]
    got: dict[str, list[bytes]] = defaultdict(list)
    requests = 0
    while buffer:
        batch, size = [], 0
        # 50 entries a batch, not the sink's 500: the same logic with a tenth of the py4j calls
        while buffer and len(batch) < 50:
            n = buffer[0].data().asByteBuffer().remaining() + len(buffer[0].partitionKey().encode())
            if batch and size + n > 5 * MiB - 64 * 1024:
                break
            size += n
            batch.append(buffer.pop(0))
        java_batch = jvm.java.util.ArrayList(batch)
        split = jvm.dev.homeflow.flink.KeyOrderedBatch.of(java_batch, aggregate) if aggregate is not None else None
        send = list(split.send()) if split is not None else batch
        requests += 1
        keys_in_request = [e.partitionKey() for e in send]
        if aggregate is not None:
            assert len(keys_in_request) == len(set(keys_in_request)), "two records of a key in one request"
        failed = [e for e in send if rng.random() < fail_rate]
        failed_ids = {id(e) for e in failed}
        for e in send:
            if id(e) in failed_ids:
                continue
            data = bytes(e.data().asByteArray())
            assert len(data) + len(e.partitionKey().encode()) <= MiB, "record over the Kinesis limit"
            members = kpl.deaggregate(data)
            got[e.partitionKey()].extend([data] if members is None else members)
        if split is not None:
            buffer = list(split.retry(jvm.java.util.ArrayList(failed))) + buffer
        else:
            buffer = failed + buffer
    return got, requests


def _check(recs, got) -> list[str]:
    want: dict[str, list[bytes]] = defaultdict(list)
    for k, d in recs:
        want[k].append(d)
    return [k for k in want if got.get(k) != want[k]]


@pytest.mark.parametrize("big", [False, True], ids=["small-records", "300KB-records"])
def test_every_key_arrives_whole_and_in_order_under_partial_failures(jvm, big):
    rng = random.Random(20261130 + big)
    recs = _records(rng, 150 if big else 600, big)
    got, requests = _simulate(jvm, recs, rng, aggregate=True)
    assert _check(recs, got) == []
    got_plain, requests_plain = _simulate(jvm, recs, random.Random(7), aggregate=False)
    assert _check(recs, got_plain) == []
    if not big:  # a hot key moves many records per request once aggregated
        assert requests * 5 < requests_plain, (requests, requests_plain)
    # control: the stock writer, same faults, reorders (so the check above can fail)
    got_stock, _ = _simulate(jvm, recs, random.Random(7), aggregate=None)
    assert _check(recs, got_stock) != []


def test_a_hot_batch_becomes_one_record_and_a_retried_aggregate_is_merged_not_nested(jvm):
    def mk(k, d):
        return _entry(jvm, k, d)
    batch = [mk("hot", f"{i}".encode()) for i in range(500)]  # the sink's batch size
    split = jvm.dev.homeflow.flink.KeyOrderedBatch.of(jvm.java.util.ArrayList(batch), True)
    (one,) = list(split.send())
    assert kpl.deaggregate(bytes(one.data().asByteArray())) == [f"{i}".encode() for i in range(500)]
    retried = list(split.retry(jvm.java.util.ArrayList([one])))
    again = jvm.dev.homeflow.flink.KeyOrderedBatch.of(jvm.java.util.ArrayList(retried + [mk("hot", b"500")]), True)
    (merged,) = list(again.send())
    assert kpl.deaggregate(bytes(merged.data().asByteArray())) == [f"{i}".encode() for i in range(501)]
    # a lone plain record is sent as it is
    lone = jvm.dev.homeflow.flink.KeyOrderedBatch.of(jvm.java.util.ArrayList([mk("k", b"x")]), True)
    assert bytes(list(lone.send())[0].data().asByteArray()) == b"x"


def test_corrupted_aggregates_never_raise(jvm):
    """A record whose bytes are damaged anywhere (with the digest recomputed, so the protobuf
    parser sees it) decodes to None or to some members, never to an exception that would fail the
    job on every restart."""
    rng = random.Random(99)
    good = bytes(jvm.dev.homeflow.flink.KplAggregate.encode("k", MEMBERS))
    for i in range(120):
        body = bytearray(good[4:-16])
        for _ in range(rng.randint(1, 4)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        if i % 3 == 0:
            body = body[:rng.randrange(len(body))]
        data = kpl.MAGIC + bytes(body) + hashlib.md5(bytes(body)).digest()
        py = kpl.deaggregate(data)
        java = jvm.dev.homeflow.flink.KplAggregate.decode(data)
        assert (py is None) == (java is None), data
        if py is not None:
            assert [bytes(m) for m in java] == py

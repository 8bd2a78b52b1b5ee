import json

import pytest

from udfs.envelope import Envelope, Rejection, parse

REGIONS = frozenset({"us-east-1", "eu-west-1"})


def good(**over):
    doc = {"event_id": "e1", "key": "k1", "ts": 1700000000000, "origin": "us-east-1",
           "hops": 0, "epoch": 0, "payload": {"a": 1}}
    doc.update(over)
    return json.dumps(doc).encode()


def test_parses_a_good_envelope_and_round_trips():
    env = parse(good(), REGIONS)
    assert isinstance(env, Envelope)
    assert (env.event_id, env.key, env.ts, env.origin, env.payload) == ("e1", "k1", 1700000000000, "us-east-1", {"a": 1})
    assert parse(env.to_json().encode(), REGIONS) == env


def test_forwarded_increments_hops_and_sets_epoch():
    env = parse(good(hops=1, epoch=3), REGIONS)
    fwd = env.forwarded(7)
    assert (fwd.hops, fwd.epoch, fwd.event_id) == (2, 7, "e1")


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "malformed-json"),
    (b"\xff\xfe\x00garbage", "malformed-json"),
    (b"[1, 2]", "malformed-json"),
    (good(event_id=None), "missing-event-id"),
    (good(event_id=""), "missing-event-id"),
    (good(key=None), "missing-key"),
    (good(key=5), "wrong-type"),
    (good(ts="yesterday"), "wrong-type"),
    (good(ts=True), "wrong-type"),
    (good(ts=-1), "wrong-type"),
    (good(hops=-1), "wrong-type"),
    (good(epoch="1"), "wrong-type"),
    (good(origin="mars-north-1"), "unknown-region"),
    (good(origin=7), "wrong-type"),
    (good(entry="us-east-1/shardId-1"), "wrong-type"),
    (good(entry="us-east-1/shardId-1/abc"), "wrong-type"),
    (good(entered="soon"), "wrong-type"),
    (good(entered=-5), "wrong-type"),
    (good(order={"mars-north-1": "shardId-1/5/7"}), "wrong-type"),
])
def test_rejects_bad_input_with_its_reason(raw, reason):
    r = parse(raw, REGIONS)
    assert isinstance(r, Rejection), r
    assert r.reason == reason
    assert r.detail


def test_rejects_oversized_before_parsing():
    raw = good(payload="x" * 2000)
    assert parse(raw, REGIONS, max_bytes=1000).reason == "oversized"
    assert isinstance(parse(raw, REGIONS, max_bytes=len(raw)), Envelope)


def test_entry_travels_with_a_forward_and_a_redrive_replaces_it():
    env = parse(good(), REGIONS)
    fwd = env.forwarded(2, via="us-east-1", entry="us-east-1/shardId-000000000001/4963:1", entered=1700000000123)
    assert parse(fwd.to_json().encode(), REGIONS) == fwd
    again = fwd.forwarded(3, via="eu-west-1")
    assert (again.entry, again.entered) == (fwd.entry, fwd.entered), "kept on the next hop"
    redriven = fwd.forwarded(4, via="eu-west-1", entry="eu-west-1/shardId-000000000000/77", entered=5)
    assert (redriven.entry, redriven.entered) == ("eu-west-1/shardId-000000000000/77", 5)


def test_an_older_jobs_oseq_and_per_origin_order_are_read_but_not_used():
    env = parse(good(hops=1, oseq="4963", order={"us-east-1": "4963", "eu-west-1": "shardId-0/9/12"}), REGIONS)
    assert isinstance(env, Envelope) and env.entry is None
    assert env.order == {"eu-west-1": "shardId-0/9/12"}


@pytest.mark.parametrize("raw, why", [
    (good(payload=None).replace(b'"payload": null', b'"payload": NaN'), "NaN is not a JSON number"),
    (good(payload=None).replace(b'"payload": null', b'"payload": [1, -Infinity]'), "-Infinity is not a JSON number"),
    (good(payload=None).replace(b'"payload": null', b'"payload": {"x": 1.5e400}'), "out of a double's range"),
    (good(payload=None).replace(b'"payload": null', b'"payload": ' + b"[" * 5000 + b"]" * 5000), "nested too deeply"),
    (b"[" * 100_000, "nested too deeply"),
    # within orjson's depth (1,024) but not json.loads', with a float json.loads must read again
    (good(payload=None).replace(b'"payload": null', b'"payload": ' + b"[" * 1020 + b"1e300" + b"]" * 1020),
     "nested too deeply"),
])
def test_what_is_not_json_for_every_reader_is_malformed_not_a_crash(raw, why):
    """NaN, Infinity and numbers beyond a double are accepted by Python's json.loads but refused by
    the Java side that writes rows and forwards (a job that failed on them would fail again on
    restart: a poison record); nesting beyond Python's parser raised RecursionError."""
    r = parse(raw, REGIONS)
    assert isinstance(r, Rejection) and r.reason == "malformed-json", r
    assert why in r.detail


@pytest.mark.parametrize("field, value", [("ts", 2**63), ("hops", 2**31), ("epoch", 2**63), ("entered", 2**64),
                                          ("ts", 10**30)])
def test_numbers_the_java_side_cannot_hold_are_rejected(field, value):
    assert parse(good(**{field: value}), REGIONS).reason == "wrong-type"
    largest = {"hops": 2**31 - 1}.get(field, 2**63 - 1)
    assert isinstance(parse(good(**{field: largest}), REGIONS), Envelope), "the largest value Java holds is accepted"


@pytest.mark.parametrize("payload", [
    {"big": 123456789012345678901234567890, "neg": -9223372036854775809, "max": 18446744073709551615},
    [1.5, -0.0, 1e300, 9.2e18, {"deep": [10**20]}],
    "lone \ud800 surrogate",
    {"ü": "ßñ😀", "n": None, "b": True},
])
def test_a_payload_reads_exactly_as_json_reads_it(payload):
    """orjson reads what it can (faster), json.loads the rest: integers beyond 64 bits stay exact
    and a lone surrogate escape stays readable, as before."""
    raw = good(payload=payload)
    env = parse(raw, REGIONS)
    assert isinstance(env, Envelope), env
    assert json.dumps(env.payload) == json.dumps(json.loads(raw)["payload"])
    assert all(type(a) is type(b) for a, b in zip(_leaves(env.payload), _leaves(json.loads(raw)["payload"])))


def _leaves(v):
    if isinstance(v, dict):
        return [x for k in v for x in _leaves(v[k])]
    if isinstance(v, list):
        return [x for i in v for x in _leaves(i)]
    return [v]

"""The dead-letter archive's rows and the redrive decisions, on every record of the bad-input
corpus: a record that still fails is refused with the router's reason, a fixed one is sent once,
one already committed is skipped (so a second redrive of one file sends nothing)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.dead_letters import when_ms
from udfs.dead_letter import archive_row, dead_letter
from udfs.envelope import Envelope, parse
from udfs.redrive import decide, original

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
REGIONS = ("us-east-1", "eu-west-1")
MAX = 256 * 1024
FIELDS = ("at", "reason", "detail", "region", "source", "event_id", "key", "raw", "raw_encoding")


def _archived(raw: bytes, reason: str, source: str = "homeflow-ingest/shard-0/1") -> dict:
    return dict(zip(FIELDS, archive_row(dead_letter(raw, reason, "why", "us-east-1", 1_700_000_000_000, source))))


def test_every_corpus_record_archives_with_its_original_bytes_and_is_refused_as_it_was():
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    rows = [_archived((CORPUS / name).read_bytes(), reason) for name, reason in manifest.items()]
    assert [original(r) for r in rows] == [(CORPUS / name).read_bytes() for name in manifest]
    assert next(r for r in rows if r["reason"] == "missing-event-id")["key"] is not None  # read when it can be
    by_name = dict(zip(manifest, rows))
    assert all(by_name[n]["event_id"] is None and by_name[n]["key"] is None
               for n in ("truncated.json", "not_utf8.bin", "array.json"))
    ds = decide(rows, REGIONS, MAX, committed=set())
    assert [d.action for d in ds] == ["refuse"] * len(rows)
    # the refusal names the reason the router gave, record by record
    assert [d.why.split(":")[0] for d in ds] == list(manifest.values())


def test_a_fixed_record_is_sent_once_then_skipped_once_committed():
    broken = json.loads((CORPUS / "missing_event_id.json").read_text())
    row = _archived(json.dumps(broken).encode(), "missing-event-id")
    fixed = {**row, "raw": json.dumps({**broken, "event_id": "fixed-1"})}
    first = decide([fixed, fixed], REGIONS, MAX, committed=set())
    assert [d.action for d in first] == ["send", "skip"] and first[0].event_id == "fixed-1"
    assert parse(first[0].data, frozenset(REGIONS), MAX).event_id == "fixed-1"
    again = decide([fixed], REGIONS, MAX, committed={"fixed-1"})
    assert [(d.action, d.why) for d in again] == [("skip", "already committed")]
    # control: without the committed set the same file would be sent again
    assert [d.action for d in decide([fixed], REGIONS, MAX, committed=set())] == ["send"]


def test_a_routing_conflict_goes_back_as_the_event_the_producer_wrote():
    fwd = Envelope("c-1", "k1", 5, "eu-west-1", hops=2, epoch=9, payload={"a": 1}, via="eu-west-1")
    row = _archived(fwd.to_json().encode(), "routing-conflict", "homeflow-forward/shard-0/7")
    assert (row["event_id"], row["key"]) == ("c-1", "k1")
    [d] = decide([row], REGIONS, MAX, committed=set())
    env = parse(d.data, frozenset(REGIONS), MAX)
    assert d.action == "send" and (env.hops, env.epoch, env.via) == (0, 0, None)
    assert (env.event_id, env.key, env.payload) == ("c-1", "k1", {"a": 1})


def test_binary_originals_round_trip_and_an_unknown_region_is_refused():
    row = _archived(b"\xff\xfe\x00", "malformed-json")
    assert row["raw_encoding"] == "base64" and original(row) == b"\xff\xfe\x00"
    [d] = decide([{**row, "region": "mars-1"}], REGIONS, MAX, committed=set())
    assert d.action == "refuse" and "not configured" in d.why


def test_times_for_selections():
    assert when_ms("2026-12-04T10:00", "--since") == 1796378400000
    assert abs(when_ms("2h", "--since") - (when_ms("0m", "--since") - 7_200_000)) < 1000
    with pytest.raises(SystemExit):
        when_ms("yesterday", "--since")

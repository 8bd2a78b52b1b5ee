"""Bad input reaches the region's dead-letter stream with its original bytes and reason; good
records around it still land, and the job keeps running."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.jobrunner import wait_until
from connectors.producer import events, put, read_stream
from connectors.routing_store import RoutingStore
from udfs.dead_letter import original_bytes
from udfs.envelope import Envelope

pytestmark = pytest.mark.e2e
CORPUS = Path(__file__).resolve().parents[2] / "corpus"


def _dead_letters(sb, region):
    return [json.loads(r["data"]) for r in read_stream(sb.settings, region, sb.settings.streams.dead_letter)]


def test_bad_input_corpus_lands_in_dead_letter_stream_with_reason(two_regions):
    sb = two_regions
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    bad = {name: (CORPUS / name).read_bytes() for name in manifest}
    bad["oversized"] = Envelope("big-1", "k", 1, "us-east-1", payload="x" * 300_000).to_json().encode()
    manifest["oversized"] = "oversized"
    good = list(events("us-east-1", 50, 5, seed=404))
    records = []
    for i, (name, raw) in enumerate(bad.items()):  # interleave bad and good records
        records.append((f"bad-{name}", raw))
        records += [(e.key, e.to_json().encode()) for e in good[i * 5:(i + 1) * 5]]
    records += [(e.key, e.to_json().encode()) for e in good[len(bad) * 5:]]
    # Routing conflicts: a forwarded record that us-east-1 thinks belongs to eu-west-1, sent here
    # under us-east-1's own epoch (two tables with one epoch disagree), one at the hop limit, and one
    # routed under an epoch us-east-1 never gets (it waits table.wait.ms for it, then gives up).
    key_eu = next(f"k{i}" for i in range(1000) if sb.table.home_of(f"k{i}") == "eu-west-1")
    e = sb.table.epoch
    conflict = Envelope("conflict-1", key_eu, 1, "eu-west-1", hops=1, epoch=e, via="eu-west-1").to_json().encode()
    hop_limit = Envelope("conflict-2", key_eu, 1, "eu-west-1", hops=sb.settings.job.max_hops, epoch=1,
                         via="eu-west-1").to_json().encode()
    stale = Envelope("conflict-3", key_eu, 1, "eu-west-1", hops=1, epoch=10**12, via="eu-west-1").to_json().encode()
    put(sb.settings, "us-east-1", records)
    put(sb.settings, "us-east-1", [(key_eu, conflict), (key_eu, hop_limit), (key_eu, stale)],
        stream=sb.settings.streams.forward)

    def arrived():
        dls = _dead_letters(sb, "us-east-1")
        by_raw = {original_bytes(json.dumps(d)): d for d in dls}
        conflicts = {json.loads(d["raw"])["event_id"]: d for d in dls
                     if d["reason"] in ("routing-conflict", "stale-routing-table")}
        done = all(raw in by_raw for raw in bad.values()) and {"conflict-1", "conflict-2", "conflict-3"} <= set(conflicts)
        return (by_raw, conflicts) if done else None

    by_raw, conflicts = wait_until(arrived, 120, 2.0, sb.jobs, "dead letters")
    for name, raw in bad.items():
        d = by_raw[raw]
        assert d["reason"] == manifest[name], (name, d["reason"], d["detail"])
        assert d["region"] == "us-east-1" and d["detail"] and d["at"] > 0
        assert d["source"].startswith("homeflow-ingest/")
    # Routing conflicts carry the envelope as the router saw it (re-serialized, same fields).
    assert conflicts["conflict-2"]["reason"] == "routing-conflict" and "hop limit" in conflicts["conflict-2"]["detail"]
    assert conflicts["conflict-1"]["reason"] == "routing-conflict" and "same epoch" in conflicts["conflict-1"]["detail"]
    assert conflicts["conflict-3"]["reason"] == "stale-routing-table", conflicts["conflict-3"]

    ids = {e.event_id for e in good}
    wait_until(lambda: ids <= sb.committed_ids("us-east-1", "eu-west-1"), 120, 2.0,
               sb.jobs, "good records around the bad ones")


def test_poison_routing_item_is_dead_lettered_and_last_good_table_stays(two_regions):
    sb = two_regions
    poison = json.dumps({"epoch": 10**9, "regions": {"atlantis-1": {"weight": 1}}})
    for r in ("us-east-1", "eu-west-1"):
        RoutingStore(sb.settings, r).write_raw(poison, 10**9)
    try:
        def dead():
            return [d for d in _dead_letters(sb, "us-east-1")
                    if d["reason"] == "bad-routing-table" and d["raw"] == poison]
        found = wait_until(dead, 30, 1.0, sb.jobs, "poison routing item in the dead-letter stream")
        assert "unknown region 'atlantis-1'" in found[0]["detail"]
        # Routing goes on with the last good table.
        evs = list(events("us-east-1", 40, 8, seed=505))
        put(sb.settings, "us-east-1", [(e.key, e.to_json().encode()) for e in evs])
        wait_until(lambda: all(e.event_id in sb.committed_ids(sb.table.home_of(e.key)) for e in evs), 120, 2.0,
                   sb.jobs, "records routed with the last good table")
    finally:
        good = type(sb.table)(10**9 + 1, sb.table.regions, sb.table.overrides, sb.table.vnodes_per_weight)
        sb.table = sb.set_table(good)

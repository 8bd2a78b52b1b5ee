"""Bad input reaches the region's dead-letter stream with its original bytes and reason; good
records around it still land, and the job keeps running."""
from __future__ import annotations

import json
import time
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


def test_archive_then_redrive_a_fixed_file_commits_it_once_and_again_nothing(two_regions, tmp_path, capsys):
    """A bad record lands in the archive table; `dead-letters export` writes it out, a person fixes
    it, `redrive --file` commits the corrected event once; the same redrive again sends nothing and
    says so. Sent again anyway (what the CLI's check prevents), the job's event_id dedup still
    commits it once."""
    from cli.main import main
    from connectors import lake
    sb = two_regions
    tag = f"redrive-{time.time_ns()}"
    key = next(f"{tag}-k{i}" for i in range(1000) if sb.table.home_of(f"{tag}-k{i}") == "eu-west-1")
    broken = {"key": key, "ts": 1, "origin": "us-east-1", "payload": {"tag": tag}}  # no event_id
    put(sb.settings, "us-east-1", [(key, json.dumps(broken).encode())])

    def archived():
        t = lake.load_dead_letter_table(sb.settings, "us-east-1")
        rows = t.scan(selected_fields=("key", "reason", "raw")).to_arrow().to_pylist() if t.current_snapshot() else []
        return [r for r in rows if r["key"] == key] or None
    [row] = wait_until(archived, 90, 2.0, sb.jobs, "the bad record in the dead-letter archive")
    assert row["reason"] == "missing-event-id" and json.loads(row["raw"]) == broken

    props = ["--properties", str(sb.properties)]
    out = tmp_path / "dead.jsonl"
    assert main([*props, "dead-letters", "export", "--region", "us-east-1", "--key", key, "--out", str(out)]) == 0
    [exported] = [json.loads(line) for line in out.read_text().splitlines()]
    fixed = {**exported, "raw": json.dumps({**broken, "event_id": f"{tag}-fixed"})}
    out.write_text(json.dumps(fixed) + "\n")
    capsys.readouterr()

    assert main([*props, "dead-letters", "redrive", "--file", str(out)]) == 0
    assert "sent 1, skipped 0" in capsys.readouterr().out
    wait_until(lambda: f"{tag}-fixed" in sb.committed_ids("eu-west-1"), 90, 2.0, sb.jobs, "the redriven event")

    assert main([*props, "dead-letters", "redrive", "--file", str(out)]) == 0
    second = capsys.readouterr().out
    assert "sent 0, skipped 1" in second and "already committed" in second

    put(sb.settings, "us-east-1", [(key, fixed["raw"].encode())])  # the CLI's check bypassed
    time.sleep(8)  # several checkpoints: a duplicate would be committed by now
    rows = [e for r in ("us-east-1", "eu-west-1") for e in sb.lake_ids(r) if e == f"{tag}-fixed"]
    assert rows == [f"{tag}-fixed"], f"the redriven event is in the lake {len(rows)} times"

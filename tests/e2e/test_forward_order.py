"""Per-key order through a forward, with PutRecords partial failures and throttling injected by a
proxy in front of the emulator. The stock Kinesis sink reorders under these faults (the control);
homeflow's key-ordered sink, aggregating a key's records into KPL aggregated records (the default),
does not. One key is hot (half the records). The key-ordered sink without aggregation is covered
by tests/unit/test_kpl_aggregation.py's writer simulation."""
from __future__ import annotations

import json
import random
import time
from collections import defaultdict

import pytest

from connectors.stream_reader import read_stream as read_stored
from sandbox.jobrunner import start_job, wait_until
from udfs import kpl
from connectors.producer import events, put, read_stream
from sandbox.local_cluster import Sandbox, write_properties
from tests.fault_proxy import FaultProxy

pytestmark = pytest.mark.e2e
PROXY_PORT = 4595


def _inversions(sb, ids: set[str]) -> tuple[int, int, dict]:
    """(inversions, records seen, per-key seq lists) in eu-west-1's forward stream for `ids`.

    Forwarding is at-least-once: a restart replays records, so a key's stream may hold
    duplicates. The home router keeps the first copy of each event_id, so order is judged on
    first occurrences, which is what reaches the lake."""
    recs = read_stream(sb.settings, "eu-west-1", sb.settings.streams.forward)
    by_key, seen = defaultdict(list), set()
    for r in sorted(recs, key=lambda r: (r["shard"], kpl.position(r["seq"]))):
        d = json.loads(r["data"])
        if d["event_id"] in ids and d["event_id"] not in seen:
            seen.add(d["event_id"])
            by_key[d["key"]].append(d["payload"]["seq"])
    inv = sum(1 for seqs in by_key.values() for a, b in zip(seqs, seqs[1:]) if b < a)
    return inv, len(recs), by_key


def _run(sb, tmp_path, ordering: str, seed: int, aggregate: str = "on"):
    name = f"{ordering}-{aggregate}"
    props = write_properties(tmp_path / f"job-{name}.json", PROXY_PORT)
    doc = json.loads(props.read_text())
    for g in doc:
        if g["PropertyGroupId"] == "homeflow.streams":
            g["PropertyMap"].update({"forward.ordering": ordering, "forward.aggregate": aggregate})
    props.write_text(json.dumps(doc))
    keys = [k for k in (f"key-{i:05d}" for i in range(200)) if sb.table.home_of(k) == "eu-west-1"][:6]
    rng = random.Random(seed)
    evs = [e for e in events("us-east-1", 40_000, 200, seed=seed) if e.key in keys[1:]][:300]
    hot = [type(e)(f"hot-{seed}-{i:04d}", keys[0], e.ts, e.origin, payload={}) for i, e in enumerate(evs)]
    evs = evs + hot
    rng.shuffle(evs)
    assert len(evs) == 600
    # Re-number per key in produce order: that is the order the home region must see.
    counters = defaultdict(int)
    renum = []
    for e in evs:
        counters[e.key] += 1
        renum.append(type(e)(e.event_id, e.key, e.ts, e.origin, payload={"seq": counters[e.key]}))
    # Produced in waves while the job runs, so the forwards take many PutRecords calls (an
    # aggregating sink would otherwise move all 600 records in a handful and meet few faults).
    waves = [renum[i:i + 20] for i in range(0, len(renum), 20)]
    put(sb.settings, "us-east-1", [(e.key, e.to_json().encode()) for e in waves[0]])
    ids = {e.event_id for e in renum}
    with FaultProxy(PROXY_PORT, sb.settings.aws.endpoint, sb.settings.streams.forward) as proxy:
        job = start_job("us-east-1", props, tmp_path / f"logs-{name}")
        try:
            first = {e.event_id for e in waves[0]}
            wait_until(lambda: sum(len(v) for v in _inversions(sb, first)[2].values()) > 0, 240, 1.0, [job],
                       f"first forwards ({name})")
            for wave in waves[1:]:
                put(sb.settings, "us-east-1", [(e.key, e.to_json().encode()) for e in wave])
                time.sleep(0.3)
            def forwarded():
                inv, n, by_key = _inversions(sb, ids)
                return (inv, n, by_key) if sum(len(v) for v in by_key.values()) >= len(ids) else None
            inv, n, by_key = wait_until(forwarded, 240, 2.0, [job], f"forwarded records ({name})")
        finally:
            job.stop()
        return inv, n, by_key, dict(proxy.stats)


def _aggregates(sb) -> int:
    """Kinesis records in eu-west-1's forward stream that are KPL aggregates."""
    stored = read_stored(sb.settings, "eu-west-1", sb.settings.streams.forward, deaggregate=False)
    return sum(1 for r in stored if kpl.deaggregate(r["data"]) is not None)


def test_forward_keeps_per_key_order_under_partial_failures_and_throttling(tmp_path):
    sb = Sandbox(tmp_path, 4594, ["us-east-1", "eu-west-1"]).up()
    try:
        inv, n, by_key, stats = _run(sb, tmp_path, "key", seed=811)
        aggregated = _aggregates(sb)
        print(f"\nkey-ordered sink, aggregating: {n} records in {aggregated} aggregates, {inv} inversions, "
              f"proxy {stats}")
        assert aggregated > 0  # the hot key did travel in KPL aggregates
        # Kinesis records failed inside PutRecords (an aggregate counts once): the reordering hazard.
        # Throttled calls are printed, not required: at ~10 % of a few dozen calls they may not occur.
        assert stats["failed_records"] > 20, stats
        assert inv == 0, {k: v for k, v in by_key.items() if v != sorted(v)}
        for seqs in by_key.values():
            assert seqs == list(range(1, len(seqs) + 1)), seqs  # complete and in order

        inv_stock, n_stock, _, stats_stock = _run(sb, tmp_path, "none", seed=812)
        print(f"stock sink (control): {n_stock} records, {inv_stock} inversions, proxy {stats_stock}")
        assert stats_stock["failed_records"] > 20
        assert inv_stock > 0, "the control should reorder under partial failures; the test cannot fail otherwise"
    finally:
        sb.down()

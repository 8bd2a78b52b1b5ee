"""Forward throughput of ONE hot key through the key-ordered Kinesis sink (issue 10, item 3).

Each variant gets a fresh two-region sandbox: N events of a single key whose home is eu-west-1
are put into us-east-1's ingest stream while no job runs, then us-east-1's job forwards them to
eu-west-1's forward stream through a fault-injecting proxy (partial PutRecords failures and
throttled calls, as tests/e2e/test_forward_order.py). Variants, in one run:

* **aggregate off**: the key-ordered sink as before (one record of a key per PutRecords);
* **aggregate on**: a key's consecutive records packed into one KPL aggregated record.

Forward rate = events / (last - first arrival in the forward stream), from the emulator's
arrival timestamps; every run is checked with an independent read of the forward stream (AWS's
aws-kinesis-agg de-aggregates it): all N event_ids exactly once, per-key sequence 1..N in order.
Also printed: Kinesis records written (PUT payload units scale with them) and the proxy's faults.

    .venv/bin/python scripts/bench_hot_key.py [--events 20000] [--events-off 1000] [--faults on|off] \
        [--variants off,on]
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aws_kinesis_agg.deaggregator import deaggregate_records  # noqa: E402

from connectors.producer import put  # noqa: E402
from connectors.stream_reader import read_stream  # noqa: E402
from sandbox.jobrunner import start_job, wait_until  # noqa: E402
from sandbox.local_cluster import Sandbox, write_properties  # noqa: E402
from tests.fault_proxy import FaultProxy  # noqa: E402
from udfs.envelope import Envelope  # noqa: E402

SENDER, HOME = "us-east-1", "eu-west-1"


def independent_members(settings) -> list[tuple[float, dict]]:
    """(arrival s, envelope) of every member in HOME's forward stream, de-aggregated by aws-kinesis-agg."""
    out = []
    for r in read_stream(settings, HOME, settings.streams.forward, deaggregate=False):
        event = {"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": r["key"], "sequenceNumber": r["seq"],
                             "approximateArrivalTimestamp": 0, "data": base64.b64encode(r["data"]).decode()}}
        for m in deaggregate_records([event]):
            out.append((r["arrived"].timestamp(), json.loads(base64.b64decode(m["kinesis"]["data"]))))
    return out


def run(variant: str, n: int, faults: bool, port: int, tmp: Path) -> dict:
    sb = Sandbox(tmp, port, [SENDER, HOME]).up()
    try:
        key = next(k for k in (f"hot-{i}" for i in range(1000)) if sb.table.home_of(k) == HOME)
        now = int(time.time() * 1000)
        evs = [Envelope(event_id=f"hot-{variant}-{i:07d}", key=key, ts=now + i, origin=SENDER,
                        payload={"seq": i + 1}) for i in range(n)]
        put(sb.settings, SENDER, [(e.key, e.to_json().encode()) for e in evs])
        proxy_port = port + 1
        props = write_properties(tmp / "job.json", proxy_port if faults else port)
        doc = json.loads(props.read_text())
        for g in doc:
            if g["PropertyGroupId"] == "homeflow.streams":
                g["PropertyMap"]["forward.aggregate"] = variant
        props.write_text(json.dumps(doc))
        with FaultProxy(proxy_port, sb.settings.aws.endpoint, sb.settings.streams.forward) as proxy:
            t0 = time.monotonic()
            job = start_job(SENDER, props, tmp / "logs")
            try:
                def done():
                    got = read_stream(sb.settings, HOME, sb.settings.streams.forward)
                    print(f"  [{variant}] {len(got):,}/{n:,} forwarded, {time.monotonic() - t0:.0f} s", flush=True)
                    return got if len({json.loads(g["data"])["event_id"] for g in got}) >= n else None
                wait_until(done, 900, 3.0, [job], f"{n} forwarded records ({variant})")
                wall = time.monotonic() - t0
            finally:
                job.stop()
            stats = dict(proxy.stats)
        members = independent_members(sb.settings)
        stored = len(read_stream(sb.settings, HOME, sb.settings.streams.forward, deaggregate=False))
    finally:
        sb.down()
    first_seen, seqs = {}, []
    for at, env in members:
        if env["event_id"] not in first_seen:
            first_seen[env["event_id"]] = at
            seqs.append(env["payload"]["seq"])
    assert set(first_seen) == {e.event_id for e in evs}, "forwarded set differs from the sent set"
    inversions = sum(1 for a, b in zip(seqs, seqs[1:]) if b < a)
    times = sorted(first_seen.values())
    span = max(times[-1] - times[0], 1e-3)
    return {"variant": variant, "events": n, "records_per_s": n / span, "span_s": span, "wall_s": wall,
            "kinesis_records": stored, "members_read": len(members), "duplicates": len(members) - n,
            "inversions": inversions, "in_order": seqs == sorted(seqs), **stats}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--events-off", type=int, default=1_000,
                    help="events for aggregate=off (it moves one record per round trip)")
    ap.add_argument("--faults", choices=["on", "off"], default="on")
    ap.add_argument("--variants", default="off,on", help="forward.aggregate values to run, in order")
    ap.add_argument("--port", type=int, default=4610)
    a = ap.parse_args()
    rows = []
    for i, variant in enumerate(a.variants.split(",")):
        with tempfile.TemporaryDirectory(prefix=f"bench-hot-{variant}-") as d:
            n = a.events_off if variant == "off" else a.events
            print(f"variant aggregate={variant}: {n:,} events of one key, faults {a.faults}", flush=True)
            rows.append(run(variant, n, a.faults == "on", a.port + 10 * i, Path(d)))
    print(f"\n{'aggregate':>9} {'events':>7} {'rec/s':>8} {'span s':>7} {'wall s':>7} {'kinesis recs':>12} "
          f"{'dups':>5} {'inversions':>10} {'failed recs':>11} {'throttled':>9}")
    for r in rows:
        print(f"{r['variant']:>9} {r['events']:>7,} {r['records_per_s']:>8,.0f} {r['span_s']:>7.1f} {r['wall_s']:>7.1f} "
              f"{r['kinesis_records']:>12,} {r['duplicates']:>5} {r['inversions']:>10} {r['failed_records']:>11,} "
              f"{r['throttled_calls']:>9}")
    if len(rows) == 2:
        print(f"\nratio on/off: {rows[1]['records_per_s'] / rows[0]['records_per_s']:.1f}x records/s, "
              f"events per Kinesis record {rows[0]['events'] / max(rows[0]['kinesis_records'], 1):.1f} -> "
              f"{rows[1]['events'] / max(rows[1]['kinesis_records'], 1):.0f}")
    return 0 if all(r["inversions"] == 0 and r["in_order"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

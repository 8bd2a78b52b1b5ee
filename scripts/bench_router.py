"""Router benchmark: the job's keying and router operator (parse, dedup, route) on the Flink
minicluster with generated input and discarding sinks (no emulators), next to a bare PyFlink
keyed pass-through (Python key_by + ValueState + emit), in the same run, for THREAD and PROCESS
execution modes. The router's stream is keyed in Java from the key the source schema extracts,
as in the job; the baseline uses PyFlink's ordinary Python key_by.

    .venv/bin/python scripts/bench_router.py [--records 100000] [--repeat 3] [--modes thread,process]

Throughput is measured at the sink between its first and last record (job start-up excluded);
latency is sink time minus generation time, at full speed (so it includes queueing under
backpressure) and, with --rate, at a fixed load.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REGIONS = ("us-east-1", "eu-west-1")


def router_settings() -> dict:
    """The job's settings groups for the router alone: no lake seed, no sandbox (its acks to
    DynamoDB go to a closed port from a background thread and are dropped)."""
    return {"homeflow.job": {"region": REGIONS[0], "regions": ",".join(REGIONS), "dedup.seed": "none"},
            "homeflow.aws": {"endpoint": "http://127.0.0.1:9", "access.key.id": "x", "secret.access.key": "x"}}


def run_one(kind: str, mode: str, records: int, keys: int, rate: float, out: str) -> None:
    os.environ.setdefault("FLINK_LOG_DIR", tempfile.mkdtemp(prefix="bench-flink-logs-"))
    from jobs.ingest import _export_python_path
    _export_python_path()
    from pyflink.common import Configuration, Row, Types, WatermarkStrategy
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.datastream.connectors import Sink, Source
    from pyflink.datastream.functions import KeyedProcessFunction
    from pyflink.datastream.state import ValueStateDescriptor
    from pyflink.java_gateway import get_gateway

    conf = Configuration()
    conf.set_string("pipeline.jars", (ROOT / "target" / "homeflow-connectors.jar").as_uri())
    conf.set_string("python.execution-mode", mode)
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(1)
    jvm = get_gateway().jvm
    from connectors.kinesis import KEYED_SOURCE_ROW
    ratelimit = jvm.org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy
    gen = jvm.org.apache.flink.connector.datagen.source.DataGeneratorSource(
        jvm.dev.homeflow.bench.EnvelopeGenerator(keys, REGIONS[0]), records,
        ratelimit.perSecond(rate) if rate else ratelimit.noOp(),
        jvm.dev.homeflow.flink.KeyedKinesisRecordSchema.TYPE)
    src = env.from_source(Source(gen), WatermarkStrategy.no_watermarks(), "gen", type_info=KEYED_SOURCE_ROW)

    def latency_sink(ts_field: int) -> Sink:
        return Sink(jvm.dev.homeflow.bench.LatencySink(ts_field, out))

    if kind == "baseline":
        class PassThrough(KeyedProcessFunction):
            def open(self, ctx):
                self.count = ctx.get_state(ValueStateDescriptor("count", Types.LONG()))

            def process_element(self, r, ctx):
                self.count.update((self.count.value() or 0) + 1)
                yield Row(ctx.get_current_key(), int(r[1][1]))

        (src.key_by(lambda r: r[0], key_type=Types.STRING())
            .process(PassThrough(), output_type=Types.ROW([Types.STRING(), Types.LONG()]))
            .sink_to(latency_sink(1)))
    else:
        from conf.settings import settings_from_groups
        from jobs import rows
        from jobs.graph import route, split_router_output
        from udfs.routing_table import RegionEntry, RoutingTable
        # Every key homed here, so every record reaches the measured lake output.
        table = RoutingTable(1, {REGIONS[0]: RegionEntry(1), REGIONS[1]: RegionEntry(1, "DOWN")})
        tables = env.from_collection([table.to_json()], type_info=Types.STRING())
        doc = router_settings()
        homed, side = split_router_output(route(src, tables, settings_from_groups(doc), doc))
        homed.sink_to(latency_sink(3))
        discard = jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink
        side(REGIONS[1]).sink_to(Sink(discard()))
        side(rows.DEAD_LETTER_DEST).sink_to(Sink(discard()))
    env.execute(f"bench-{kind}-{mode}")


def measure(kind: str, mode: str, records: int, keys: int, rate: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lat.txt"
        argv = [sys.executable, __file__, "--one", kind, "--modes", mode, "--records", str(records),
                "--keys", str(keys), "--rate", str(rate), "--out", str(out)]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
        if r.returncode != 0 or not out.exists():
            raise SystemExit(f"{kind}/{mode} failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
        n, first, last, p50, p95, p99, mx = map(int, out.read_text().split()[:7])
    if n != records:
        raise SystemExit(f"{kind}/{mode}: sink saw {n} records, expected {records}")
    return {"rps": n / max((last - first) / 1000, 1e-3), "p50": p50, "p95": p95, "p99": p99, "max": mx}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--keys", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--modes", default="thread,process")
    p.add_argument("--rate", type=float, default=0, help="records/s for a fixed-load latency run (0 = full speed)")
    p.add_argument("--one", choices=["baseline", "router"], help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        run_one(a.one, a.modes, a.records, a.keys, a.rate, a.out)
        return 0
    results: dict = {}
    for mode in a.modes.split(","):
        for i in range(a.repeat):
            for kind in ("baseline", "router"):  # interleaved, so drift hits both alike
                m = measure(kind, mode, a.records, a.keys, a.rate)
                results.setdefault((mode, kind), []).append(m)
                print(f"{mode:8} {kind:9} run {i + 1}: {m['rps']:8.0f} rec/s  latency ms p50 {m['p50']} "
                      f"p95 {m['p95']} p99 {m['p99']} max {m['max']}", flush=True)
    print(f"\n{a.records} records, {a.keys} keys, parallelism 1, rate {'max' if not a.rate else a.rate}; medians of {a.repeat}")
    print(f"{'mode':8} {'baseline rec/s':>15} {'router rec/s':>13} {'ratio':>6}   router latency ms p50/p95/p99")
    for mode in a.modes.split(","):
        b = statistics.median(m["rps"] for m in results[(mode, "baseline")])
        r = statistics.median(m["rps"] for m in results[(mode, "router")])
        lat = [statistics.median(m[k] for m in results[(mode, "router")]) for k in ("p50", "p95", "p99")]
        print(f"{mode:8} {b:15.0f} {r:13.0f} {r / b:6.2f}   {lat[0]:.0f}/{lat[1]:.0f}/{lat[2]:.0f}")
    print(json.dumps({f"{m}/{k}": v for (m, k), v in results.items()}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

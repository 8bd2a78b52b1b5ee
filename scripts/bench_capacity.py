"""Capacity of the whole regional job against what a user would write instead (issue 10, item 1).

For each key distribution (uniform; zipf with one key carrying ~10 %) and each parallelism:
the ingest stream is pre-filled with N events while no job runs, then

* **bare reader**: one Python GetRecords loop over every shard, discarding: the emulator's own
  read ceiling for a single reader;
* **homeflow**: the regional job (`python -m jobs.ingest`, THREAD mode, every key homed here:
  parse, dedup, route, hand-off state, Iceberg sink with the DynamoDB pointer commit);
* **java-only**: `dev.homeflow.bench.JavaOnlyPipeline`, the same Kinesis source and record
  schema, keyed by business key, dedup by event_id, the same Iceberg sink, catalog and columns,
  no Python and no routing (a second region's stream and table hold its copy of the same bytes).

Drain rate = events committed after the first commit / (last commit - first commit), from the
snapshots' own timestamps, so JVM and Python start-up are reported apart ("start -> first
commit"). CPU s per 1k events = the job's process-group CPU time over the same window, and of it
the JVMs' JIT compiler threads. `--warm` measures over the second half of twice the events, after
the JVMs compiled their hot code (the first half's figures printed too). Every run
is checked: exactly N distinct event_ids committed, none twice. Then a profile of the Python
router logic alone (udfs.handoff.KeyRouter over the same records, cProfile) says how much of
homeflow's per-event cost is the Python operator.

    .venv/bin/python scripts/bench_capacity.py [--events 200000] [--keys 1000] \
        [--skews uniform,zipf] [--parallelism 1,2] [--repeat 1] [--warm]

Run after scripts/bootstrap.sh; uses its own sandbox port (4597) and stops everything it starts.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import statistics
from collections import Counter
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors import aws, lake  # noqa: E402
from connectors.producer import put  # noqa: E402
from sandbox.jobrunner import JobProcess, start_job  # noqa: E402
from sandbox.local_cluster import Sandbox  # noqa: E402
from sandbox.paths import JAR as DEFAULT_JAR  # noqa: E402
from udfs.envelope import Envelope  # noqa: E402

FLOOR_LEVELS = ("emit", "dedup", "state3", "batched")  # scripts/capacity_floor_job.py LEVELS
HOME, JAVA_REGION = "us-east-1", "eu-west-1"  # homeflow reads HOME; the Java pipeline JAVA_REGION
CLK = os.sysconf("SC_CLK_TCK")


def zipf_keys(keys: int, top_share: float = 0.10) -> list[float]:
    """Zipf weights over `keys` ranks with the exponent that gives the top key `top_share`."""
    lo, hi = 0.0, 3.0
    for _ in range(60):
        s = (lo + hi) / 2
        w = [1 / (r ** s) for r in range(1, keys + 1)]
        if w[0] / sum(w) < top_share:
            lo = s
        else:
            hi = s
    return w


def make_events(n: int, keys: int, skew: str, seed: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    names = [f"key-{i:05d}" for i in range(keys)]
    chosen = (rng.choices(names, weights=zipf_keys(keys), k=n) if skew == "zipf"
              else [names[rng.randrange(keys)] for _ in range(n)])
    now = int(time.time() * 1000)
    seq: dict[str, int] = {}
    out = []
    for i, key in enumerate(chosen):
        seq[key] = seq.get(key, 0) + 1
        e = Envelope(f"cap-{seed}-{i:08d}", key, now + i, HOME, payload={"seq": seq[key], "amount": i % 10_000})
        out.append((key, e.to_json().encode()))
    return out


def group_cpu_s(pgid: int) -> tuple[float, float]:
    """User + system CPU seconds of every live process in the process group, and of those the
    JVMs' JIT compiler threads (live ones: a compiler thread the JVM retired takes its share
    with it, so the JIT figure is a lower bound)."""
    total = jit = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 (pgrp), counted after the command name
            total += int(fields[11]) + int(fields[12])
            jit += _jit_ticks(pid)
    return total / CLK, jit / CLK


def _jit_ticks(pid: str) -> int:
    ticks = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            comm, rest = Path(f"/proc/{pid}/task/{tid}/stat").read_text().split("(", 1)[1].rsplit(")", 1)
        except (OSError, ValueError):
            continue
        if comm.startswith(("C1 CompilerThre", "C2 CompilerThre")):
            f = rest.split()
            ticks += int(f[11]) + int(f[12])
    return ticks


def bare_read(settings, region: str) -> tuple[int, float]:
    kin = aws.client("kinesis", region, settings.aws)
    stream = settings.streams.ingest
    t0, n = time.monotonic(), 0
    for shard in kin.list_shards(StreamName=stream)["Shards"]:
        it = kin.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            r = kin.get_records(ShardIterator=it, Limit=10_000)
            if not r["Records"]:  # the stream was filled before: empty means the end
                break
            n += len(r["Records"])
            it = r.get("NextShardIterator")
    return n, time.monotonic() - t0


def snapshots(settings, region: str) -> list[tuple[int, int]]:
    """(commit time ms, total records) of every snapshot of the region's table, oldest first."""
    t = lake.load_table(settings, region)
    if t is None:
        return []
    return sorted((s.timestamp_ms, int(s.summary.additional_properties.get("total-records", 0)))
                  for s in t.metadata.snapshots if s.summary)


def drain(name: str, proc: JobProcess, settings, region: str, n: int, timeout: float, warm: int = 0) -> dict:
    """Wait until the table holds n rows; the job's CPU from its first commit to the last. With
    `warm`, the figures are of the rows after the first `warm` (the JVM compiled the hot code on
    those), and the whole drain's are kept under "cold"."""
    t_start = time.time() * 1000
    samples: list[tuple[int, float, float]] = []  # (rows committed, CPU s, JIT CPU s) per poll
    deadline = time.monotonic() + timeout
    last_total = -1
    while True:
        if not proc.alive():
            raise SystemExit(f"{name} exited early:\n{proc.tail(40)}")
        snaps = snapshots(settings, region)
        total = snaps[-1][1] if snaps else 0
        if total > 0:
            samples.append((total, *group_cpu_s(proc.proc.pid)))
        if total != last_total:
            print(f"  {name}: {total:,}/{n:,} committed", flush=True)
            last_total = total
        if total >= n:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: {total} of {n} committed after {timeout:.0f}s\n{proc.tail(40)}")
        time.sleep(0.5)
    proc.stop()
    table = lake.read_rows(settings, region, ("event_id", "held_ms")).to_pydict()
    mine = [r for r in table["event_id"] if r.startswith("cap-")]
    held = sorted(h for e, h in zip(table["event_id"], table["held_ms"]) if e.startswith("cap-") and h is not None)
    if len(mine) != n or len(set(mine)) != n:
        raise SystemExit(f"{name}: {len(set(mine))} distinct of {n} events, {len(mine) - len(set(mine))} duplicated")
    pct = (lambda q: held[min(len(held) - 1, int(q * len(held)))] if held else None)
    out = {"held_ms_p50": pct(0.5), "held_ms_p99": pct(0.99), **_window(snaps, samples, 1, n, t_start)}
    if warm:
        out = {**out, **_window(snaps, samples, warm, n, t_start), "cold": out}
    return out


def _window(snaps, samples, lo: int, hi: int, t_start: float) -> dict:
    """Rate and CPU per 1k events between the first commit holding row `lo` and the one holding `hi`."""
    first = next(s for s in snaps if s[1] >= lo)
    last = next(s for s in snaps if s[1] >= hi)
    c0 = next(c for c in samples if c[0] >= lo)
    c1 = next(c for c in samples if c[0] >= hi)
    span = max(last[0] - first[0], 1) / 1000
    # The first 10 s after the first commit apart: a job that holds records at start (no routing
    # table yet) drains slower there than later.
    early = max((s for s in snaps if s[0] <= first[0] + 10_000), default=first)
    per_1k = max((hi - c0[0]) / 1000, 1e-9)
    return {"rate": (last[1] - first[1]) / span, "rate_first_10s": (early[1] - first[1]) / 10,
            "start_to_first_s": (first[0] - t_start) / 1000, "start_to_all_s": (last[0] - t_start) / 1000,
            "cpu_per_1k": (c1[1] - c0[1]) / per_1k, "jit_cpu_per_1k": (c1[2] - c0[2]) / per_1k}


def java_classpath() -> str:
    import pyflink
    lib = Path(pyflink.__file__).parent / "lib"
    return os.pathsep.join([str(DEFAULT_JAR), *(str(p) for p in sorted(lib.glob("*.jar")))])


def java_opts() -> list[str]:
    """The JVM options PyFlink starts its own JVM with (module opens Flink needs on Java 17)."""
    import pyflink
    conf = (Path(pyflink.__file__).parent / "conf" / "config.yaml").read_text()
    for line in conf.splitlines():
        if line.strip().startswith("all:") and "--add-opens" in line:
            return line.split("all:", 1)[1].split()
    return []


def start_java(settings, region: str, parallelism: int, log_dir: Path) -> JobProcess:
    a = settings.aws
    argv = ["java", *java_opts(), "-cp", java_classpath(), "dev.homeflow.bench.JavaOnlyPipeline",
            "--region", region, "--stream-arn", f"arn:aws:kinesis:{region}:{a.account_id}:stream/{settings.streams.ingest}",
            "--endpoint", a.endpoint, "--access-key", a.access_key_id, "--secret-key", a.secret_access_key,
            "--catalog-table", settings.lake.catalog_table, "--warehouse", settings.lake.warehouse(region),
            "--table", f"{settings.lake.namespace}.{settings.lake.table_name(region)}",
            "--checkpoint-ms", str(settings.job.checkpoint_interval_ms), "--parallelism", str(parallelism),
            "--checkpoint-dir", (log_dir.parent / "checkpoints-java").as_uri()]
    import pyflink
    log_conf = Path(pyflink.__file__).parent / "conf" / "log4j-console.properties"
    argv[1:1] = ["-Daws.cborEnabled=false",  # the Kinesis emulator speaks JSON, as for the job's JVM
                 f"-Dlog4j.configurationFile={log_conf.as_uri()}", f"-Dlog.file={log_dir / 'java-flink.log'}"]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=a.access_key_id, AWS_SECRET_ACCESS_KEY=a.secret_access_key,
               AWS_CBOR_DISABLE="true")
    log = log_dir / f"java-{region}.out"
    proc = subprocess.Popen(argv, stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    return JobProcess(region, proc, log)


def profile_router(settings, recs: list[tuple[str, bytes]], table) -> tuple[float, str]:
    """The Python router logic alone over the same records: µs per record and the top functions."""
    from udfs.handoff import Held, KeyRouter, KeyState
    from udfs.routing_table import TableHistory
    router = KeyRouter(HOME, settings.job.regions, settings.job.max_hops, settings.job.max_record_bytes)
    tables = TableHistory([table])
    keys: dict[str, KeyState] = {}
    now = int(time.time() * 1000)

    def run():
        for i, (k, raw) in enumerate(recs):
            ks = keys.get(k) or keys.setdefault(k, KeyState())
            router.on_item(ks, tables, Held(raw, f"homeflow-ingest/shard-0/{i}", now, None,
                                            f"{HOME}/shardId-000000000000/{i}", now), now)
    prof = cProfile.Profile()
    t0 = time.process_time()
    prof.runcall(run)
    cpu = time.process_time() - t0
    keys.clear()
    t0 = time.process_time()
    run()  # again without the profiler, for the µs figure
    us = (time.process_time() - t0) / len(recs) * 1e6
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(8)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
    return us, "\n".join(lines[start:start + 9]) + f"\n(profiled run: {cpu:.1f} CPU s)"


def one_round(a, skew: str, parallelism: int, port: int, tmp: Path, seed: int) -> dict:
    print(f"\n== {skew} keys, parallelism {parallelism}: pre-filling {a.events:,} events ...", flush=True)
    recs = make_events(a.events, a.keys, skew, seed)
    top = max(Counter(k for k, _ in recs).values()) / len(recs)
    fill = recs + make_events(a.events, a.keys, skew, seed + 5000) if a.warm else recs
    root = tmp / f"{skew}-p{parallelism}-{seed}"
    # No replicators and no read publisher: per-tick work that the Java pipeline does not do and
    # that would take CPU from both pipelines on a 2-core machine.
    sb = Sandbox(root, port, [HOME], replicate=False, **{"read.publish.interval.ms": "0"}).up()
    s = sb.settings
    out = {"skew": skew, "parallelism": parallelism, "top_key_share": top}
    try:
        t0 = time.monotonic()
        put(s, HOME, fill)
        out["emulator_put_rate"] = len(fill) / (time.monotonic() - t0)
        put(s, JAVA_REGION, fill)
        n, secs = bare_read(s, HOME)
        assert n == len(fill), f"bare reader saw {n} of {len(fill)}"
        out["bare"] = {"rate": n / secs}
        print(f"  emulator: put {out['emulator_put_rate']:,.0f}/s, bare read {n / secs:,.0f}/s", flush=True)
        job = start_job(HOME, sb.properties, root / "logs", extra_args=["--parallelism", str(parallelism)])
        warm = len(recs) if a.warm else 0
        out["homeflow"] = drain("homeflow", job, s, HOME, len(fill), a.timeout, warm)
        java = start_java(s, JAVA_REGION, parallelism, root / "logs")
        out["java"] = drain("java-only", java, s, JAVA_REGION, len(fill), a.timeout, warm)
        if a.profile and parallelism == 1:
            sample = recs[: min(len(recs), 50_000)]
            out["router_us"], out["profile"] = profile_router(s, sample, sb.table)
    finally:
        sb.down()
    for level in a.floor:
        out[f"floor-{level}"] = variant_round(a, f"floor {level}", recs, parallelism, port, root / f"floor-{level}",
                                              script=["--level", level])
    if a.baseline_checkout:
        out["baseline"] = variant_round(a, f"homeflow at {a.baseline_checkout.name}", recs, parallelism, port,
                                        root / "baseline", cwd=a.baseline_checkout)
    for n, ms in a.batch:
        out[f"batch-{n}/{ms}"] = variant_round(a, f"homeflow, batches of {n} records or {ms} ms", recs, parallelism,
                                               port, root / f"batch-{n}-{ms}",
                                               overrides={"batch.max.records": str(n), "batch.max.ms": str(ms)})
    for name, kv in a.setting:
        out[f"setting-{name}"] = variant_round(a, f"homeflow with {name}", recs, parallelism, port,
                                               root / f"setting-{len(out)}", overrides=kv)
    return out


def variant_round(a, name: str, recs, parallelism: int, port: int, root: Path, script: list[str] | None = None,
                  overrides: dict[str, str] | None = None, cwd: Path = ROOT) -> dict:
    """The same drain in a fresh sandbox, with the router replaced (scripts/capacity_floor_job.py)
    or with other job settings."""
    print(f"  {name}: pre-filling {len(recs):,} events ...", flush=True)
    sb = Sandbox(root, port, [HOME], replicate=False, **{"read.publish.interval.ms": "0", **(overrides or {})}).up()
    try:
        put(sb.settings, HOME, recs)
        job = start_job(HOME, sb.properties, root / "logs", extra_args=["--parallelism", str(parallelism)],
                        module_or_script=[str(ROOT / "scripts" / "capacity_floor_job.py"), *script] if script else None,
                        cwd=cwd)
        return drain(name, job, sb.settings, HOME, len(recs), a.timeout)
    finally:
        sb.down()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--skews", default="uniform,zipf")
    ap.add_argument("--parallelism", default="1")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=900, help="seconds one pipeline may take to drain")
    ap.add_argument("--port", type=int, default=4597)
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--warm", action="store_true",
                    help="pre-fill twice the events and measure homeflow and Java-only over the second half, "
                         "after the JVM compiled the hot code on the first (the first half's figures are "
                         "printed too)")
    ap.add_argument("--floor", default="",
                    help=f"also drain with the router replaced by less (comma list of {', '.join(FLOOR_LEVELS)}: "
                         "scripts/capacity_floor_job.py), to show what PyFlink itself costs")
    ap.add_argument("--batch", default="",
                    help="also drain homeflow with these batch bounds (comma list of batch.max.records, each "
                         "optionally /batch.max.ms, e.g. 1,32,256,2048 or 256/50,2048/500; ms defaults to 50): "
                         "events/s, CPU and the rows' held_ms (arrival at the router to routed)")
    ap.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE[;KEY=VALUE]",
                    help="also drain homeflow with these homeflow.job settings (repeatable: one drain each, e.g. "
                         "--setting max.parallelism=16)")
    ap.add_argument("--baseline-checkout", type=Path,
                    help="also drain with the job of another checkout (e.g. a git worktree of the previous "
                         "release, its jar built): before/after in the same rounds")
    a = ap.parse_args()
    a.floor = [x for x in a.floor.split(",") if x]
    try:
        a.batch = [(int(n), int(ms or 50)) for n, _, ms in (x.partition("/") for x in a.batch.split(",") if x)]
    except ValueError:
        ap.error(f"--batch: expected records[/ms],... (e.g. 256/50,2048/500), got {a.batch!r}")
    try:
        a.setting = [(x, dict(kv.split("=", 1) for kv in x.split(";"))) for x in a.setting]
    except ValueError:
        ap.error(f"--setting: expected KEY=VALUE[;KEY=VALUE], got {a.setting!r}")
    bad = [x for x in a.floor if x not in FLOOR_LEVELS]
    if bad:
        ap.error(f"--floor: unknown level(s) {', '.join(bad)}; choose from {', '.join(FLOOR_LEVELS)}")
    if not DEFAULT_JAR.exists():
        print(f"error: {DEFAULT_JAR} missing: run scripts/bootstrap.sh", file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        for rep in range(a.repeat):
            for skew in a.skews.split(","):
                for p in (int(x) for x in a.parallelism.split(",")):
                    results.append(one_round(a, skew, p, a.port, Path(tmp), seed=1000 + rep))
    unmeasured = sorted({name for r in results for name, d in r.items()
                         if isinstance(d, dict) and d.get("rate") == 0})
    if unmeasured:
        # A drain that commits everything in one snapshot has no window to measure a rate over.
        print(json.dumps(results, default=str))
        print(f"error: {', '.join(unmeasured)} committed all {a.events:,} events in one snapshot, so no rate "
              "can be measured: use more --events (the rounds above used 200,000)", file=sys.stderr)
        return 2
    print(f"\nEvery round ({a.events:,} events; ratio = homeflow / Java-only of that round):")
    for r in results:
        line = f"  {r['skew']:8} p{r['parallelism']} homeflow {r['homeflow']['rate']:8,.0f}/s ({r['homeflow']['cpu_per_1k']:.2f} " \
               f"CPU s/1k)  java {r['java']['rate']:8,.0f}/s ({r['java']['cpu_per_1k']:.2f})  ratio " \
               f"{r['homeflow']['rate'] / r['java']['rate']:.2f}  CPU ratio {r['homeflow']['cpu_per_1k'] / r['java']['cpu_per_1k']:.2f}" \
               f"  JIT CPU s/1k {r['homeflow']['jit_cpu_per_1k']:.3f} / {r['java']['jit_cpu_per_1k']:.3f}"
        if "cold" in r["homeflow"]:
            hc, jc = r["homeflow"]["cold"], r["java"]["cold"]
            line += f"\n  {'':8}    cold (first half): homeflow {hc['rate']:,.0f}/s ({hc['cpu_per_1k']:.3f}, JIT " \
                    f"{hc['jit_cpu_per_1k']:.3f})  java {jc['rate']:,.0f}/s ({jc['cpu_per_1k']:.3f}, JIT " \
                    f"{jc['jit_cpu_per_1k']:.3f})  ratio {hc['rate'] / jc['rate']:.2f}  CPU ratio " \
                    f"{hc['cpu_per_1k'] / jc['cpu_per_1k']:.2f}"
        for level in a.floor:
            fr = r[f"floor-{level}"]
            line += f"  floor {level} {fr['rate']:,.0f}/s ({fr['cpu_per_1k']:.3f}, JIT {fr['jit_cpu_per_1k']:.3f})"
        for name, _ in a.setting:
            v = r[f"setting-{name}"]
            line += f"\n  {'':8}    {name}: {v['rate']:,.0f}/s ({v['cpu_per_1k']:.3f}, JIT {v['jit_cpu_per_1k']:.3f})  " \
                    f"ratio {v['rate'] / r['java']['rate']:.2f}  CPU ratio {v['cpu_per_1k'] / r['java']['cpu_per_1k']:.2f}"
        if "baseline" in r:
            line += f"  before {r['baseline']['rate']:,.0f}/s ({r['baseline']['cpu_per_1k']:.2f}) " \
                    f"ratio {r['baseline']['rate'] / r['java']['rate']:.2f}"
        print(line)
    print(f"\n{a.events:,} events, {a.keys} keys, {os.cpu_count()} cores; checkpoints 1 s; rates are medians of "
          f"{a.repeat} run(s), the ratio the median of the rounds' ratios"
          + ("; measured over the second half of twice as many events (warm JVMs)" if a.warm else "") + "\n")
    print(f"{'keys':8} {'p':>2} {'top key':>7} {'bare read/s':>11} {'homeflow/s':>10} {'java/s':>9} {'ratio':>6} "
          f"{'hf CPU s/1k':>11} {'java CPU s/1k':>13} {'hf start s':>10} {'java start s':>12} "
          f"{'hf first 10 s/s':>15} {'java first 10 s/s':>17}")
    for skew in a.skews.split(","):
        for p in (int(x) for x in a.parallelism.split(",")):
            rs = [r for r in results if r["skew"] == skew and r["parallelism"] == p]

            def med(f):
                return statistics.median(f(r) for r in rs)
            hf, jv = med(lambda r: r["homeflow"]["rate"]), med(lambda r: r["java"]["rate"])
            ratio = med(lambda r: r["homeflow"]["rate"] / r["java"]["rate"])
            print(f"{skew:8} {p:>2} {med(lambda r: r['top_key_share']):7.1%} {med(lambda r: r['bare']['rate']):11,.0f} "
                  f"{hf:10,.0f} {jv:9,.0f} {ratio:6.2f} {med(lambda r: r['homeflow']['cpu_per_1k']):11.2f} "
                  f"{med(lambda r: r['java']['cpu_per_1k']):13.2f} {med(lambda r: r['homeflow']['start_to_first_s']):10.1f} "
                  f"{med(lambda r: r['java']['start_to_first_s']):12.1f} "
                  f"{med(lambda r: r['homeflow']['rate_first_10s']):15,.0f} {med(lambda r: r['java']['rate_first_10s']):17,.0f}")
            print(f"{'':8} {'':>2} CPU ratio {med(lambda r: r['homeflow']['cpu_per_1k'] / r['java']['cpu_per_1k']):.2f}; "
                  f"JIT compiler threads {med(lambda r: r['homeflow']['jit_cpu_per_1k']):.3f} / "
                  f"{med(lambda r: r['java']['jit_cpu_per_1k']):.3f} CPU s/1k; without them "
                  f"{med(lambda r: r['homeflow']['cpu_per_1k'] - r['homeflow']['jit_cpu_per_1k']):.3f} / "
                  f"{med(lambda r: r['java']['cpu_per_1k'] - r['java']['jit_cpu_per_1k']):.3f}")
            for level in a.floor:
                fl = med(lambda r: r[f"floor-{level}"]["rate"])
                print(f"{'':8} {'':>2} {'':>7} {'floor ' + level:>11} {fl:10,.0f} {jv:9,.0f} {fl / jv:6.2f} "
                      f"{med(lambda r: r[f'floor-{level}']['cpu_per_1k']):11.2f}")
            for name, _ in a.setting:
                k = f"setting-{name}"
                print(f"{'':8} {'':>2} {name:>19} {med(lambda r: r[k]['rate']):10,.0f} {jv:9,.0f} "
                      f"{med(lambda r: r[k]['rate'] / r['java']['rate']):6.2f} {med(lambda r: r[k]['cpu_per_1k']):11.3f}"
                      f"  CPU ratio {med(lambda r: r[k]['cpu_per_1k'] / r['java']['cpu_per_1k']):.2f}")
            if a.batch:
                print(f"\n  batch.max.records/ms   events/s  CPU s/1k  held_ms p50  held_ms p99   ({skew}, p{p})")
                for n, ms in a.batch:
                    k = f"batch-{n}/{ms}"
                    print(f"  {f'{n}/{ms}':>20} {med(lambda r: r[k]['rate']):10,.0f} {med(lambda r: r[k]['cpu_per_1k']):9.2f} "
                          f"{med(lambda r: r[k]['held_ms_p50']):12.0f} {med(lambda r: r[k]['held_ms_p99']):12.0f}")
    prof = [r for r in results if "profile" in r]
    if prof:
        r = prof[0]
        hf_cpu_us = r["homeflow"]["cpu_per_1k"] * 1000
        print(f"\nPython router logic alone ({r['skew']} keys, no Flink): {r['router_us']:.0f} µs CPU per event, "
              f"of homeflow's {hf_cpu_us:.0f} µs CPU per event in the job ({r['router_us'] / hf_cpu_us:.0%})")
        print(r["profile"])
    print("\n" + json.dumps(results, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

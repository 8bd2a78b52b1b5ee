"""A start without state against a big lake: what the dedup seed costs in time and memory.

On one region's sandbox, `dev.homeflow.bench.LakeFill` commits N rows (random UUID event_ids, the
job's columns and statistics) into the home table. Then, each in a process of its own and on the
same data, side by side:

* **set** (the seed before 2026-12-04): every event_id of the home table read into one Python
  set, exactly as `connectors/lake_seed.py` did at `--baseline-rev` (loaded from git);
* **disk set** (today's): `lake_seed.committed_ids`, a DiskIdSet of 16 bytes an id on local disk.

Each prints its seconds, the process's peak resident memory (ru_maxrss: heap and mapped pages it
touched) and, for the disk set, its bytes on disk and the rate of `in` lookups (half members, half
not). With `--job`, the regional job is then started without state on the same lake, once with
`dedup.seed=lake` and once with `dedup.seed=none`, and the bench reports the time from the
process's start to its first routed record (a canary committed) and the JVM's peak RSS (VmHWM:
THREAD mode runs the Python router inside it).

    .venv/bin/python scripts/bench_seed.py [--ids 10000000] [--files 100] [--job] [--rounds 1]

Uses its own sandbox port (4593) and stops everything it starts.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REGION = "us-east-1"


def fill(sb, ids: int, files: int, log: Path) -> float:
    from scripts.bench_capacity import java_classpath, java_opts
    s, a = sb.settings, sb.settings.aws
    argv = ["java", *java_opts(), "-cp", java_classpath(), "dev.homeflow.bench.LakeFill", "--region", REGION,
            "--endpoint", a.endpoint, "--access-key", a.access_key_id, "--secret-key", a.secret_access_key,
            "--catalog-table", s.lake.catalog_table, "--warehouse", s.lake.warehouse(REGION),
            "--table", f"{s.lake.namespace}.{s.lake.table_name(REGION)}", "--ids", str(ids), "--files", str(files)]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=a.access_key_id, AWS_SECRET_ACCESS_KEY=a.secret_access_key)
    t0 = time.monotonic()
    with open(log, "wb") as out:
        subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=True)
    return time.monotonic() - t0


# ---------------------------------------------------------------- one measurement per process

def _child(kind: str, properties: str, baseline: str | None) -> None:
    from conf.settings import load
    settings = load(properties)
    t0 = time.monotonic()
    out: dict = {"kind": kind}
    if kind == "set":
        ns: dict = {}
        exec(compile(Path(baseline).read_text(), baseline, "exec"), ns)
        ids = ns["committed_event_ids"](settings, REGION, 0)
        out["ids"] = len(ids)
        out["seconds"] = time.monotonic() - t0
        probe = list(ids)[:50_000]
    else:
        from connectors import lake_seed
        ids, st = lake_seed.committed_ids(settings, REGION, 0, scope="home")
        out.update(ids=st.ids, seconds=time.monotonic() - t0, disk_mib=round(st.disk_bytes / 2**20, 1),
                   files=st.files)
        import pyarrow.parquet as pq  # members to look up: one data file's ids
        cut = lake_seed.table_cuts(settings, REGION, "home")[0]
        path = lake_seed.data_files(cut, 0)[0][0]
        import io
        probe = pq.read_table(io.BytesIO(cut.read(path)), columns=["event_id"])["event_id"].to_pylist()[:50_000]
    import uuid
    others = [str(uuid.uuid4()) for _ in probe]
    t1 = time.monotonic()
    hits = sum(1 for x in probe if x in ids) + sum(1 for x in others if x in ids)
    out["lookups_per_s"] = round(2 * len(probe) / (time.monotonic() - t1))
    out["lookup_hits"] = hits
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out), flush=True)


def measure(kind: str, properties: Path, baseline: Path | None) -> dict:
    argv = [sys.executable, __file__, "--child", kind, "--properties", str(properties)]
    if baseline:
        argv += ["--baseline-file", str(baseline)]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        return {"kind": kind, "error": (r.stderr or r.stdout).strip().splitlines()[-1:] or [f"exit {r.returncode}"],
                "exit": r.returncode}
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the job itself

def _jvm_hwm_mib(root_pid: int) -> float:
    """VmHWM of the biggest process in the job's process group (the minicluster JVM)."""
    best = 0.0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if os.getpgid(int(d.name)) != root_pid:
                continue
            for line in (d / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    best = max(best, int(line.split()[1]) / 1024)
        except (OSError, ProcessLookupError):
            continue
    return round(best, 1)


def job_start(sb, seed: str, work: Path, tag: str) -> dict:
    from sandbox.jobrunner import await_canaries, start_job
    from sandbox.local_cluster import with_job_overrides
    props = with_job_overrides(sb.properties, work / f"props-{tag}.json", **{"dedup.seed": seed})
    t0 = time.monotonic()
    job = start_job(REGION, props, work / f"logs-{tag}", extra_args=["--restore", "none"])
    try:
        await_canaries(sb.settings, sb.table, [REGION], [job], 900)
        took = time.monotonic() - t0
        hwm = _jvm_hwm_mib(job.proc.pid)
        # the Python router logs into the TaskManager's python log, not the job's stdout
        seeded = [ln for f in sorted((work / f"logs-{tag}").rglob("*.log"))
                  for ln in f.read_text(errors="replace").splitlines() if "dedup seed:" in ln]
    finally:
        job.stop()
    return {"seed": seed, "start_to_first_routed_s": round(took, 1), "jvm_peak_rss_mib": hwm,
            "seed_log": seeded[-1][-200:] if seeded else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", type=int, default=10_000_000, help="event_ids committed in the home table")
    ap.add_argument("--files", type=int, default=100, help="data files they are written in")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds of the two seeds")
    ap.add_argument("--job", action="store_true", help="also start the job without state, with and without the seed")
    ap.add_argument("--baseline-rev", default="72a1c64", help="git revision whose lake_seed.py is the 'set' baseline")
    ap.add_argument("--port", type=int, default=4593)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--properties", help=argparse.SUPPRESS)
    ap.add_argument("--baseline-file", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(a.child, a.properties, a.baseline_file)
        return 0

    from sandbox.local_cluster import Sandbox
    work = Path(tempfile.mkdtemp(prefix="bench-seed-"))
    try:
        old = subprocess.run(["git", "-C", str(ROOT), "show", f"{a.baseline_rev}:connectors/lake_seed.py"],
                             capture_output=True, text=True, check=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        print(f"error: cannot read connectors/lake_seed.py at {a.baseline_rev} from git: {e}", file=sys.stderr)
        return 2
    baseline = work / "lake_seed_baseline.py"
    baseline.write_text(old)
    sb = Sandbox(work / "sb", a.port, [REGION], replicate=False, **{"read.publish.interval.ms": "0"}).up()
    try:
        print(f"filling {REGION}'s table with {a.ids:,} rows in {a.files} files ...", flush=True)
        print(f"  filled in {fill(sb, a.ids, a.files, work / 'fill.log'):.0f} s", flush=True)
        results: dict[str, list[dict]] = {"set": [], "disk": []}
        for r in range(a.rounds):
            for kind in ("set", "disk") if r % 2 == 0 else ("disk", "set"):
                m = measure(kind, sb.properties, baseline if kind == "set" else None)
                results[kind].append(m)
                print(f"  round {r + 1} {kind:5s}: {json.dumps(m)}", flush=True)
        jobs = []
        if a.job:
            for seed in ("lake", "none"):
                j = job_start(sb, seed, work, seed)
                jobs.append(j)
                print(f"  job, dedup.seed={seed}: {json.dumps(j)}", flush=True)
        print("\nseed of a start without state, %s ids (medians of %d round(s)):" % (f"{a.ids:,}", a.rounds))
        print(f"{'seed':10s} {'seconds':>8s} {'peak RSS MiB':>13s} {'disk MiB':>9s} {'lookups/s':>10s}")
        for kind, ms in results.items():
            ok = [m for m in ms if "error" not in m]
            if not ok:
                print(f"{kind:10s} failed: {ms[0].get('error')} (exit {ms[0].get('exit')})")
                continue

            def med(k):
                vals = [m[k] for m in ok if k in m]
                return statistics.median(vals) if vals else None
            print(f"{kind:10s} {med('seconds'):8.1f} {med('peak_rss_mib'):13.0f} "
                  f"{(med('disk_mib') or 0):9.0f} {med('lookups_per_s'):10.0f}")
        for j in jobs:
            print(f"job with dedup.seed={j['seed']:5s}: first record routed {j['start_to_first_routed_s']} s after "
                  f"start, JVM peak RSS {j['jvm_peak_rss_mib']} MiB")
        return 0
    finally:
        sb.down()


if __name__ == "__main__":
    sys.exit(main())

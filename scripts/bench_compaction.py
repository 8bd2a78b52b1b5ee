"""Small files and snapshots with and without compaction and expiry inside the job (issue 10, item 6).

Each variant gets a fresh one-region sandbox (us-east-1, no replication) and the regional job at
1 s checkpoints; a producer puts a steady stream of events (--rate events/s, in two waves a
second) for --minutes. Variants: `off` (neither), `on` (compaction), `expire` (compaction and
snapshot expiry). Then, per variant: commits, rewrites by the job's compaction, data files in the
current snapshot, files per day partition, small-file ratio (files under 32 MiB), median file size,
snapshots kept, the metadata file's size (every commit rewrites it), data objects in the bucket,
the job's expiry runs and their time (from its log), and the job's CPU seconds (its whole process
group, JVM included). Every run is checked: every event_id produced is in the table exactly once.

    .venv/bin/python scripts/bench_compaction.py [--minutes 10] [--rate 100] [--variants off,on,expire]
        [--compact-commits 60] [--compact-min-interval-ms 60000]
        [--expire-older-than-ms 120000] [--expire-interval-ms 60000] [--expire-retain-last 10]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors import aws, lake, lake_seed, maintenance  # noqa: E402
from connectors.producer import events, put  # noqa: E402
from sandbox.jobrunner import start_job, wait_until  # noqa: E402
from sandbox.local_cluster import Sandbox  # noqa: E402

REGION = "us-east-1"
TICK = os.sysconf("SC_CLK_TCK")


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group `pgid`."""
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state ppid pgrp ... utime(11) stime(12)
            total += int(fields[11]) + int(fields[12])
    return total / TICK


EXPIRY_LINE = re.compile(r"expiry of \S+: (\d+) snapshots expired, (\d+) kept .*; (\d+) ms")


def data_objects(sb, table) -> int:
    return sum(1 for path, _ in maintenance.listed(sb.settings, REGION, table.metadata.location) if "/data/" in path)


def metadata_kib(sb, table) -> float:
    return len(lake_seed.read_object(aws.client("s3", REGION, sb.settings.aws), table.metadata_location)) / 1024


def run(variant: str, a, port: int, tmp: Path) -> dict:
    commits = a.compact_commits if variant in ("on", "expire") else 0
    expire = a.expire_older_than_ms if variant == "expire" else 0
    sb = Sandbox(tmp, port, [REGION], replicate=False,
                 lake={"compact.commits": str(commits), "compact.min.interval.ms": str(a.compact_min_interval_ms),
                       "expire.older.than.ms": str(expire), "expire.interval.ms": str(a.expire_interval_ms),
                       "expire.retain.last": str(a.expire_retain_last)},
                 **{"read.publish.interval.ms": "0"}).up()
    sent: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        wave, per_wave = 0, max(1, a.rate // 2)
        t0 = time.monotonic()
        while not stop.is_set():
            evs = list(events(REGION, per_wave, 200, seed=wave))
            put(sb.settings, REGION, [(e.key, e.to_json().encode()) for e in evs])
            sent.extend(e.event_id for e in evs)
            wave += 1
            time.sleep(max(0.0, t0 + wave * 0.5 - time.monotonic()))

    try:
        job = start_job(REGION, sb.properties, tmp / "logs")
        sb.jobs.append(job)
        wait_until(lambda: list((tmp / "checkpoints").glob("**/chk-*/_metadata")), 240, 1.0, [job],
                   "the job's first checkpoint")
        cpu0, t0 = group_cpu_s(job.proc.pid), time.monotonic()
        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        last_print = 0.0
        while time.monotonic() - t0 < a.minutes * 60:
            time.sleep(5)
            if time.monotonic() - last_print >= 60:
                last_print = time.monotonic()
                t = lake.load_table(sb.settings, REGION)
                st = maintenance.stats(t)
                print(f"  [{variant}] {int(time.monotonic() - t0)} s: {len(sent)} events sent; {st.line()}; "
                      f"{len(t.metadata.snapshots)} snapshots, metadata file {metadata_kib(sb, t):.0f} KiB", flush=True)
        stop.set()
        producer.join(30)
        ids = set(sent)
        wait_until(lambda: ids <= set(sb.lake_ids(REGION)), 300, 2.0, [job], "every event committed")
        cpu = group_cpu_s(job.proc.pid) - cpu0
        table = lake.load_table(sb.settings, REGION)
        rows = sb.lake_ids(REGION)
        assert len(rows) == len(ids) == len(sent), f"{variant}: {len(rows)} rows for {len(ids)} events"
        st = maintenance.stats(table)
        tasks = list(table.scan().plan_files())
        per_partition = Counter(repr(t.file.partition) for t in tasks)
        log = "\n".join(f.read_text(errors="replace") for f in (tmp / "logs").rglob("*.log"))
        rewrites = len(re.findall(r"compaction of \S+: \d+ files into", log))
        expiries = [int(m.group(3)) for m in EXPIRY_LINE.finditer(log)]
        # Expired snapshots are gone from the metadata: count commits by sequence number.
        return {"variant": variant, "events": len(ids), "commits": table.metadata.last_sequence_number - rewrites,
                "rewrites": rewrites, "files": st.data_files, "snapshots": len(table.metadata.snapshots),
                "metadata_kib": metadata_kib(sb, table), "objects": data_objects(sb, table),
                "expiries": len(expiries), "expiry_ms": (statistics.median(expiries), max(expiries)) if expiries else None,
                "max_per_partition": max(per_partition.values()) if per_partition else 0,
                "partitions": len(per_partition), "small_ratio": st.small_file_ratio,
                "median_kib": st.median_file_bytes / 1024, "cpu_s": cpu,
                "cpu_per_1k": cpu / len(ids) * 1000 if ids else 0.0}
    finally:
        stop.set()
        sb.down()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=100, help="events per second")
    p.add_argument("--variants", default="off,on")
    p.add_argument("--compact-commits", type=int, default=60)
    p.add_argument("--compact-min-interval-ms", type=int, default=60_000)
    p.add_argument("--expire-older-than-ms", type=int, default=120_000,
                   help="variant expire: the age (the job's default, 10 min, expires nothing in a 10-minute run)")
    p.add_argument("--expire-interval-ms", type=int, default=60_000)
    p.add_argument("--expire-retain-last", type=int, default=10)
    p.add_argument("--port", type=int, default=4583)
    a = p.parse_args()
    results = []
    for i, v in enumerate(a.variants.split(",")):
        print(f"variant {v}: {a.minutes} min at {a.rate} events/s, 1 s checkpoints"
              + (f", compaction every {a.compact_commits} commits (at most every "
                 f"{a.compact_min_interval_ms / 1000:.0f} s)" if v in ("on", "expire") else "")
              + (f", expiry of snapshots older than {a.expire_older_than_ms / 1000:.0f} s every "
                 f"{a.expire_interval_ms / 1000:.0f} s" if v == "expire" else ""), flush=True)
        with tempfile.TemporaryDirectory(prefix=f"bench-compaction-{v}-") as tmp:
            results.append(run(v, a, a.port + i, Path(tmp)))
    print(f"\n{os.cpu_count()} cores; every event_id once in every variant")
    print("| variant | events | commits | rewrites | data files | max files / day partition | partitions "
          "| small-file ratio | median file KiB | snapshots | metadata file KiB | data objects in bucket "
          "| expiry runs (median / max ms) | job CPU s | CPU s / 1k events |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        exp = f"{r['expiries']} ({r['expiry_ms'][0]:.0f} / {r['expiry_ms'][1]})" if r["expiry_ms"] else "0"
        print(f"| {r['variant']} | {r['events']:,} | {r['commits']} | {r['rewrites']} | {r['files']} | "
              f"{r['max_per_partition']} | {r['partitions']} | {r['small_ratio']:.2f} | {r['median_kib']:.1f} | "
              f"{r['snapshots']} | {r['metadata_kib']:.0f} | {r['objects']} | {exp} | "
              f"{r['cpu_s']:.0f} | {r['cpu_per_1k']:.2f} |")
    by = {r["variant"]: r for r in results}
    if "off" in by and "on" in by and by["on"]["files"]:
        print(f"\nfiles without / with compaction: {by['off']['files'] / by['on']['files']:.1f}x; "
              f"CPU with / without: {by['on']['cpu_s'] / max(by['off']['cpu_s'], 1e-9):.2f}x")


if __name__ == "__main__":
    main()

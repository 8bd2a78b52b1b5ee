"""End-to-end freshness benchmark on the local sandbox: events produced at a fixed rate into
us-east-1 (their home), and the time until each is visible (a) to a reader in the home region
and (b) to a reader in eu-west-1, who reads through its read pointer and replica bucket while S3
replication lags; eu-west-1's own job publishes that pointer (or, with --publisher bench, this
script does). The remote path after each commit is split into replication, publication and the
reader's poll + read. Also commit latency: for every snapshot, the time from its Flink checkpoint
completing (Flink's REST checkpoint history) to the commit (the snapshot's timestamp), and commit
statistics (files and bytes per commit, snapshots, small-file ratio). The home path is split per
event (produced -> routed -> its checkpoint triggered -> completed -> committed -> seen), and each
checkpoint per task (barrier start delay, alignment, sync, async), to show what holds commits.

    .venv/bin/python scripts/bench_freshness.py [--rate 200] [--seconds 20] [--replication-lag 2] [--publisher job|bench]
        [--compact-commits N] [--compact-min-interval-ms MS] [--workdir DIR]

Run after scripts/bootstrap.sh. Uses its own sandbox port (4599) and stops everything at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.local_cluster import Sandbox  # noqa: E402
from sandbox.jobrunner import wait_until  # noqa: E402
from connectors.producer import put  # noqa: E402
from sandbox.flink_rest import FlinkRestError, checkpoint_tasks, completed_checkpoints, running_job  # noqa: E402
from connectors import lake, maintenance, read_pointer  # noqa: E402
from connectors.lake_seed import read_object  # noqa: E402
from udfs.envelope import Envelope  # noqa: E402

HOME, REMOTE = "us-east-1", "eu-west-1"


def print_windows(home_at: list[tuple[int, float]], rewrites_ms: list[int], width_s: int = 10) -> None:
    """Home p95 per `width_s` of production time, so a slow phase (start, a rewrite) shows where it is."""
    if not home_at:
        return
    t0 = min(ts for ts, _ in home_at)
    by: dict[int, list[float]] = {}
    for ts, lag in home_at:
        by.setdefault((ts - t0) // (width_s * 1000), []).append(lag)
    marks = {(t - t0) // (width_s * 1000) for t in rewrites_ms}
    print(f"home p95 per {width_s} s of production (s; * = a rewrite committed in the window): " + " ".join(
        f"{w * width_s}:{pct(xs, 95) / 1000:.1f}{'*' if w in marks else ''}" for w, xs in sorted(by.items())))


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


def _version(metadata_location: str) -> int:
    """Iceberg names metadata files <version>-<uuid>.metadata.json; one commit, one version."""
    return int(metadata_location.rsplit("/", 1)[-1].split("-", 1)[0])


class PathMonitor:
    """Every 0.1 s: the home table's catalog pointer (a commit), whether that metadata file is in
    the reader's replica bucket yet (replication), and the reader's read pointer (publication).
    First-seen times per metadata version, to show where the remote path spends its time."""

    def __init__(self, s, home: str, reader: str):
        from connectors import aws
        self.s, self.home, self.reader = s, home, reader
        self.ddb_home = aws.client("dynamodb", home, s.aws)
        self.s3_home = aws.client("s3", home, s.aws)
        self.s3_reader = aws.client("s3", reader, s.aws)
        self.ddb_reader = aws.client("dynamodb", reader, s.aws)
        self.committed: dict[int, float] = {}  # version -> first seen in the catalog (ms)
        self.replicated: dict[int, float] = {}  # version -> its metadata file first seen in the replica
        self.published: dict[int, float] = {}  # snapshot sequence number -> the read pointer's published_at_ms
        # version -> the sequence number of the snapshot it made current. Read when the version is
        # first seen: the table keeps only the newest `write.metadata.previous-versions-max` (50)
        # metadata files, so after a run longer than that the early versions are gone.
        self.seq_of_version: dict[int, int | None] = {}
        self.unread: dict[int, str] = {}
        self.pending: dict[int, str] = {}
        self.stop = threading.Event()

    def step(self) -> None:
        loc = lake.pointer_location(self.s, self.home, self.ddb_home)
        now = time.time() * 1000
        if loc is not None:
            v = _version(loc)
            if v not in self.committed:
                self.committed[v] = now
                self.pending[v] = loc
                self.unread[v] = loc
        for v, loc in sorted(self.unread.items()):
            self.seq_of_version[v] = _current_sequence_number(self.s3_home, loc)
            del self.unread[v]
        for v, loc in sorted(self.pending.items()):
            u = urlparse(loc)
            try:
                self.s3_reader.head_object(Bucket=read_pointer.replica_bucket(self.s, self.home, self.reader),
                                           Key=u.path.lstrip("/"))
            except Exception:  # noqa: BLE001 - not replicated yet
                continue
            self.replicated[v] = time.time() * 1000
            del self.pending[v]
        ptr = read_pointer.read_pointer(self.s, self.home, self.reader, self.ddb_reader)
        if ptr is not None:
            self.published.setdefault(ptr.sequence_number, float(ptr.published_at_ms))

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - a poll that fails is retried on the next tick
                pass
            time.sleep(0.1)

    def stages(self, seq_of_version: dict[int, int]) -> dict[str, list[float]]:
        """Per commit (metadata version v, snapshot n): replication (commit -> its metadata file in
        the replica) and publication (replicated -> the first read pointer at snapshot n or later)."""
        out: dict[str, list[float]] = {"replication": [], "publication": []}
        for v, t_commit in self.committed.items():
            t_repl, n = self.replicated.get(v), seq_of_version.get(v)
            if t_repl is None or n is None:
                continue
            out["replication"].append(t_repl - t_commit)
            t_pub = _first_at_or_after(self.published, n)
            if t_pub is not None:
                out["publication"].append(max(0.0, t_pub - t_repl))
        return out


def _current_sequence_number(s3, metadata_location: str) -> int | None:
    meta = json.loads(read_object(s3, metadata_location))
    current = meta.get("current-snapshot-id")
    return next((x["sequence-number"] for x in meta.get("snapshots", []) if x["snapshot-id"] == current), None)


def _first_at_or_after(times: dict[int, float], n: int) -> float | None:
    later = [t for m, t in times.items() if m >= n]
    return min(later) if later else None


def commits_of(s, home: str) -> tuple[dict[str, int], dict[str, int], dict[int, tuple[int, int]]]:
    """After the run: which snapshot (sequence number) first holds each event, when the router
    emitted it (its `routed_at`), and per snapshot (timestamp, Flink checkpoint id)."""
    table = lake.load_table(s, home)
    first: dict[str, int] = {}
    routed: dict[str, int] = {}
    snaps: dict[int, tuple[int, int]] = {}
    for snap in sorted(table.metadata.snapshots, key=lambda x: x.sequence_number):
        snaps[snap.sequence_number] = (snap.timestamp_ms,
                                       int(lake.summary(snap).get("flink.max-committed-checkpoint-id", -1)))
        rows = lake.read_rows(s, home, ("event_id", "routed_at"), snap.snapshot_id)
        for eid, at in zip(rows["event_id"].to_pylist(), rows["routed_at"].to_pylist()):
            if eid not in first:
                first[eid], routed[eid] = snap.sequence_number, at
    return first, routed, snaps


def home_stages(produced: dict[str, int], first: dict[str, int], routed: dict[str, int],
                snaps: dict[int, tuple[int, int]], checkpoints: dict[int, tuple[int, int]],
                seen: dict[int, float]) -> dict[str, list[float]]:
    """Per event, where the home path spent its time (ms): produced -> routed (Kinesis, source,
    keying), routed -> its checkpoint triggered (waiting for the next checkpoint), triggered ->
    completed (barriers through the graph, the writer's file, state), completed -> snapshot
    committed (the committer's metadata and pointer swap), committed -> seen by the reader's poll."""
    out: dict[str, list[float]] = {k: [] for k in ("read", "wait", "checkpoint", "commit", "seen")}
    for e, ts in produced.items():
        n = first.get(e)
        snap = snaps.get(n) if n is not None else None
        c = checkpoints.get(snap[1]) if snap else None
        t_seen = _first_at_or_after(seen, n) if n is not None else None
        if c is None or t_seen is None or routed.get(e) is None:
            continue
        out["read"].append(routed[e] - ts)
        out["wait"].append(c[0] - routed[e])
        out["checkpoint"].append(c[1] - c[0])
        out["commit"].append(snap[0] - c[1])
        out["seen"].append(t_seen - snap[0])
    return out


def print_checkpoints(checkpoints: dict[int, tuple[int, int]], tasks: dict[int, dict[str, dict[str, int]]]) -> None:
    """The home job's checkpoints: the gaps between triggers (what an event waits for), and per
    task where a checkpoint's time went (flink_rest.checkpoint_tasks)."""
    ids = sorted(checkpoints)
    gaps = [checkpoints[b][0] - checkpoints[a][0] for a, b in zip(ids, ids[1:]) if b == a + 1]
    skipped = sum(b - a - 1 for a, b in zip(ids, ids[1:]))
    durations = [checkpoints[i][1] - checkpoints[i][0] for i in ids]
    print(f"checkpoints: {len(ids)} completed, {skipped} ids missing (failed, declined or not polled); "
          f"trigger -> next trigger p50 {pct(gaps, 50):.0f} ms, p95 {pct(gaps, 95):.0f} ms, max {max(gaps, default=0):.0f} ms; "
          f"trigger -> completed p50 {pct(durations, 50):.0f} ms, p95 {pct(durations, 95):.0f} ms")
    names = sorted({n for t in tasks.values() for n in t})
    print(f"  {'task (ms; p50 / p95 / max over checkpoints)':48} {'acked':>18} {'start delay':>18} {'alignment':>18} "
          f"{'sync':>18} {'async':>18}")
    for n in names:
        cols = []
        for f in ("ack", "start_delay", "alignment", "sync", "async"):
            xs = [t[n][f] for t in tasks.values() if n in t]
            cols.append(f"{pct(xs, 50):5.0f} / {pct(xs, 95):5.0f} / {max(xs, default=0):5.0f}")
        print(f"  {n[:48]:48} " + " ".join(f"{c:>18}" for c in cols) + ("" if len(n) <= 48 else f"\n    ({n})"))
    slow = [(checkpoints[i][1] - checkpoints[i][0], i) for i in ids if i in tasks]
    for d, i in sorted(slow, reverse=True)[:3]:
        last = max(tasks[i].items(), key=lambda kv: kv[1]["ack"])
        print(f"  slowest: checkpoint {i}, {d} ms; last to ack: {last[0][:60]} {last[1]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=200, help="events per second")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--replication-lag", type=float, default=2.0)
    ap.add_argument("--publisher", choices=["job", "bench"], default="job",
                    help="job: the reader region's own job publishes (read-publisher operator, as deployed); "
                         "bench: no reader job, this script publishes every 0.2 s (the earlier setup)")
    ap.add_argument("--compact-commits", help="homeflow.lake/compact.commits for the run (0: no compaction in "
                                              "the job); default: the shipped setting")
    ap.add_argument("--compact-min-interval-ms", help="homeflow.lake/compact.min.interval.ms for the run")
    ap.add_argument("--port", type=int, default=4599)
    ap.add_argument("--workdir", type=Path, help="keep the sandbox (job logs, checkpoints) here instead of a "
                                                   "temporary directory removed at the end")
    ap.add_argument("--rest-port", type=int, default=18097)
    a = ap.parse_args()
    if a.workdir:
        a.workdir.mkdir(parents=True, exist_ok=True)
    with (contextlib.nullcontext(str(a.workdir)) if a.workdir else tempfile.TemporaryDirectory()) as tmp:
        lake_conf = {k: v for k, v in (("compact.commits", a.compact_commits),
                                       ("compact.min.interval.ms", a.compact_min_interval_ms)) if v is not None}
        sb = Sandbox(Path(tmp), a.port, [HOME, REMOTE], s3_lag=a.replication_lag, lake=lake_conf or None).up()
        s = sb.settings
        stop = threading.Event()
        monitor = PathMonitor(s, HOME, REMOTE)
        try:
            regions = [HOME, REMOTE] if a.publisher == "job" else [HOME]
            print(f"starting {', '.join(regions)} job(s); publisher: {a.publisher} ...", flush=True)
            sb.start_jobs(regions, rest_ports={HOME: a.rest_port, REMOTE: a.rest_port + 1})
            checkpoints: dict[int, tuple[int, int]] = {}  # id -> (triggered, completed) ms

            tasks: dict[int, dict[str, dict[str, int]]] = {}  # id -> per task (flink_rest.checkpoint_tasks)

            def poll_checkpoints():
                try:
                    job = running_job(a.rest_port)
                    new = completed_checkpoints(a.rest_port, job)
                    for cid in sorted(set(new) - set(checkpoints)):
                        tasks[cid] = checkpoint_tasks(a.rest_port, job, cid)
                        checkpoints[cid] = new[cid]
                except (FlinkRestError, KeyError):  # between job start and its first checkpoint
                    pass
            if a.publisher == "bench":
                def publisher():
                    while not stop.is_set():
                        read_pointer.publish(s, HOME, REMOTE)
                        time.sleep(0.2)
                threading.Thread(target=publisher, daemon=True).start()
            threading.Thread(target=monitor.run, daemon=True).start()

            def checkpoint_poller():  # Flink's REST history keeps only the latest few
                while not stop.is_set():
                    poll_checkpoints()
                    time.sleep(0.5)
            threading.Thread(target=checkpoint_poller, daemon=True).start()
            keys = [k for k in (f"key-{i}" for i in range(10_000)) if sb.table.home_of(k) == HOME][:50]
            produced: dict[str, int] = {}

            def producer():
                n, t0, batch_every = 0, time.time(), 0.1
                while time.time() - t0 < a.seconds:
                    due = int((time.time() - t0) * a.rate) - n
                    if due > 0:
                        now = int(time.time() * 1000)
                        evs = [Envelope(f"f-{n + i}", keys[(n + i) % len(keys)], now, HOME) for i in range(due)]
                        put(s, HOME, [(e.key, e.to_json().encode()) for e in evs])
                        produced.update({e.event_id: e.ts for e in evs})
                        n += due
                    time.sleep(batch_every)
            prod = threading.Thread(target=producer, daemon=True)
            prod.start()
            print(f"producing {a.rate:.0f} events/s for {a.seconds:.0f}s ...", flush=True)
            prod.join()

            def caught_up():  # every event committed, and the reader's pointer at that snapshot
                poll_checkpoints()
                t = lake.load_table(s, HOME)
                snap = t.current_snapshot() if t else None
                if snap is None or int(lake.summary(snap).get("total-records", 0)) < len(produced):
                    return False
                ptr = read_pointer.read_pointer(s, HOME, REMOTE)
                return ptr is not None and ptr.sequence_number >= snap.sequence_number
            wait_until(caught_up, 120, 1.0, sb.jobs, "every event committed and published")
            time.sleep(0.5)
            stop.set()
            monitor.stop.set()
            # Correctness, with an independent read: every event once, through the pointer, from the replica.
            rows, _ = read_pointer.read_rows(s, HOME, REMOTE)
            ids = [i for i in rows["event_id"].to_pylist() if i in produced]  # not the start-up canary
            exact = len(ids) == len(set(ids)) == len(produced)
            first_seq, routed_at, snap_info = commits_of(s, HOME)
            seq_of_version = {v: n for v, n in monitor.seq_of_version.items() if n is not None}
            committed_seq: dict[int, float] = {}
            for v, t in monitor.committed.items():
                if v in seq_of_version:
                    committed_seq.setdefault(seq_of_version[v], t)
            home_lag, remote_lag, home_at = [], [], []
            for e, ts in produced.items():
                n = first_seq.get(e)
                t_home = _first_at_or_after(committed_seq, n) if n is not None else None
                t_remote = _first_at_or_after(monitor.published, n) if n is not None else None
                if t_home is not None:
                    home_lag.append(t_home - ts)
                    home_at.append((ts, t_home - ts))
                if t_remote is not None:
                    remote_lag.append(t_remote - ts)
            table = lake.load_table(s, HOME)
            snaps = [x for x in table.metadata.snapshots if x.summary]
            sums = [x.summary.additional_properties for x in snaps]
            files = [int(m.get("added-data-files", 0)) for m in sums]
            sizes = [int(m.get("added-files-size", 0)) for m in sums]
            commit_lat, ckpt_to_commit = [], []
            for x, m in zip(snaps, sums):
                c = checkpoints.get(int(m.get("flink.max-committed-checkpoint-id", -1)))
                if c:
                    commit_lat.append(x.timestamp_ms - c[1])
                    ckpt_to_commit.append(x.timestamp_ms - c[0])
            st = maintenance.stats(table)
            print(f"\nload: {len(produced)} events at {a.rate:.0f}/s over {a.seconds:.0f}s, {len(keys)} keys; "
                  f"checkpoint interval {s.job.checkpoint_interval_ms / 1000:.1f}s; replication lag {a.replication_lag}s; "
                  f"publisher: {a.publisher}; " + (f"compaction every {s.lake.compact_commits} commits" if s.lake.compact_commits else "no compaction"))
            print("visible = the catalog pointer (home) / the reader's read pointer (remote) first names a "
                  "snapshot holding the event (polled every 0.1 s; publication time is exact)")
            print(f"{'reader':28} {'seen':>6} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} {'max s':>7}")
            for name, lag in ((f"{HOME} (catalog pointer)", home_lag), (f"{REMOTE} (read pointer)", remote_lag)):
                print(f"{name:28} {len(lag):>6} {pct(lag, 50) / 1000:7.2f} {pct(lag, 95) / 1000:7.2f} "
                      f"{pct(lag, 99) / 1000:7.2f} {max(lag) / 1000 if lag else float('nan'):7.2f}")
            print_windows(home_at, [x.timestamp_ms for x in snaps if x.summary.operation.value == "replace"])
            stages = home_stages(produced, first_seq, routed_at, snap_info, checkpoints, committed_seq)
            print(f"home path per event (s), {len(stages['read'])} events whose checkpoint is in Flink's history:")
            for stage, xs in stages.items():
                print(f"  {stage:26} p50 {pct(xs, 50) / 1000:6.2f}  p95 {pct(xs, 95) / 1000:6.2f}"
                      f"  max {max(xs, default=float('nan')) / 1000:6.2f}")
            print_checkpoints(checkpoints, tasks)
            print("remote path after the commit, per commit (s):")
            for stage, xs in monitor.stages(seq_of_version).items():
                print(f"  {stage:26} {len(xs):>4} commits  p50 {pct(xs, 50) / 1000:6.2f}  p95 {pct(xs, 95) / 1000:6.2f}"
                      f"  max {max(xs, default=float('nan')) / 1000:6.2f}")
            print(f"commit latency (checkpoint complete -> snapshot committed), {len(commit_lat)} commits: "
                  f"p50 {pct(commit_lat, 50):.0f} ms, p95 {pct(commit_lat, 95):.0f} ms, max {max(commit_lat, default=0):.0f} ms; "
                  f"checkpoint triggered -> committed p50 {pct(ckpt_to_commit, 50):.0f} ms, p95 {pct(ckpt_to_commit, 95):.0f} ms")
            print(f"commits: {len(sums)} snapshots, data files per commit median {pct(files, 50):.0f}, "
                  f"bytes per commit median {pct(sizes, 50):.0f}; table: {st.data_files} files, small-file "
                  f"(<{maintenance.SMALL_FILE_BYTES >> 20} MiB) ratio {st.small_file_ratio:.2f}")
            # Every commit writes the whole metadata file, and every reader's refresh reads it: it
            # grows with the snapshots until `homeflow maintain` expires some.
            meta = urlparse(table.metadata_location)
            meta_bytes = monitor.s3_home.head_object(Bucket=meta.netloc, Key=meta.path.lstrip("/"))["ContentLength"]
            n_snaps = len(table.metadata.snapshots)
            print(f"metadata file: {meta_bytes / 1024:.0f} KiB for {n_snaps} snapshots, {meta_bytes / max(1, n_snaps):.0f} "
                  f"bytes per snapshot; at this checkpoint interval {meta_bytes / max(1, n_snaps) * 86_400_000 / s.job.checkpoint_interval_ms / 2**20:.0f} "
                  f"MiB after a day without expiry, written by every commit")
            print(f"independent read through {REMOTE}'s pointer, replica bucket only: {len(ids)} rows, "
                  f"{'every event exactly once' if exact else 'MISMATCH'}")
            return 0 if exact and len(home_lag) == len(remote_lag) == len(produced) else 1
        finally:
            stop.set()
            monitor.stop.set()
            sb.down()


if __name__ == "__main__":
    sys.exit(main())

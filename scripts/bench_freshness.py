"""End-to-end freshness benchmark on the local sandbox: events produced at a fixed rate into
us-east-1 (their home), and the time until each is visible (a) to a reader in the home region
and (b) to a reader in eu-west-1, who reads through its read pointer and replica bucket while S3
replication lags. Also commit latency: for every snapshot, the time from its Flink checkpoint
completing (Flink's REST checkpoint history) to the commit (the snapshot's timestamp), and commit
statistics (files and bytes per commit, snapshots, small-file ratio).

    .venv/bin/python scripts/bench_freshness.py [--rate 200] [--seconds 20] [--replication-lag 2]

Run after scripts/bootstrap.sh. Uses its own sandbox port (4599) and stops everything at the end.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.local_cluster import Sandbox  # noqa: E402
from cli.produce import put  # noqa: E402
from sandbox.s3_replicator import S3Replicator  # noqa: E402
from sandbox.flink_rest import FlinkRestError, completed_checkpoints  # noqa: E402
from connectors import lake, maintenance, read_pointer  # noqa: E402
from udfs.envelope import Envelope  # noqa: E402

HOME, REMOTE = "us-east-1", "eu-west-1"


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=200, help="events per second")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--replication-lag", type=float, default=2.0)
    ap.add_argument("--port", type=int, default=4599)
    ap.add_argument("--rest-port", type=int, default=18097)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sb = Sandbox(Path(tmp), a.port, [HOME]).up()
        s = sb.settings
        stop = threading.Event()
        try:
            print("starting the us-east-1 job ...", flush=True)
            sb.start_jobs([HOME], rest_ports={HOME: a.rest_port})
            checkpoints: dict[int, tuple[int, int]] = {}  # id -> (triggered, completed) ms

            def poll_checkpoints():
                try:
                    checkpoints.update(completed_checkpoints(a.rest_port))
                except (FlinkRestError, KeyError):  # between job start and its first checkpoint
                    pass
            pair = [(s.lake.bucket(HOME), read_pointer.replica_bucket(s, HOME, REMOTE))]
            with S3Replicator(s, pair, lag_s=a.replication_lag):
                def publisher():
                    while not stop.is_set():
                        read_pointer.publish(s, HOME, REMOTE)
                        time.sleep(0.2)
                threading.Thread(target=publisher, daemon=True).start()
                produced: dict[str, int] = {}

                def producer():
                    n, t0, batch_every = 0, time.time(), 0.1
                    while time.time() - t0 < a.seconds:
                        due = int((time.time() - t0) * a.rate) - n
                        if due > 0:
                            now = int(time.time() * 1000)
                            evs = [Envelope(f"f-{n + i}", f"key-{(n + i) % 50}", now, HOME) for i in range(due)]
                            put(s, HOME, [(e.key, e.to_json().encode()) for e in evs])
                            produced.update({e.event_id: e.ts for e in evs})
                            n += due
                        time.sleep(batch_every)
                prod = threading.Thread(target=producer, daemon=True)
                t_start = time.time()
                prod.start()
                seen_home: dict[str, float] = {}
                seen_remote: dict[str, float] = {}
                print(f"producing {a.rate:.0f} events/s for {a.seconds:.0f}s ...", flush=True)
                while time.time() - t_start < a.seconds + 90:
                    now = time.time() * 1000
                    for eid in lake.read_rows(s, HOME, ("event_id",))["event_id"].to_pylist():
                        seen_home.setdefault(eid, now)
                    rows, _ = read_pointer.read_rows(s, HOME, REMOTE)
                    now = time.time() * 1000
                    for eid in rows["event_id"].to_pylist():
                        seen_remote.setdefault(eid, now)
                    poll_checkpoints()
                    if not prod.is_alive() and all(e in seen_remote for e in produced):
                        break
                    time.sleep(0.25)
                stop.set()
            home_lag = [seen_home[e] - ts for e, ts in produced.items() if e in seen_home]
            remote_lag = [seen_remote[e] - ts for e, ts in produced.items() if e in seen_remote]
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
            print(f"\nload: {len(produced)} events at {a.rate:.0f}/s over {a.seconds:.0f}s, 50 keys; "
                  f"checkpoint interval {s.job.checkpoint_interval_ms / 1000:.1f}s; replication lag {a.replication_lag}s")
            print(f"{'reader':28} {'seen':>6} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} {'max s':>7}")
            for name, lag in ((f"{HOME} (home)", home_lag), (f"{REMOTE} (read pointer)", remote_lag)):
                print(f"{name:28} {len(lag):>6} {pct(lag, 50) / 1000:7.2f} {pct(lag, 95) / 1000:7.2f} "
                      f"{pct(lag, 99) / 1000:7.2f} {max(lag) / 1000 if lag else float('nan'):7.2f}")
            print(f"commit latency (checkpoint complete -> snapshot committed), {len(commit_lat)} commits: "
                  f"p50 {pct(commit_lat, 50):.0f} ms, p95 {pct(commit_lat, 95):.0f} ms, max {max(commit_lat, default=0):.0f} ms; "
                  f"checkpoint triggered -> committed p50 {pct(ckpt_to_commit, 50):.0f} ms, p95 {pct(ckpt_to_commit, 95):.0f} ms")
            print(f"commits: {len(sums)} snapshots, data files per commit median {pct(files, 50):.0f}, "
                  f"bytes per commit median {pct(sizes, 50):.0f}; table: {st.data_files} files, small-file "
                  f"(<{maintenance.SMALL_FILE_BYTES >> 20} MiB) ratio {st.small_file_ratio:.2f}")
            return 0 if len(home_lag) == len(remote_lag) == len(produced) else 1
        finally:
            stop.set()
            sb.down()


if __name__ == "__main__":
    sys.exit(main())

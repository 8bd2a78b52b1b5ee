"""The sandbox's replication stand-ins, as one background process started by `homeflow sandbox up`:

* DynamoDB global tables in their default mode (multi-region eventual consistency) for the
  routing table and the Iceberg catalog: lagged copies, last writer wins (sandbox/ddb_replicator.py);
* S3 cross-region replication from each home region's lake bucket to its replica bucket in every
  other region, lagged (sandbox/s3_replicator.py).

    python -m sandbox.replicate --properties P [--ddb-lag 1.0] [--s3-lag 2.0] [--stats FILE]

Regions made unreachable by the region gate stall replication from and to them until they return.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from conf.settings import Settings, load
from connectors import read_pointer
from sandbox.ddb_replicator import DynamoDbReplicator
from sandbox.s3_replicator import S3Replicator


PAUSE_FILE = "replicator.paused"


def bucket_pairs(settings: Settings) -> tuple[list[tuple[str, str]], dict[str, str]]:
    pairs, regions = [], {}
    for home in settings.job.regions:
        regions[settings.lake.bucket(home)] = home
        for reader in settings.job.regions:
            if reader != home:
                dst = read_pointer.replica_bucket(settings, home, reader)
                pairs.append((settings.lake.bucket(home), dst))
                regions[dst] = reader
    return pairs, regions


def replicators(settings: Settings, ddb_lag: float, s3_lag: float) -> list:
    regions = list(settings.job.regions)
    # Polling costs the emulator CPU the jobs need; these periods keep it at a few per cent.
    reps: list = [DynamoDbReplicator(settings, t, regions, lag_s=ddb_lag, poll_s=0.5)
                  for t in (settings.job.routing_table, settings.lake.catalog_table)]
    pairs, bucket_regions = bucket_pairs(settings)
    reps.append(S3Replicator(settings, pairs, lag_s=s3_lag, poll_s=1.0, bucket_regions=bucket_regions))
    return reps


def stats(reps) -> dict:
    ddb = [r for r in reps if isinstance(r, DynamoDbReplicator)]
    s3 = [r for r in reps if isinstance(r, S3Replicator)]
    return {"at": time.time(),
            "dynamodb": {r.table: {"replicated": r.stats.replicated, "conflicts": r.stats.conflicts,
                                   "conflict_keys": r.stats.conflict_keys[-100:],
                                   "pending": len(r.pending), "errors": r.stats.errors} for r in ddb},
            "s3": {"replicated": sum(r.replicated for r in s3), "errors": sum(r.errors for r in s3)}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sandbox.replicate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--properties", required=True)
    p.add_argument("--ddb-lag", type=float, default=1.0, help="seconds before a DynamoDB write reaches other regions")
    p.add_argument("--s3-lag", type=float, default=2.0, help="seconds before a new S3 object reaches the replicas")
    p.add_argument("--stats", help="write counters here every 2 s (JSON)")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    settings = load(args.properties)
    reps = replicators(settings, args.ddb_lag, args.s3_lag)
    print(f"replicating {len(reps) - 1} DynamoDB tables (lag {args.ddb_lag}s) and the lake buckets "
          f"(lag {args.s3_lag}s) across {', '.join(settings.job.regions)}", flush=True)
    last = 0.0
    paused = Path(args.stats).parent / PAUSE_FILE if args.stats else None
    next_step = {id(r): 0.0 for r in reps}
    while True:
        now = time.monotonic()
        for r in reps:
            if now < next_step[id(r)]:
                continue
            next_step[id(r)] = now + r.poll_s
            if paused is not None and paused.exists() and isinstance(r, DynamoDbReplicator):
                continue  # a replication partition: each region keeps its own writes for now
            r.step()
        if args.stats and time.monotonic() - last > 2:
            write_stats(Path(args.stats), stats(reps))
            last = time.monotonic()
        time.sleep(0.05)


def write_stats(path: Path, doc: dict) -> None:
    """Tests read the stats while replication runs: a reader must see the old document or the new
    one, never a truncated file (write_text truncates first, and a CI run once read '' there)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())

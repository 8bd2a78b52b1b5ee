"""What a homeflow deployment costs per month, from the capacity measured here
(scripts/bench_capacity.py) and the job's own write pattern, for a given event rate.

    .venv/bin/python scripts/cost_model.py [--events-per-s 1000] [--regions 2] [--checkpoint-s 10]

Per region, keys homed uniformly (each region homes 1/R of the keys, so (R-1)/R of its ingest is
forwarded, and it receives as much from the others). Prices are us-east-1 list prices on the date
in PRICES_AS_OF; check the pricing pages before relying on them. What scales with the event
rate: KPUs, shards, Kinesis PUT payload units, lake bytes (storage, replication transfer). What
does not (it scales with the checkpoint interval and the number of regions): DynamoDB writes
(one pointer swap per commit, read pointers and lake views per commit seen) and S3 requests.
"""
from __future__ import annotations

import argparse
import math

PRICES_AS_OF = "2026-11 (list prices, us-east-1; verify at aws.amazon.com/pricing)"
KPU_HOUR = 0.11  # Managed Service for Apache Flink, per KPU-hour (+1 KPU per application)
KPU_STORAGE_GB_MONTH = 0.10  # running application storage, 50 GB per KPU
SHARD_HOUR = 0.015  # Kinesis Data Streams, provisioned
PUT_UNIT_MILLION = 0.014  # per million 25 KB PUT payload units
DDB_WRITE_MILLION = 0.625  # on-demand write request units
DDB_REPLICATED_WRITE_MILLION = 0.625  # global tables, on-demand replicated write request units
S3_PUT_THOUSAND = 0.005
S3_STORAGE_GB_MONTH = 0.023
INTER_REGION_GB = 0.02  # S3 cross-region replication transfer
HOURS, SECONDS = 730, 730 * 3600

# Measured (bench_capacity.py, docs/benchmarks "Capacity", 2026-12-05, medians of 6 interleaved
# rounds): CPU seconds per 1,000 events of the whole job with the batched router, parallelism 1,
# THREAD mode, every key homed locally; and the Java-only pipeline beside it. In the same rounds
# the per-key router of the release before measured 0.23 (0.44 on the slower machine of 2026-11-30).
CPU_S_PER_1K = 0.072
JAVA_CPU_S_PER_1K = 0.034


def model(events_per_s: float, regions: int, checkpoint_s: float, event_bytes: int, lake_bytes: float,
          utilization: float, cpu_s_per_1k: float) -> list[tuple[str, str, float]]:
    remote = (regions - 1) / regions
    processed = events_per_s * (1 + remote)  # its ingest + what the others forward to it
    kpu = max(1, math.ceil(processed * cpu_s_per_1k / 1000 / utilization)) + 1  # +1: orchestration
    ingest_shards = max(1, math.ceil(events_per_s / (1000 * utilization)),
                        math.ceil(events_per_s * event_bytes / (1_000_000 * utilization)))
    forward_shards = max(1, math.ceil(events_per_s * remote / (1000 * utilization)))
    put_units = processed * SECONDS  # one unit per record (< 25 KB): ingest + forwards written
    commits = SECONDS / checkpoint_s
    ddb_writes = commits * (1 + 2 * (regions - 1))  # pointer swap; a read pointer + view per other home
    ddb_replicated = ddb_writes * (regions - 1)  # every global-table write lands in each other replica
    s3_puts = commits * 4 * regions  # data file, manifest, manifest list, metadata; + CRR copies
    lake_gb = events_per_s * SECONDS * lake_bytes / 1e9
    rows = [
        (f"Managed Flink: {kpu} KPU ({kpu - 1} for the job at {utilization:.0%} CPU + 1)", f"{kpu * HOURS:,.0f} KPU-h",
         kpu * HOURS * KPU_HOUR + kpu * 50 * KPU_STORAGE_GB_MONTH),
        (f"Kinesis: {ingest_shards} ingest + {forward_shards} forward + 1 dead-letter shards",
         f"{(ingest_shards + forward_shards + 1) * HOURS:,.0f} shard-h",
         (ingest_shards + forward_shards + 1) * HOURS * SHARD_HOUR),
        ("Kinesis PUT payload units (ingest + forwards)", f"{put_units / 1e6:,.0f} M", put_units / 1e6 * PUT_UNIT_MILLION),
        ("DynamoDB writes (+ replicated writes)", f"{ddb_writes / 1e6:.2f} M + {ddb_replicated / 1e6:.2f} M",
         ddb_writes / 1e6 * DDB_WRITE_MILLION + ddb_replicated / 1e6 * DDB_REPLICATED_WRITE_MILLION),
        ("S3 PUTs (commits + replication copies)", f"{s3_puts / 1e6:.2f} M", s3_puts / 1000 * S3_PUT_THOUSAND),
        (f"Lake: a month of events ({lake_bytes:.0f} B each), stored in every region", f"{lake_gb:,.0f} GB",
         lake_gb * S3_STORAGE_GB_MONTH * regions + lake_gb * (regions - 1) * INTER_REGION_GB),
    ]
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events-per-s", type=float, default=1000, help="ingested per region (default: %(default)s)")
    p.add_argument("--regions", type=int, default=2)
    p.add_argument("--checkpoint-s", type=float, default=10, help="= the commit interval (template default 10 s)")
    p.add_argument("--event-bytes", type=int, default=150, help="JSON envelope size (the demo's: ~146 B)")
    p.add_argument("--lake-bytes", type=float, default=40, help="Parquet bytes per event in the lake")
    p.add_argument("--utilization", type=float, default=0.7, help="target CPU and shard utilisation")
    p.add_argument("--java", action="store_true", help="KPUs of the Java-only pipeline's measured CPU instead")
    a = p.parse_args(argv)
    if a.regions < 1 or a.events_per_s <= 0 or a.checkpoint_s <= 0 or not 0 < a.utilization <= 1:
        p.error("--regions >= 1, --events-per-s > 0, --checkpoint-s > 0 and 0 < --utilization <= 1")
    cpu = JAVA_CPU_S_PER_1K if a.java else CPU_S_PER_1K
    rows = model(a.events_per_s, a.regions, a.checkpoint_s, a.event_bytes, a.lake_bytes, a.utilization, cpu)
    print(f"per region, {a.events_per_s:,.0f} events/s ingested, {a.regions} regions, checkpoints {a.checkpoint_s:g} s, "
          f"CPU {cpu} s per 1k events; prices {PRICES_AS_OF}")
    print(f"| {'item':<62} | {'units / month':>20} | {'USD / month':>11} |")
    print(f"| {'-' * 62} | {'-' * 20}: | {'-' * 10}: |")
    for what, units, usd in rows:
        print(f"| {what:<62} | {units:>20} | {usd:>11,.2f} |")
    total = sum(r[2] for r in rows)
    print(f"| {'total per region':<62} | {'':>20} | {total:>11,.2f} |")
    print(f"| {'total, ' + str(a.regions) + ' regions':<62} | {'':>20} | {total * a.regions:>11,.2f} |")


if __name__ == "__main__":
    main()

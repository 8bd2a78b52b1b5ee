"""Create, if missing, what a regional job needs in every sandbox region: streams, buckets (its
lake bucket and its replicas of the other homes' buckets), the routing table, the Iceberg catalog
and table, and the read-pointer table. Idempotent."""
from __future__ import annotations

from conf.settings import Settings
from connectors import aws, lake, read_pointer
from connectors.routing_store import RoutingStore
from udfs.routing_table import default_table

STREAM_SHARDS = {"ingest": 2, "forward": 2, "dead_letter": 1}


def create_resources(settings: Settings) -> dict[str, list[str]]:
    made: dict[str, list[str]] = {}
    streams = {"ingest": settings.streams.ingest, "forward": settings.streams.forward,
               "dead_letter": settings.streams.dead_letter}
    for region in settings.job.regions:
        out = made.setdefault(region, [])
        kin = aws.client("kinesis", region, settings.aws)
        existing = set(kin.list_streams()["StreamNames"])
        for kind, name in streams.items():
            if name not in existing:
                kin.create_stream(StreamName=name, ShardCount=STREAM_SHARDS[kind])
                out.append(f"stream {name}")
        s3 = aws.client("s3", region, settings.aws)
        have = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        wanted = [settings.lake.bucket(region)] + [
            read_pointer.replica_bucket(settings, home, region) for home in settings.job.regions if home != region]
        for bucket in wanted:
            if bucket not in have:
                kw = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
                s3.create_bucket(Bucket=bucket, **kw)
                out.append(f"bucket {bucket}")
        read_pointer.ensure_table(settings, region)
        store = RoutingStore(settings, region)
        store.ensure_table()
        # The routing table is a global table: its first version is written in one region (the
        # control region, homeflow.job/region) and replicated, as every later change is.
        if region == settings.job.region and store.read_raw() is None:
            store.write(default_table(list(settings.job.regions)))
            out.append(f"routing table {settings.job.routing_table} (epoch 1)")
        t = lake.load_table(settings, region)
        if t is None:
            lake.ensure_table(settings, region)
            out.append(f"iceberg table {'.'.join(lake.identifier(settings, region))}")
        elif lake.missing_columns(t):
            cols = lake.missing_columns(t)
            lake.evolve(t)
            out.append(f"iceberg table columns {', '.join(cols)}")
    return made

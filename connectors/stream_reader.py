"""Read a whole Kinesis stream (every shard, from its retention start) with boto3: for the job's
dead-letter seed, tests and the CLI. Bounded by what the stream retains."""
from __future__ import annotations

from typing import Iterator

from conf.settings import Settings
from connectors import aws
from udfs import kpl


def read_stream(settings: Settings, region: str, stream: str, deaggregate: bool = True) -> list[dict]:
    """Every record, KPL aggregates split into their members ("seq" = "<sequence>:<index>", as the
    job's source numbers them); deaggregate=False gives the Kinesis records as stored."""
    return list(iter_stream(settings, region, stream, deaggregate))


def iter_stream(settings: Settings, region: str, stream: str, deaggregate: bool = True) -> Iterator[dict]:
    """read_stream's records one at a time (the job's dead-letter seed holds none of them)."""
    kin = aws.client("kinesis", region, settings.aws)
    for shard in kin.list_shards(StreamName=stream)["Shards"]:
        it = kin.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            resp = kin.get_records(ShardIterator=it, Limit=10_000)
            for r in resp["Records"]:
                members = kpl.deaggregate(r["Data"]) if deaggregate else None
                parts = [(r["SequenceNumber"], r["Data"])] if members is None else \
                    [(f'{r["SequenceNumber"]}:{i}', m) for i, m in enumerate(members)]
                for seq, data in parts:
                    yield {"shard": shard["ShardId"], "seq": seq, "key": r["PartitionKey"],
                           "data": data, "arrived": r.get("ApproximateArrivalTimestamp")}
            if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
                break
            it = resp.get("NextShardIterator")

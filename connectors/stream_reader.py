"""Read a whole Kinesis stream (every shard, from its retention start) with boto3: for the job's
dead-letter seed, tests and the CLI. Bounded by what the stream retains."""
from __future__ import annotations

from conf.settings import Settings
from connectors import aws


def read_stream(settings: Settings, region: str, stream: str) -> list[dict]:
    kin = aws.client("kinesis", region, settings.aws)
    out = []
    for shard in kin.list_shards(StreamName=stream)["Shards"]:
        it = kin.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            resp = kin.get_records(ShardIterator=it, Limit=10_000)
            for r in resp["Records"]:
                out.append({"shard": shard["ShardId"], "seq": r["SequenceNumber"],
                            "key": r["PartitionKey"], "data": r["Data"],
                            "arrived": r.get("ApproximateArrivalTimestamp")})
            if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
                break
            it = resp.get("NextShardIterator")
    return out

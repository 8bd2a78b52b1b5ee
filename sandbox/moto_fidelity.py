"""Where moto differs from AWS in a way a homeflow guarantee depends on, corrected in the
sandbox's emulator process (applied by sandbox.moto_gate before it serves).

Concurrent writes lose records. moto's server is threaded, but its Kinesis shard picks a new
record's sequence number as max + 1 without a lock ("not safe for concurrency", moto's own
comment): two PutRecords into one shard at the same time both succeed, and one record overwrites
the other. Measured: 4 threads x 2,000 records into one shard, 8,000 accepted, 7,989 stored. A
regional job at parallelism 2 has two forward writers per destination, so drills lost events
that AWS would have kept. DynamoDB's conditional writes, which the Iceberg pointer swap relies
on, are check-then-write in moto as well. Every Kinesis and DynamoDB request is therefore served
one at a time per service (`serialized`), which is what the real services guarantee per shard
and per item.

ListShards ignores ExclusiveStartShardId. The Kinesis source's enumerator (connector 4.3.0)
discovers shards with ListShards(ExclusiveStartShardId=<last seen>) and does not keep in its state
which shards its readers hold: after every restore, moto hands it every shard again, and it assigns
each one a second time from TRIM_HORIZON. On AWS it gets only shards newer than the last seen
(resharding children), so a restored job re-reads nothing. Without this fix the sandbox would test
a job that re-reads whole streams on every restart, which AWS never makes it do.

PutRecords slows down as a shard grows. The shard's newest sequence number is found by copying
every key of the shard into a list (`list(self.records.keys())[-1]`) for each record put, so
filling a shard is quadratic: 200,000 events into two 2-shard streams did not finish in 8 minutes.
The records dict is in sequence order, so its first and last keys are read directly (the same
answer, in constant time). A capacity figure measured against the unpatched emulator would have
measured this copy.
"""
from __future__ import annotations


def list_shards_after(shards: list, exclusive_start: str | None) -> list:
    """What AWS returns for ExclusiveStartShardId: the shards whose id sorts after it."""
    if not exclusive_start:
        return shards
    return [s for s in shards if s.shard_id > exclusive_start]


SERIALIZED_TARGETS = ("Kinesis_", "DynamoDB_")


def serialized(app):
    """WSGI middleware: Kinesis and DynamoDB requests (JSON protocol, named by X-Amz-Target) run
    one at a time per service; everything else as before."""
    import threading
    locks = {t: threading.Lock() for t in SERIALIZED_TARGETS}

    def wrapped(environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        lock = next((lk for t, lk in locks.items() if target.startswith(t)), None)
        if lock is None:
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))
    return wrapped


def apply() -> None:
    from moto.core.responses import ActionResult
    from moto.kinesis.responses import KinesisResponse

    if getattr(KinesisResponse.list_shards, "_homeflow", False):
        return
    _constant_time_sequence_bounds()

    def list_shards(self) -> ActionResult:
        shards, token = self.kinesis_backend.list_shards(
            stream_arn=self._get_param("StreamARN"), stream_name=self._get_param("StreamName"),
            limit=self._get_param("MaxResults", 10000), next_token=self._get_param("NextToken"))
        shards = list_shards_after(shards, self._get_param("ExclusiveStartShardId"))
        return ActionResult({"Shards": [s.to_json() for s in shards], "NextToken": token})

    list_shards._homeflow = True
    KinesisResponse.list_shards = list_shards


def _constant_time_sequence_bounds() -> None:
    from moto.kinesis.models import Shard

    def get_min_sequence_number(self) -> int:
        return next(iter(self.records)) if self.records else 0

    def get_max_sequence_number(self) -> int:
        return next(reversed(self.records)) if self.records else 0

    Shard.get_min_sequence_number = get_min_sequence_number
    Shard.get_max_sequence_number = get_max_sequence_number

"""Envelope records into a region's ingest stream: deterministic for a seed, so tests can
re-derive exactly what was sent (event ids, keys, per-key order)."""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Iterator

from conf.settings import Settings
from connectors import aws
from connectors.stream_reader import read_stream  # noqa: F401  (re-exported for tests and the demo)
from udfs.envelope import Envelope

BATCH = 500  # PutRecords limit


@dataclass(frozen=True)
class ProduceResult:
    sent: int
    seconds: float
    retried: int


def events(region: str, n: int, keys: int, seed: int, start_ms: int | None = None) -> Iterator[Envelope]:
    rng = random.Random(f"{seed}/{region}")
    now = start_ms if start_ms is not None else int(time.time() * 1000)
    seq: dict[str, int] = {}
    for i in range(n):
        key = f"key-{rng.randrange(keys):05d}"
        seq[key] = seq.get(key, 0) + 1
        yield Envelope(event_id=f"{region}-{seed}-{i:08d}", key=key, ts=now + i, origin=region,
                       payload={"seq": seq[key], "amount": rng.randrange(1, 10_000)})


def put(settings: Settings, region: str, records: list[tuple[str, bytes]], stream: str | None = None) -> ProduceResult:
    """PutRecords in batches; entries that fail are retried in order, the rest of the batch waits."""
    kin = aws.client("kinesis", region, settings.aws)
    stream = stream or settings.streams.ingest
    t0, retried = time.monotonic(), 0
    i = 0
    while i < len(records):
        batch = records[i:i + BATCH]
        resp = kin.put_records(StreamName=stream,
                               Records=[{"PartitionKey": k, "Data": d} for k, d in batch])
        if resp.get("FailedRecordCount", 0):
            # Keep per-key order: accept only the prefix before the first failure, resend the rest.
            first_fail = next(j for j, r in enumerate(resp["Records"]) if "ErrorCode" in r)
            retried += len(batch) - first_fail
            i += first_fail
            time.sleep(0.2)
            continue
        i += len(batch)
    return ProduceResult(len(records), time.monotonic() - t0, retried)


def produce(settings: Settings, region: str, n: int, keys: int, seed: int) -> ProduceResult:
    recs = [(e.key, e.to_json().encode()) for e in events(region, n, keys, seed)]
    return put(settings, region, recs)


def decode(records: list[dict]) -> list[dict]:
    return [json.loads(r["data"]) for r in records]

"""The record envelope and its validation.

Every record on Kinesis is a JSON object; `parse` turns raw bytes into an `Envelope` or a
`Rejection` that names why, so bad input can go to the dead-letter stream instead of being lost.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

# Kinesis caps a record's data at 1 MiB; we reject earlier so a forward never fails on size.
DEFAULT_MAX_RECORD_BYTES = 256 * 1024

REQUIRED_STR = ("event_id", "key")


@dataclass(frozen=True, slots=True)
class Envelope:
    event_id: str
    key: str
    ts: int
    origin: str
    hops: int = 0
    epoch: int = 0
    payload: Any = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "event_id": self.event_id,
                "key": self.key,
                "ts": self.ts,
                "origin": self.origin,
                "hops": self.hops,
                "epoch": self.epoch,
                "payload": self.payload,
            },
            separators=(",", ":"),
        )

    def forwarded(self, epoch: int) -> "Envelope":
        return replace(self, hops=self.hops + 1, epoch=epoch)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str  # a short stable code, used as a metric label and a dead-letter field
    detail: str


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse(
    raw: bytes,
    known_regions: frozenset[str],
    max_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Envelope | Rejection:
    if len(raw) > max_bytes:
        return Rejection("oversized", f"{len(raw)} bytes > limit {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return Rejection("malformed-json", f"not UTF-8: {e.reason} at byte {e.start}")
    try:
        obj = json.loads(text)
    except ValueError as e:
        return Rejection("malformed-json", str(e)[:200])
    if not isinstance(obj, dict):
        return Rejection("malformed-json", f"top level is {type(obj).__name__}, not an object")
    for name in REQUIRED_STR:
        if name not in obj or obj[name] is None:
            return Rejection(f"missing-{name.replace('_', '-')}", f"field '{name}' is absent")
        if not isinstance(obj[name], str):
            return Rejection("wrong-type", f"field '{name}' must be a string")
        if not obj[name]:
            return Rejection(f"missing-{name.replace('_', '-')}", f"field '{name}' is empty")
    ts = obj.get("ts")
    if not _is_int(ts) or ts < 0:
        return Rejection("wrong-type", "field 'ts' must be a non-negative integer (ms)")
    origin = obj.get("origin")
    if not isinstance(origin, str):
        return Rejection("wrong-type", "field 'origin' must be a string")
    if origin not in known_regions:
        return Rejection("unknown-region", f"origin '{origin}' is not a configured region")
    hops = obj.get("hops", 0)
    epoch = obj.get("epoch", 0)
    if not _is_int(hops) or hops < 0:
        return Rejection("wrong-type", "field 'hops' must be a non-negative integer")
    if not _is_int(epoch) or epoch < 0:
        return Rejection("wrong-type", "field 'epoch' must be a non-negative integer")
    return Envelope(
        event_id=obj["event_id"],
        key=obj["key"],
        ts=ts,
        origin=origin,
        hops=hops,
        epoch=epoch,
        payload=obj.get("payload"),
    )

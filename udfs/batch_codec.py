"""What crosses the Python bridge in the batched router: one element in, one element out per call.

In: a key group's records as `dev.homeflow.flink.KeyGroupBatcher` packs them, each as six
big-endian numbers (int key, source, entry and data lengths; long arrival, -1 for none; long read
time) followed by the business key, the source ("stream/shard/sequence"), the entry
("region/shard/sequence", empty unless read from this region's ingest stream) and the record's
original bytes.

Out: the router's decisions for the call, in order, as one JSON array that
`dev.homeflow.flink.RouterBatchUnpacker` reads (its Javadoc lists the entry forms). JSON because
one C call (orjson's) writes a whole batch, payloads and envelopes included as values.
"""
from __future__ import annotations

import json
import struct
from typing import Iterator, NamedTuple

import orjson

from udfs.dead_letter import dead_letter
from udfs.handoff import Dead, Forward, Home, Out, Remember

_HEAD = struct.Struct(">iiiiqq")
FLAG_UNLESS_COMMITTED, FLAG_WITH_SEEN, FLAG_AFTER = 1, 2, 4  # RouterBatchUnpacker's


class Record(NamedTuple):
    key: str
    source: str
    entry: str | None
    arrived: int | None
    read_ms: int
    raw: bytes


def records(batch: bytes) -> Iterator[Record]:
    view, off, end, head = memoryview(batch), 0, len(batch), _HEAD.unpack_from
    while off < end:
        kl, sl, el, dl, arrived, read_ms = head(view, off)
        off += _HEAD.size
        key = str(view[off:off + kl], "utf-8")
        off += kl
        source = str(view[off:off + sl], "utf-8")
        off += sl
        entry = str(view[off:off + el], "utf-8") if el else None
        off += el
        yield Record(key, source, entry, None if arrived < 0 else arrived, read_ms, bytes(view[off:off + dl]))
        off += dl


def pack(recs: list[Record]) -> bytes:
    """What KeyGroupBatcher writes (for tests and benchmarks; the job packs in Java)."""
    out = bytearray()
    for r in recs:
        k, s, e = r.key.encode(), r.source.encode(), (r.entry or "").encode()
        out += _HEAD.pack(len(k), len(s), len(e), len(r.raw), -1 if r.arrived is None else r.arrived, r.read_ms)
        out += k + s + e + r.raw
    return bytes(out)


def entry(key: str, o: Out, region: str, now: int) -> list:
    """One decision as RouterBatchUnpacker reads it."""
    if isinstance(o, Home):
        env = o.env
        return ["H", key, env.event_id, env.ts, env.origin, env.hops, o.epoch, env.payload, o.source, o.routed_at,
                o.held_ms, o.late, o.entry, o.entered_ms]
    if isinstance(o, Forward):
        flags = (FLAG_UNLESS_COMMITTED if o.unless_committed else 0) | (FLAG_WITH_SEEN if o.with_seen else 0) \
            | (FLAG_AFTER if o.env.after is not None else 0)
        return ["F", key, o.region, o.env.to_doc(), o.env.event_id, flags]
    if isinstance(o, Dead):
        return ["D", key, o.reason, dead_letter(o.raw, o.reason, o.detail, region, now, o.source)]
    if isinstance(o, Remember):
        return ["S", key, list(o.ids)]
    raise TypeError(f"not a router output: {o!r}")


def encode(entries: list[list]) -> bytes:
    try:
        return orjson.dumps(entries)  # UTF-8; RouterBatchUnpacker writes non-ASCII escaped again
    except orjson.JSONEncodeError:
        # An integer beyond 64 bits or a lone surrogate in a payload (udfs/envelope.py reads both as
        # json.loads does): ASCII with \u escapes, which Jackson reads the same.
        return json.dumps(entries, separators=(",", ":")).encode("ascii")


_HELD = struct.Struct(">iiiiqq")


def pack_held(held: list) -> bytes:
    """Records a key holds (udfs.handoff.Held), for the router's state: source, entry, late, data
    lengths; entry time (-1 none), arrival at the router; then the bytes."""
    out = bytearray()
    for h in held:
        s, e, late = h.source.encode(), (h.entry or "").encode(), (h.late or "").encode()
        out += _HELD.pack(len(s), len(e), len(late), len(h.raw), -1 if h.entered_ms is None else h.entered_ms,
                          h.arrived_ms)
        out += s + e + late + h.raw
    return bytes(out)


def unpack_held(blob: bytes) -> list:
    from udfs.handoff import Held
    view, off, out = memoryview(blob), 0, []
    while off < len(blob):
        sl, el, ll, dl, entered, arrived = _HELD.unpack_from(view, off)
        off += _HELD.size
        source = str(view[off:off + sl], "utf-8")
        off += sl
        entry = str(view[off:off + el], "utf-8") or None
        off += el
        late = str(view[off:off + ll], "utf-8") or None
        off += ll
        out.append(Held(bytes(view[off:off + dl]), source, arrived, late, entry, None if entered < 0 else entered))
        off += dl
    return out

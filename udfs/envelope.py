"""The record envelope and its validation.

Every record on Kinesis is a JSON object; `parse` turns raw bytes into an `Envelope` or a
`Rejection` that names why, so bad input can go to the dead-letter stream instead of being lost.

Besides the producer's fields (event_id, key, ts, origin, payload) a forwarded record carries the
routing fields of the hand-off protocol (udfs/handoff.py); they are absent on records as producers
write them and omitted from the JSON when empty:

* `hops`, `epoch`: times forwarded, and the routing epoch of the last hop;
* `via`: the region that forwarded it last (which path it came by);
* `after`: on the first record a region sends a key's new home after the key moved: the marker
  (`id`, coming `via` the old home) the new home must see before it commits more of this origin;
* `marker`: a control record, never committed: it travels behind everything a sender routed for a
  key through the old home; `seen` carries the old home's recent event_ids of the key (dedup
  hand-over);
* `entry`, `entered`: where and when the record entered the system, set by the router that read
  it from its region's ingest stream (`region/shard/sequence[:sub]`, and Kinesis's arrival time in
  ms), so a home can tell whether it commits a key's records in the order they entered
  (udfs/lanes.py); not the producer's `origin`, which a producer may fill as it likes;
* `order`: on a marker answered by an old home, its mark per entry lane (udfs/lanes.py);
* `late`: why this record is known to be out of per-key order (stranded in a lost region, or
  behind a hand-off that timed out); it becomes the lake's `unordered` column.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from udfs.lanes import valid_entry, valid_mark

# Kinesis caps a record's data at 1 MiB; we reject earlier so a forward never fails on size.
DEFAULT_MAX_RECORD_BYTES = 256 * 1024
# A marker's `seen` list must fit one Kinesis record with room to spare.
MAX_SEEN_IDS = 5000

REQUIRED_STR = ("event_id", "key")
# Kinesis partition keys (the business key, when forwarding) are at most 256 Unicode characters.
MAX_KEY_CHARS = 256
# The Java side reads `ts`, `epoch` and `entered` as a long and `hops` as an int: larger values are
# rejected here rather than failing (or wrapping) there.
MAX_LONG, MAX_INT = 2**63 - 1, 2**31 - 1
# orjson reads an integer beyond 64 bits as a float (json.loads keeps it exact): a payload holding
# a float this large is read again by json.loads.
_HUGE = 2.0**63
_PLAIN = frozenset({str, int, bool, type(None)})


@dataclass(frozen=True, slots=True)
class Marker:
    id: str  # "<from>:<epoch>": unique per sender region and routing epoch (and key)
    sender: str  # the region that sent it (and whose records it follows)
    old: str  # the old home it is sent through
    to: str  # the region waiting for it (the sender itself for an acquire marker)
    acquire: bool = False  # sent by the key's new home itself: the old home answers with `seen`

    def to_doc(self) -> dict[str, Any]:
        return {"id": self.id, "from": self.sender, "old": self.old, "to": self.to, "acquire": self.acquire}


@dataclass(frozen=True, slots=True)
class Envelope:
    event_id: str
    key: str
    ts: int
    origin: str
    hops: int = 0
    epoch: int = 0
    payload: Any = None
    via: str | None = None
    after: tuple[str, str] | None = None  # (marker id, via region)
    marker: Marker | None = None
    seen: tuple[str, ...] | None = None
    late: str | None = None
    entry: str | None = None
    entered: int | None = None
    order: dict[str, str] | None = None

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"event_id": self.event_id, "key": self.key, "ts": self.ts, "origin": self.origin,
                               "hops": self.hops, "epoch": self.epoch, "payload": self.payload}
        if self.via is not None:
            doc["via"] = self.via
        if self.after is not None:
            doc["after"] = {"id": self.after[0], "via": self.after[1]}
        if self.marker is not None:
            doc["marker"] = self.marker.to_doc()
        if self.seen is not None:
            doc["seen"] = list(self.seen)
        if self.late is not None:
            doc["late"] = self.late
        if self.entry is not None:
            doc["entry"] = self.entry
        if self.entered is not None:
            doc["entered"] = self.entered
        if self.order is not None:
            doc["order"] = self.order
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_doc(), separators=(",", ":"))

    def forwarded(self, epoch: int, via: str | None = None, after: tuple[str, str] | None = None,
                  seen: tuple[str, ...] | None = None, late: str | None = None, entry: str | None = None,
                  entered: int | None = None, order: dict[str, str] | None = None) -> "Envelope":
        # `after`, `seen` and `order` belong to one hop only; `late` sticks once set. `entry` is
        # given by the router that read the record from its ingest stream, and kept after that.
        # (Spelled out rather than dataclasses.replace: this runs for every forwarded record.)
        if entry is None:
            entry, entered = self.entry, self.entered
        return Envelope(self.event_id, self.key, self.ts, self.origin, self.hops + 1, epoch, self.payload, via,
                        after, self.marker, seen, self.late or late, entry, entered, order)


def marker_envelope(key: str, marker: Marker, ts: int, epoch: int) -> Envelope:
    return Envelope(event_id=f"marker/{marker.id}", key=key, ts=ts, origin=marker.sender, hops=0, epoch=epoch,
                    marker=marker)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str  # a short stable code, used as a metric label and a dead-letter field
    detail: str


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _region_field(obj: dict, name: str, known: frozenset[str]) -> str | Rejection | None:
    v = obj.get(name)
    if v is None:
        return None
    if not isinstance(v, str):
        return Rejection("wrong-type", f"field '{name}' must be a string")
    if v not in known:
        return Rejection("unknown-region", f"{name} '{v}' is not a configured region")
    return v


def _routing_fields(obj: dict, known: frozenset[str]) -> dict[str, Any] | Rejection:
    out: dict[str, Any] = {}
    via = _region_field(obj, "via", known)
    if isinstance(via, Rejection):
        return via
    out["via"] = via
    after = obj.get("after")
    if after is not None:
        if not isinstance(after, dict) or not isinstance(after.get("id"), str):
            return Rejection("wrong-type", "field 'after' must be an object with a string 'id'")
        av = _region_field(after, "via", known)
        if isinstance(av, Rejection) or av is None:
            return av or Rejection("wrong-type", "field 'after' needs 'via'")
        out["after"] = (after["id"], av)
    marker = obj.get("marker")
    if marker is not None:
        if not isinstance(marker, dict) or not isinstance(marker.get("id"), str):
            return Rejection("wrong-type", "field 'marker' must be an object with a string 'id'")
        regions = [_region_field(marker, f, known) for f in ("from", "old", "to")]
        for v in regions:
            if isinstance(v, Rejection):
                return v
        if None in regions or not isinstance(marker.get("acquire", False), bool):
            return Rejection("wrong-type", "field 'marker' needs 'from', 'old', 'to' and a boolean 'acquire'")
        out["marker"] = Marker(marker["id"], *regions, marker.get("acquire", False))
    seen = obj.get("seen")
    if seen is not None:
        if not isinstance(seen, list) or len(seen) > MAX_SEEN_IDS or not all(isinstance(s, str) for s in seen):
            return Rejection("wrong-type", f"field 'seen' must be a list of at most {MAX_SEEN_IDS} strings")
        out["seen"] = tuple(seen)
    for name in ("late", "entry"):
        v = obj.get(name)
        if v is not None and not isinstance(v, str):
            return Rejection("wrong-type", f"field '{name}' must be a string")
        out[name] = v
    if out["entry"] is not None and not valid_entry(out["entry"]):
        return Rejection("wrong-type", "field 'entry' must be region/shard/sequence")
    entered = obj.get("entered")
    if entered is not None and (type(entered) is not int or not 0 <= entered <= MAX_LONG):
        return Rejection("wrong-type", "field 'entered' must be a non-negative 64-bit integer (ms)")
    out["entered"] = entered
    order = obj.get("order")
    if order is not None:
        if not isinstance(order, dict) or not all(k in known and isinstance(v, str) for k, v in order.items()):
            return Rejection("wrong-type", "field 'order' must map regions to lane marks")
        # A job older than entry lanes sent per-origin sequence numbers: no lane, nothing to keep.
        out["order"] = {k: v for k, v in order.items() if valid_mark(v)}
    return out


# `oseq` (the per-origin sequence of jobs older than entry lanes) still takes the slow path so that
# `order` and the rest are read; its value is not used: it named no shard.
ROUTING_FIELDS = frozenset({"via", "after", "marker", "seen", "late", "entry", "entered", "oseq", "order"})


def parse(
    raw: bytes,
    known_regions: frozenset[str],
    max_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Envelope | Rejection:
    # Runs for every record: plain type() checks (a bool is not an int here), one pass.
    if len(raw) > max_bytes:
        return Rejection("oversized", f"{len(raw)} bytes > limit {max_bytes}")
    try:
        obj = orjson.loads(raw)  # a third of json.loads' cost; what it refuses, json.loads decides
    except orjson.JSONDecodeError:
        obj = _loads_exactly(raw)
        if isinstance(obj, Rejection):
            return obj
    if type(obj) is not dict:
        return Rejection("malformed-json", f"top level is {type(obj).__name__}, not an object")
    for name in REQUIRED_STR:
        v = obj.get(name)
        if v is None:
            return Rejection(f"missing-{name.replace('_', '-')}", f"field '{name}' is absent")
        if type(v) is not str:
            return Rejection("wrong-type", f"field '{name}' must be a string")
        if not v:
            return Rejection(f"missing-{name.replace('_', '-')}", f"field '{name}' is empty")
        if not v.isascii():
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate escape (\ud800): not a Unicode string
                return Rejection("malformed-json", f"field '{name}' holds a lone surrogate")
    key = obj["key"]
    if len(key) > MAX_KEY_CHARS:
        return Rejection("key-too-long", f"key has {len(key)} characters > {MAX_KEY_CHARS} (Kinesis partition key limit)")
    ts = obj.get("ts")
    if type(ts) is not int or not 0 <= ts <= MAX_LONG:
        return Rejection("wrong-type", "field 'ts' must be a non-negative 64-bit integer (ms)")
    origin = obj.get("origin")
    if type(origin) is not str:
        return Rejection("wrong-type", "field 'origin' must be a string")
    if origin not in known_regions:
        return Rejection("unknown-region", f"origin '{origin}' is not a configured region")
    hops = obj.get("hops", 0)
    epoch = obj.get("epoch", 0)
    if type(hops) is not int or not 0 <= hops <= MAX_INT:
        return Rejection("wrong-type", "field 'hops' must be a non-negative 32-bit integer")
    if type(epoch) is not int or not 0 <= epoch <= MAX_LONG:
        return Rejection("wrong-type", "field 'epoch' must be a non-negative 64-bit integer")
    payload = obj.get("payload")
    if not _exact(payload):
        obj = _loads_exactly(raw)
        if isinstance(obj, Rejection):  # deeper than json.loads goes, though not than orjson
            return obj
        payload = obj.get("payload")
    if ROUTING_FIELDS.isdisjoint(obj):
        return Envelope(obj["event_id"], key, ts, origin, hops, epoch, payload)
    routing = _routing_fields(obj, known_regions)
    if isinstance(routing, Rejection):
        return routing
    return Envelope(obj["event_id"], key, ts, origin, hops, epoch, payload, **routing)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    v = float(text)
    if v in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of a double's range")
    return v


def _loads_exactly(raw: bytes) -> Any:
    """Python's own reader, for what orjson refuses or reads inexactly: integers beyond 64 bits and
    lone surrogate escapes are read as before. What neither JSON nor the Java side downstream
    accepts is a Rejection: NaN and Infinity, numbers beyond a double, nesting beyond the
    parser's depth (it raised RecursionError, which no caller expected)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return Rejection("malformed-json", f"not UTF-8: {e.reason} at byte {e.start}")
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except RecursionError:
        return Rejection("malformed-json", "nested too deeply")
    except ValueError as e:
        return Rejection("malformed-json", str(e)[:200])


def _exact(payload: Any) -> bool:
    """Whether orjson read the payload as json.loads would: no float as large as an integer it
    could only have read beyond 64 bits. An explicit stack: orjson nests up to 1024 deep."""
    t = type(payload)
    if t is dict and _PLAIN.issuperset(map(type, payload.values())):
        return True  # the usual payload: one object of plain values
    if t is not dict and t is not list and t is not float:
        return True
    stack = [payload]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is dict:
            stack.extend(v.values())
        elif t is list:
            stack.extend(v)
        elif t is float and not -_HUGE < v < _HUGE:
            return False
    return True

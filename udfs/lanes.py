"""Where a record entered the system, and what a home knows of a key's order per entry lane.

A record *enters* the system when a region's job reads it from that region's ingest stream. Its
**entry lane** is that stream (named by the region), its **entry position** the shard and the
sequence number it had there (`sequence[:subsequence]` inside a KPL aggregate), and its **entry
time** Kinesis's ApproximateArrivalTimestamp. Whatever `origin` a producer writes into the
envelope, the entry is where the record was actually read: a producer's retry sent to another
region, or a redrive, enters through that region's lane.

Order within a lane is exact. A key's records share a partition key, so at any moment they enter
one shard, in sequence order; after a reshard they enter a child shard, which Kinesis numbers
after its parents (`shardId-<n>` grows) and which the job's reader starts only once the parents
are read to their end (README, Resharding). So within one lane, positions order by
(shard number, sequence, subsequence), never by comparing sequence numbers of two shards.

Across lanes there is no sequence to compare: two records that entered through different regions
are ordered by their entry times, which two regions' Kinesis clocks stamp. Where a clock could be
wrong by up to `skew_ms`, or a time is missing (a record forwarded by a job older than entry
lanes), nobody can know the order, and the checks below answer "yes, it may be out of order":
a row is marked rather than an inversion hidden.

A home keeps, per key and lane, a *mark*: the highest entry position it committed and the latest
entry time among those rows; stored and sent as text `shard/sequence/entered_ms` (entered may be
empty), kept parsed while the key is routed (this runs for every home record).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from functools import lru_cache

from udfs.kpl import is_position, position

_SHARD_NUMBER = re.compile(r"(\d+)$")


@lru_cache(maxsize=4096)
def _shard_number(shard: str) -> int | None:
    m = _SHARD_NUMBER.search(shard)
    return int(m.group(1)) if m else None


def _after(shard_a: str, pos_a: tuple, shard_b: str, pos_b: tuple) -> bool | None:
    if shard_a == shard_b:
        return pos_a > pos_b
    na, nb = _shard_number(shard_a), _shard_number(shard_b)
    if na is None or nb is None:
        return None
    return na > nb


def after(shard_a: str, seq_a: str, shard_b: str, seq_b: str) -> bool | None:
    """Whether position a comes after position b in one lane; None when the two cannot be
    compared (shard ids without a number)."""
    return _after(shard_a, position(seq_a), shard_b, position(seq_b))


@dataclass(frozen=True, slots=True)
class Entry:
    region: str  # the lane: the ingest stream of this region
    shard: str
    seq: str  # "sequence[:subsequence]"
    at: int | None  # ApproximateArrivalTimestamp, epoch ms
    pos: tuple = ()  # position(seq), for comparing

    def text(self) -> str:
        """`region/shard/seq`: the envelope's `entry` field and the lake's `entry` column."""
        return f"{self.region}/{self.shard}/{self.seq}"

    @staticmethod
    def parse(text: str | None, at: int | None) -> "Entry | None":
        if not text:
            return None
        parts = text.split("/")
        if len(parts) != 3 or not all(parts) or not is_position(parts[2]):
            return None
        return Entry(parts[0], parts[1], parts[2], at, position(parts[2]))


def valid_entry(text: str) -> bool:
    return Entry.parse(text, None) is not None


@dataclass(frozen=True, slots=True)
class Mark:
    shard: str
    seq: str
    at: int | None  # latest entry time of the lane's rows committed here
    pos: tuple = ()

    def text(self) -> str:
        return f"{self.shard}/{self.seq}/{'' if self.at is None else self.at}"

    @staticmethod
    def parse(text: str) -> "Mark | None":
        parts = text.split("/") if isinstance(text, str) else ()
        if len(parts) != 3 or not parts[0] or not is_position(parts[1]) or (parts[2] and not parts[2].isdigit()):
            return None
        return Mark(parts[0], parts[1], int(parts[2]) if parts[2] else None, position(parts[1]))


def valid_mark(text: str) -> bool:
    return Mark.parse(text) is not None


def behind(m: Mark | None, e: Entry) -> bool:
    """A record of the lane that entered after `e` was committed already (same-lane inversion).
    Incomparable positions are not evidence: a lane's own order is known exactly or not at all."""
    return m is not None and _after(m.shard, m.pos, e.shard, e.pos) is True


def overtaken(marks: dict[str, Mark], e: Entry | None, skew_ms: int) -> bool:
    """Whether a record of the key that entered after `e` through another lane may have been
    committed already. Conservative: unknown times count as later."""
    if e is None:
        return bool(marks)
    for lane, m in marks.items():
        if lane == e.region:
            continue
        if m.at is None or e.at is None or m.at > e.at - skew_ms:
            return True
    return False


def advance(m: Mark | None, e: Entry) -> Mark:
    """The lane's mark after committing `e`."""
    if m is None:
        return Mark(e.shard, e.seq, e.at, e.pos)
    newer = _after(e.shard, e.pos, m.shard, m.pos)
    at = m.at if e.at is None else e.at if m.at is None else max(m.at, e.at)
    if newer:
        return Mark(e.shard, e.seq, at, e.pos)
    return m if at == m.at else Mark(m.shard, m.seq, at, m.pos)


def merge(mine: Mark | None, theirs: str) -> Mark | None:
    """Two homes' marks of one lane (a hand-off passes the old home's on, as text): the later of each."""
    t = Mark.parse(theirs)
    if t is None:
        return mine
    return advance(mine, Entry("", t.shard, t.seq, t.at, t.pos))


def marks_text(marks: dict[str, Mark]) -> dict[str, str]:
    return {lane: m.text() for lane, m in marks.items()}


_LANE, _MARK = "\x1e", "\x1f"  # neither occurs in a region name or a mark's text


def pack_marks(marks: dict[str, Mark]) -> str:
    """A key's marks as the router stores them, rewritten on every call that commits the key:
    `lane US mark`, lanes joined by RS (a fifth of json.dumps's cost)."""
    if len(marks) == 1:  # most keys enter through one lane
        for lane, m in marks.items():
            return f"{lane}{_MARK}{m.text()}"
    return _LANE.join(f"{lane}{_MARK}{m.text()}" for lane, m in marks.items())


def unpack_marks(text: str) -> dict[str, Mark]:
    return marks_of(dict(part.split(_MARK, 1) for part in text.split(_LANE))) if text else {}


def marks_of(texts: dict[str, str]) -> dict[str, Mark]:
    out = {}
    for lane, t in texts.items():
        m = Mark.parse(t)
        if m is not None:
            out[lane] = m
    return out

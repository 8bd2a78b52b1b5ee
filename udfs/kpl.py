"""The KPL aggregated-record format (read side) and the "sequence[:subsequence]" positions that
de-aggregated records carry.

A Kinesis record whose data starts with the KPL magic F3 89 9A C2 and ends with the MD5 of the
protobuf between holds several user records. homeflow's key-ordered forward sink writes them (a
hot key's consecutive records in one Kinesis record, src/main/java/dev/homeflow/flink/
KplAggregate.java) and its source reads them back, giving each member the position
"<sequence number>:<index>", the way the KCL numbers subsequences. This module is what Python
readers (tests, the CLI's stream reads) use for the same job.
"""
from __future__ import annotations

import hashlib
import re

MAGIC = b"\xf3\x89\x9a\xc2"
_DIGEST = 16
_POSITION = re.compile(r"\d+(:\d+)?")


def deaggregate(data: bytes) -> list[bytes] | None:
    """The members' data in order, or None if `data` is not a well-formed aggregate (then it is
    one ordinary record, which is how a malformed aggregate reaches the dead-letter stream whole)."""
    if len(data) < len(MAGIC) + _DIGEST or not data.startswith(MAGIC):
        return None
    body = data[len(MAGIC):-_DIGEST]
    if hashlib.md5(body).digest() != data[-_DIGEST:]:
        return None
    try:
        return [_field(rec, 3) for rec in _fields(body, 3)]
    except ValueError:
        return None


def is_position(s: str) -> bool:
    return _POSITION.fullmatch(s) is not None


def position(s: str) -> tuple[int, int]:
    """Orders positions: a plain record's sequence number sorts before any subsequence of a later one."""
    seq, _, sub = s.partition(":")
    return int(seq), int(sub) if sub else -1


def _fields(buf: bytes, number: int) -> list[bytes]:
    """Every length-delimited field `number` of a protobuf message (other fields skipped)."""
    out, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        wire = tag & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("truncated field")
            if tag >> 3 == number:
                out.append(buf[pos:pos + n])
            pos += n
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > len(buf):
                raise ValueError("truncated field")
        else:
            raise ValueError(f"wire type {wire}")
    return out


def _field(buf: bytes, number: int) -> bytes:
    found = _fields(buf, number)
    if not found:
        raise ValueError(f"field {number} missing")
    return found[-1]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("bad varint")
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return v, pos
        shift += 7

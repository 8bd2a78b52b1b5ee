"""An exact set of strings kept on local disk, for the dedup seed of a start without state.

A job that starts without state re-reads its streams from their retention start, and must
recognise every event_id any home table already committed in that window: at 1,000 events/s and
7 days of retention that is 600 million ids, far beyond a Python set (about 100 bytes an id) in a
4 GB Managed Flink KPU. Here each string is its 128-bit BLAKE2b digest, 16 bytes on disk, and the
process holds only a bounded write buffer while building and the pages the kernel maps while
looking up (file-backed: reclaimable, never the heap).

Layout: the digests are split by their top bits into partitions of about `PARTITION_IDS` entries
(a partition is sorted in memory once, so that bounds the build's peak), each written as its
sorted high halves, then the matching low halves, as little-endian int64. A lookup hashes once,
binary-searches the high halves of one memory-mapped partition and compares the low half.

Exact up to a 128-bit collision: with n ids in the set and m lookups the chance of any false
"present" is about n*m / 2**128 (1e-22 for 600 million of each), far below the chance of a
disk error. A false "present" would drop an event, so a shorter digest is not an option.
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

PARTITION_IDS = 1 << 20  # ids per partition at most (16 MiB to sort)
BUFFER_BYTES = 32 << 20  # all partitions' write buffers together


class DiskIdSetBuilder:
    """Add strings (any order, repeats allowed), then `finish()` into a DiskIdSet."""

    def __init__(self, expected: int, directory: str | Path | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="homeflow-ids-", dir=directory))
        parts = 1
        while parts * PARTITION_IDS < max(expected, 1):
            parts *= 2
        self.bits = parts.bit_length() - 1
        self.parts = parts
        self._flush_at = max(64 << 10, BUFFER_BYTES // parts)
        self._buf = [bytearray() for _ in range(parts)]
        self._files = [open(self.dir / f"{p:05d}.raw", "wb") for p in range(parts)]
        self.added = 0

    def add_all(self, strings: Iterable[str]) -> None:
        # The per-id loop is the build's cost (about 0.5 us an id): names bound locally.
        blake, bufs, files, flush_at, bits = hashlib.blake2b, self._buf, self._files, self._flush_at, self.bits
        n = 0
        for s in strings:
            d = blake(s.encode("utf-8", "surrogatepass"), digest_size=16).digest()
            p = (d[7] << 8 | d[6]) >> (16 - bits) if bits else 0
            b = bufs[p]
            b += d
            n += 1
            if len(b) >= flush_at:
                files[p].write(b)
                b.clear()
        self.added += n

    def finish(self) -> "DiskIdSet":
        for p, f in enumerate(self._files):
            f.write(self._buf[p])
            f.close()
        self._buf = []
        size = 0
        for p in range(self.parts):
            raw = self.dir / f"{p:05d}.raw"
            pairs = np.fromfile(raw, dtype="<i8").reshape(-1, 2)
            raw.unlink()
            if len(pairs):
                pairs = np.unique(pairs, axis=0)  # sorted by (high, low), repeats gone
            size += len(pairs)
            with open(self.dir / f"{p:05d}.ids", "wb") as out:
                out.write(np.ascontiguousarray(pairs[:, 0]).tobytes())
                out.write(np.ascontiguousarray(pairs[:, 1]).tobytes())
        return DiskIdSet(self.dir, self.bits, size)

    def discard(self) -> None:
        for f in self._files:
            f.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class DiskIdSet:
    def __init__(self, directory: Path, bits: int, size: int):
        self.dir, self.bits, self.size = directory, bits, size
        self._parts: list[tuple[np.ndarray, np.ndarray] | None] = [None] * (1 << bits)

    def __len__(self) -> int:
        return self.size

    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.dir.glob("*.ids"))

    def _partition(self, p: int) -> tuple[np.ndarray, np.ndarray]:
        got = self._parts[p]
        if got is None:
            path = self.dir / f"{p:05d}.ids"
            n = path.stat().st_size // 16
            if n:
                m = np.memmap(path, dtype="<i8", mode="r")
                got = (m[:n], m[n:])
            else:
                got = (np.empty(0, "<i8"), np.empty(0, "<i8"))
            self._parts[p] = got
        return got

    def __contains__(self, s: str) -> bool:
        d = hashlib.blake2b(s.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        p = (d[7] << 8 | d[6]) >> (16 - self.bits) if self.bits else 0  # as the builder split them
        high, low = self._partition(p)
        hi = int.from_bytes(d[:8], "little", signed=True)
        i = int(high.searchsorted(hi))
        lo = int.from_bytes(d[8:], "little", signed=True)
        while i < len(high) and high[i] == hi:
            if low[i] == lo:
                return True
            i += 1
        return False

    def close(self) -> None:
        """Unmap and delete the files."""
        self._parts = [None] * (1 << self.bits)
        shutil.rmtree(self.dir, ignore_errors=True)


def empty(directory: str | Path | None = None) -> DiskIdSet:
    return DiskIdSetBuilder(0, directory).finish()


def build(strings: Iterable[str], expected: int = 0, directory: str | Path | None = None) -> DiskIdSet:
    b = DiskIdSetBuilder(expected, directory)
    try:
        b.add_all(strings)
        return b.finish()
    except BaseException:
        b.discard()
        raise


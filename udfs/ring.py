"""Consistent-hash ring: deterministic in every region and process (no Python `hash()`)."""
from __future__ import annotations

import bisect
import hashlib
from typing import Iterable


def stable_hash(text: str) -> int:
    # blake2b is in the stdlib, fast, and identical on every platform and Python version.
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


class HashRing:
    """Each region owns `vnodes_per_weight * weight` points; a key belongs to the next point."""

    __slots__ = ("_points", "_owners")

    def __init__(self, weights: Iterable[tuple[str, int]], vnodes_per_weight: int = 64):
        pairs: list[tuple[int, str]] = []
        for region, weight in weights:
            for i in range(weight * vnodes_per_weight):
                pairs.append((stable_hash(f"{region}#{i}"), region))
        if not pairs:
            raise ValueError("a hash ring needs at least one region with weight > 0")
        # Ties between points are broken by region name so that every process agrees.
        pairs.sort()
        self._points = [p for p, _ in pairs]
        self._owners = [r for _, r in pairs]

    def owner(self, key: str) -> str:
        i = bisect.bisect_right(self._points, stable_hash(key))
        return self._owners[i % len(self._owners)]

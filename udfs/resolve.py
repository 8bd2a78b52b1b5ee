"""Deterministic resolution, on read, of an event_id committed by two home regions.

One writer per key makes this impossible while routing tables agree; during a partition two
regions can both believe they are a key's home and both commit its events. Every reader must then
keep the same copy: the one routed under the newest routing epoch (the newer view of who is
home), and on equal epochs the one in the lexicographically smallest home region. The rule
depends only on the rows, so every region, engine and re-read picks the same copy.
"""
from __future__ import annotations

from typing import Iterable, Mapping


def winner_rank(row: Mapping) -> tuple:
    return (-int(row["epoch"]), str(row["home_region"]))


def resolve(rows: Iterable[Mapping]) -> tuple[list[Mapping], int]:
    """Keep one row per event_id; returns (kept rows, number of duplicates dropped)."""
    best: dict[str, Mapping] = {}
    dropped = 0
    for r in rows:
        cur = best.get(r["event_id"])
        if cur is None:
            best[r["event_id"]] = r
            continue
        dropped += 1
        if winner_rank(r) < winner_rank(cur):
            best[r["event_id"]] = r
    return list(best.values()), dropped

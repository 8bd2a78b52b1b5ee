"""Continuous sequenced traffic for the drills: one producer thread per region it writes to, each
event numbered per (key, region it entered), so the lake can be checked for per-key order.

A region's producers can be moved to another region (what clients do when their region is lost)
and back. Each target region has exactly one writer thread, so a (key, region) sequence number
is also the order of the records in that region's ingest shard.

With `retry_share`, that share of events is sent a second time, unchanged (the same event_id and
`origin`), into another region's ingest stream right after: a producer retrying elsewhere. Such a
copy enters through that region's lane (udfs/lanes.py); whichever copy reaches the key's home first
is committed, once.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from conf.settings import Settings
from connectors.producer import put
from udfs.envelope import Envelope


@dataclass(frozen=True)
class Event:
    event_id: str
    key: str
    origin: str  # the region whose ingest stream accepted it
    seq: int  # per (key, origin)
    at_ms: int  # when the emulator accepted it


@dataclass
class _Writer:
    region: str
    shares: set[str]  # regions whose producers write here now
    thread: threading.Thread | None = None
    failures: int = 0


@dataclass
class Traffic:
    settings: Settings
    regions: list[str]
    keys: list[str]
    rate: float  # events per second per producing region
    run_id: str
    batch_ms: int = 100
    retry_share: float = 0.0
    max_s: float | None = None  # stops by itself this long after start, whatever the drill does
    events: list[Event] = field(default_factory=list)
    refused: int = 0  # events a region refused (its gate was down): never entered the system
    retried: int = 0  # copies sent into another region

    def __post_init__(self):
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._writers = {r: _Writer(r, {r}) for r in self.regions}
        self._seq: dict[tuple[str, str], int] = {}
        self._n = 0
        import random
        self._rng = random.Random(self.run_id)

    def start(self) -> "Traffic":
        for w in self._writers.values():
            w.thread = threading.Thread(target=self._run, args=(w,), daemon=True, name=f"traffic-{w.region}")
            w.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for w in self._writers.values():
            if w.thread:
                w.thread.join(30)

    def move(self, from_region: str, to_region: str) -> None:
        """`from_region`'s producers write to `to_region` from now on (and their own share too)."""
        with self._lock:
            shares = self._writers[from_region].shares
            self._writers[from_region].shares = set()
            self._writers[to_region].shares |= shares

    def restore(self, region: str) -> None:
        """`region`'s producers write to it again."""
        with self._lock:
            for w in self._writers.values():
                w.shares.discard(region)
            self._writers[region].shares.add(region)

    def accepted(self) -> list[Event]:
        with self._lock:
            return list(self.events)

    def _run(self, w: _Writer) -> None:
        key_i = 0
        next_at = started = time.monotonic()
        while not self._stop.is_set():
            if self.max_s is not None and time.monotonic() - started >= self.max_s:
                break
            with self._lock:
                n = int(self.rate * len(w.shares) * self.batch_ms / 1000)
            if n:
                batch = []
                for _ in range(n):
                    key = self.keys[key_i % len(self.keys)]
                    key_i += 1
                    with self._lock:
                        self._n += 1
                        eid = f"{self.run_id}-{w.region}-{self._n:08d}"
                    batch.append((eid, key))
                self._send(w, batch)
            next_at += self.batch_ms / 1000
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _send(self, w: _Writer, batch: list[tuple[str, str]]) -> None:
        # Numbers are handed out only for accepted records: a refused batch never entered the
        # system, and the next batch reuses its numbers, keeping each (key, region) sequence gapless.
        now = int(time.time() * 1000)
        records, numbered, cursor = [], [], {}
        for eid, key in batch:
            cursor[key] = cursor.get(key, self._seq.get((key, w.region), 0)) + 1
            e = Envelope(eid, key, now, w.region, payload={"seq": cursor[key], "drill": self.run_id})
            records.append((key, e.to_json().encode()))
            numbered.append((eid, key, cursor[key]))
        try:
            put(self.settings, w.region, records)
        except Exception:  # noqa: BLE001 - the region is unreachable: these events never happened
            w.failures += 1
            with self._lock:
                self.refused += len(batch)
            return
        at = int(time.time() * 1000)
        with self._lock:
            for eid, key, seq in numbered:
                self._seq[(key, w.region)] = seq
                self.events.append(Event(eid, key, w.region, seq, at))
        if self.retry_share:
            copies = [r for r in records if self._rng.random() < self.retry_share]
            others = [r for r in self.regions if r != w.region]
            if copies and others:
                try:
                    put(self.settings, self._rng.choice(others), copies)
                    with self._lock:
                        self.retried += len(copies)
                except Exception:  # noqa: BLE001 - that region is unreachable: the retry never happened
                    pass

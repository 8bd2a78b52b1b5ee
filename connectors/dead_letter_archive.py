"""Reading the dead-letter archive (homeflow.dead_letters_<region>, written by the job) and
checking which event_ids some home table already holds: what `homeflow dead-letters` needs."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from conf.settings import Settings
from connectors import lake

FIELDS = ("at", "reason", "detail", "region", "source", "event_id", "key", "raw", "raw_encoding")


@dataclass(frozen=True)
class Selection:
    reason: str | None = None
    key: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def expression(self):
        from pyiceberg.expressions import AlwaysTrue, And, EqualTo, GreaterThanOrEqual, LessThan
        expr = AlwaysTrue()
        if self.reason:
            expr = And(expr, EqualTo("reason", self.reason))
        if self.key:
            expr = And(expr, EqualTo("key", self.key))
        if self.since_ms is not None:
            expr = And(expr, GreaterThanOrEqual("at", _iso(self.since_ms)))
        if self.until_ms is not None:
            expr = And(expr, LessThan("at", _iso(self.until_ms)))
        return expr


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat()


def _ms(value) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)


def read(settings: Settings, region: str, selection: Selection = Selection()) -> list[dict]:
    """The region's archived dead letters that match, oldest first, `at` in epoch ms."""
    table = lake.load_dead_letter_table(settings, region)
    if table is None:
        raise RuntimeError(f"no dead-letter archive in {region}: create it with `homeflow lake init` "
                           f"(a job of this version writes it)")
    if table.current_snapshot() is None:
        return []
    rows = table.scan(row_filter=selection.expression(), selected_fields=FIELDS).to_arrow().to_pylist()
    for r in rows:
        r["at"] = _ms(r["at"])
    return sorted(rows, key=lambda r: (r["at"], r["source"] or ""))


def summary(rows: Iterable[dict]) -> list[tuple[str, str, int]]:
    """(hour, reason, count), by hour then reason."""
    c = Counter((datetime.fromtimestamp(r["at"] / 1000, timezone.utc).strftime("%Y-%m-%dT%H:00Z"), r["reason"])
                for r in rows)
    return [(h, reason, n) for (h, reason), n in sorted(c.items())]


def export(rows: Iterable[dict], path: Path) -> int:
    """JSON Lines a person can fix (edit `raw`) and give back to `redrive --file`."""
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({k: r.get(k) for k in FIELDS}, ensure_ascii=False) + "\n")
            n += 1
    return n


def load_file(path: Path) -> list[dict]:
    """An exported (possibly fixed) file; every line needs region, raw and raw_encoding."""
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as e:
            raise ValueError(f"{path}:{i}: not JSON: {e}") from None
        if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in ("region", "raw")):
            raise ValueError(f"{path}:{i}: needs string fields region and raw (as `dead-letters export` writes)")
        out.append(doc)
    return out


def committed(settings: Settings, event_ids: set[str]) -> set[str]:
    """Which of `event_ids` some home table holds now (each table scanned with an IN filter)."""
    from pyiceberg.expressions import In
    found: set[str] = set()
    ids = sorted(event_ids)
    for home in settings.job.regions:
        table = lake.load_table(settings, home)
        if table is None or table.current_snapshot() is None:
            continue
        for i in range(0, len(ids), 1000):
            chunk = ids[i:i + 1000]
            t = table.scan(row_filter=In("event_id", chunk), selected_fields=("event_id",)).to_arrow()
            found.update(t["event_id"].to_pylist())
    return found

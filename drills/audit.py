"""What a drill left in the lake, checked against what its traffic produced.

Every home table is read snapshot by snapshot (the data files each commit added), so every row
has its commit time. A key's rows from one origin region are in order when, sorted by
(routing epoch, routed_at) — the order of the home tables' commits, table after table as the key
moves — their producer sequence numbers rise. A row below the sequence already seen is *late*:
*reported* when the lake marks it (`unordered`), *unreported* otherwise (a broken guarantee).
A producer's retry that entered through another region is checked in its entry lane instead
(`lane_check`, which also proves every mark justified).
DuckDB's own Iceberg reader recounts each table, as a second, independent reader.
"""
from __future__ import annotations

import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyiceberg.manifest import ManifestEntryStatus
from pyiceberg.table.snapshots import Operation

from conf.settings import Settings
from connectors import lake

COLUMNS = ("event_id", "key", "origin", "hops", "epoch", "home_region", "payload", "routed_at", "held_ms",
           "unordered", "source", "entry", "entered_at")


@dataclass
class Row:
    event_id: str
    key: str
    origin: str
    seq: int
    epoch: int
    routed_at: int
    held_ms: int
    unordered: str | None
    home: str
    hops: int
    commit_ms: int
    commit_seq: int
    source: str = ""  # stream/shard/sequence the home read it from
    entry: str = ""  # region/shard/sequence where it entered the system (udfs/lanes.py)
    entered_at: int | None = None
    file_pos: int = 0  # its place in the data file: the writer's order within one commit
    # The data file: a commit can hold several (the writers of several checkpoints whose commits
    # were retried together, several writer subtasks), and only positions in one file are ordered.
    file: str = ""

    @property
    def shard(self) -> str:
        parts = self.source.rsplit("/", 2)
        return parts[-2] if len(parts) == 3 else ""


def table_rows(settings: Settings, home: str, run_id: str | None = None) -> list[Row]:
    """Rows of `home`'s table with the time of the commit that added each. The job compacts its
    table as it runs (a rewrite is a `replace` snapshot that moves rows into new files), so a row
    is dated by the append that first committed it: the files each append snapshot ADDED, found
    in every manifest any snapshot lists (each read once) and read from those original files,
    which stay until snapshots are expired (drills never expire). A rewrite keeps rows as they
    were, so these are the current snapshot's rows; the total is checked against its summary."""
    t = lake.load_table(settings, home)
    snap = t.current_snapshot() if t is not None else None
    if snap is None:
        return []
    snaps = {s.snapshot_id: s for s in t.metadata.snapshots}
    manifests = {m.manifest_path: m for s in snaps.values() for m in s.manifests(t.io)}
    files, records = [], 0
    for m in manifests.values():
        for e in m.fetch_manifest_entry(t.io, discard_deleted=True):
            added_by = snaps.get(e.snapshot_id)
            if e.status != ManifestEntryStatus.ADDED or (added_by and added_by.summary.operation == Operation.REPLACE):
                continue
            if added_by is None:
                raise RuntimeError(f"{home}: data file {e.data_file.file_path} was added by an expired snapshot; "
                                   "the audit needs every append snapshot")
            files.append((e.data_file.file_path, e.snapshot_id))
            records += e.data_file.record_count
    total = int(lake.summary(snap).get("total-records", records))
    if records != total:
        raise RuntimeError(f"{home}: appends added {records} rows but the current snapshot holds {total} "
                           "(rows deleted or rewritten otherwise than by compaction?)")

    def read(item):
        path, sid = item
        return sid, lake.read_data_file(t.io, path, COLUMNS).to_pylist()
    out: list[Row] = []
    with ThreadPoolExecutor(8) as pool:
        for (added_path, _), (sid, rows) in zip(files, pool.map(read, files)):
            added = snaps[sid]
            for i, r in enumerate(rows):
                p = json.loads(r["payload"]) if r["payload"] else {}
                if run_id is not None and p.get("drill") != run_id:
                    continue
                out.append(Row(r["event_id"], r["key"], r["origin"], int(p.get("seq", 0)), r["epoch"],
                               r["routed_at"] or 0, r["held_ms"] or 0, r["unordered"], r["home_region"],
                               r["hops"], added.timestamp_ms, added.sequence_number, r["source"] or "",
                               r["entry"] or "", r["entered_at"], i, added_path))
    return out


def dead_letters(settings: Settings, regions: list[str], run_id: str) -> dict[str, str]:
    """event_id -> reason, for this drill's events in the regions' dead-letter streams."""
    from connectors.stream_reader import read_stream
    from udfs.dead_letter import original_bytes
    out: dict[str, str] = {}
    for r in regions:
        for rec in read_stream(settings, r, settings.streams.dead_letter):
            try:
                doc = json.loads(rec["data"])
                env = json.loads(original_bytes(rec["data"] if isinstance(rec["data"], str) else rec["data"].decode()))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if isinstance(env, dict) and run_id in str(env.get("event_id", "")):
                out[env["event_id"]] = f"{doc.get('reason')} in {r}: {doc.get('detail', '')[:200]}"
    return out


def duckdb_counts(settings: Settings, regions: list[str]) -> dict[str, tuple[int, int]]:
    from connectors.duckdb_reader import count_rows
    return {r: count_rows(settings, r) for r in regions}


@dataclass
class Audit:
    produced: int
    committed: int
    lost: list[str]
    duplicated: dict[str, int]
    late: int
    reported: int
    unreported: list[dict]
    stranded: int
    rows: list[Row]
    unexpected: int  # rows of this drill that no producer sent (must be 0)

    def summary(self) -> dict:
        return {"produced": self.produced, "committed": self.committed, "lost": len(self.lost),
                "duplicated": len(self.duplicated), "inversions": self.late, "inversions_reported": self.reported,
                "inversions_unreported": len(self.unreported), "stranded": self.stranded,
                "unexpected_rows": self.unexpected}


def audit(settings: Settings, regions: list[str], produced: list, run_id: str) -> Audit:
    return audit_rows([r for home in regions for r in table_rows(settings, home, run_id)], produced)


def first_commits(rows: list[Row]) -> dict[str, Row]:
    """event_id -> the row of its first commit (a duplicate's later copies are not order evidence)."""
    first: dict[str, Row] = {}
    for r in sorted(rows, key=lambda r: (r.commit_ms, r.commit_seq)):
        first.setdefault(r.event_id, r)
    return first


def audit_rows(rows: list[Row], produced: list) -> Audit:
    """The whole-set checks on rows already read (pure; unit-tested)."""
    want = {e.event_id: e for e in produced}
    copies: dict[str, int] = defaultdict(int)
    for r in rows:
        copies[r.event_id] += 1
    lost = [e for e in want if e not in copies]
    dup = {e: n for e, n in copies.items() if n > 1}
    unexpected = sum(1 for r in rows if r.event_id not in want)
    late = reported = 0
    unreported = []
    by: dict[tuple[str, str], list[Row]] = defaultdict(list)
    first = first_commits(rows)
    for r in first.values():
        # A retry's copy that entered through another region's lane: its order is that lane's
        # (lane_check), not its origin's producer counter.
        if not r.entry or r.entry.split("/", 1)[0] == r.origin:
            by[(r.key, r.origin)].append(r)
    for (key, origin), rs in by.items():
        rs.sort(key=lambda r: (r.epoch, r.routed_at))
        high = 0
        for r in rs:
            if r.seq < high:
                late += 1
                if r.unordered:
                    reported += 1
                else:
                    unreported.append({"key": key, "origin": origin, "seq": r.seq, "after": high, "home": r.home,
                                       "epoch": r.epoch, "event_id": r.event_id})
            high = max(high, r.seq)
    stranded = sum(1 for r in first.values() if (r.unordered or "").startswith("stranded"))
    return Audit(len(want), len(want) - len(lost), lost, dup, late, reported, unreported, stranded, rows, unexpected)


@dataclass
class LaneCheck:
    """What the lake's order marks say against what the rows show, per key and entry lane."""
    inversions: int  # rows committed after a row of their lane that entered later
    unmarked: list[Row]  # of those, not marked: order broken silently
    unjustified: list[Row]  # marked, though no row of the key that entered later was committed first
    marked: int
    no_entry: int  # rows without an entry (written by a job older than entry lanes)


def lane_check(rows: list[Row], skew_ms: int = 100) -> LaneCheck:
    """Every mark justified and every inversion marked, by the rule of udfs/lanes.py: a key's rows
    in commit order (home tables one after another by routing epoch, each in commit order, the
    writer's order within a commit); in its lane a row is late when a higher position was committed
    before it; a `stranded`/`handoff-timeout` mark is also justified by a row of another lane that
    entered later (by entry time, within `skew_ms` counted as later). Rows of one commit in
    different data files have no order the audit can see (they became visible together): such a
    pair is no inversion an unmarked row must answer for, nor does it make a mark unjustified."""
    from udfs.lanes import Entry, after
    by_key: dict[str, list[Row]] = defaultdict(list)
    for r in first_commits(rows).values():
        by_key[r.key].append(r)
    inversions, unmarked, unjustified, marked, no_entry = 0, [], [], 0, 0
    for rs in by_key.values():
        rs.sort(key=lambda r: (r.epoch, r.home, r.commit_seq, r.file, r.file_pos))
        commits: dict[tuple, list[Row]] = defaultdict(list)
        for r in rs:
            commits[(r.epoch, r.home, r.commit_seq)].append(r)
        before: list[tuple[Entry, Row]] = []
        for r in rs:
            e = Entry.parse(r.entry, r.entered_at)
            marked += bool(r.unordered)
            if e is None:
                no_entry += 1
                continue
            # ahead: its lane's later entries committed before it, or in another file of its commit
            seen = before + [(b, x) for x in commits[(r.epoch, r.home, r.commit_seq)] if x.file != r.file
                             for b in [Entry.parse(x.entry, x.entered_at)] if b is not None]
            ahead = [rb for b, rb in seen if b.region == e.region and after(b.shard, b.seq, e.shard, e.seq)]
            late = any(rb.commit_seq != r.commit_seq or rb.file == r.file for rb in ahead)
            inversions += late
            if late and not r.unordered:
                unmarked.append(r)
            if r.unordered and not ahead:
                overtaken = r.unordered.split(":")[0] in ("stranded", "handoff-timeout") and any(
                    b.region != e.region and (b.at is None or e.at is None or b.at > e.at - skew_ms)
                    for b, _ in seen)
                if not overtaken:
                    unjustified.append(r)
            before.append((e, r))
    return LaneCheck(inversions, unmarked, unjustified, marked, no_entry)


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]

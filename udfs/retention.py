"""Which snapshots `homeflow maintain` may expire (pure logic; the I/O is in connectors/maintenance.py).

The rule that matters is the Flink committer's. After a restore, Iceberg's committer asks the
table which checkpoint its job committed last: it walks from the current snapshot to its parent,
and its parent's parent, until it meets a snapshot whose summary carries its `flink.job-id`
(`SinkUtil.getMaxCommittedCheckpointId`). The walk stops at the first snapshot that is gone. If
expiry has cut the chain above the job's newest snapshot, the answer is "nothing committed" and
the restored committer commits the checkpoint's files a second time (or fails on files already
cleaned up). Any commit that is not Flink's (compaction, a Python commit) puts a snapshot above
the Flink ones, so "keep the last N" is not enough: the chain must reach down to the newest
snapshot of every Flink job that may still be restored.

Kept:
  * the current snapshot and its `retain_last - 1` nearest ancestors;
  * every snapshot younger than the age cutoff (a reader may be scanning it);
  * the chain from the current snapshot down to the newest snapshot of each protected Flink job:
    the job of the newest Flink snapshot, and every job that committed after the cutoff;
  * pinned snapshots (e.g. the one a published lake view names).
Everything else is expired.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

FLINK_JOB_ID = "flink.job-id"


@dataclass(frozen=True)
class SnapshotInfo:
    snapshot_id: int
    parent_id: int | None
    timestamp_ms: int
    flink_job_id: str | None = None


@dataclass
class RetentionPlan:
    keep: dict[int, str] = field(default_factory=dict)  # snapshot id -> why it is kept
    expire: list[int] = field(default_factory=list)
    flink_resume_snapshot: dict[str, int] = field(default_factory=dict)  # job id -> its newest snapshot

    def summary(self) -> str:
        return f"keep {len(self.keep)}, expire {len(self.expire)}"


def ancestors(snapshots: dict[int, SnapshotInfo], current: int | None) -> list[SnapshotInfo]:
    """The current snapshot, its parent, ... as far as the chain is unbroken."""
    chain = []
    seen = set()
    while current is not None and current in snapshots and current not in seen:
        seen.add(current)
        s = snapshots[current]
        chain.append(s)
        current = s.parent_id
    return chain


def plan(snapshots: Iterable[SnapshotInfo], current: int | None, now_ms: int, older_than_ms: int,
         retain_last: int, pinned: Iterable[int] = (), protect_flink: bool = True) -> RetentionPlan:
    if retain_last < 1:
        raise ValueError("retain_last must be at least 1 (the current snapshot)")
    if older_than_ms < 0:
        raise ValueError("older_than_ms must not be negative")
    by_id = {s.snapshot_id: s for s in snapshots}
    cutoff = now_ms - older_than_ms
    out = RetentionPlan()

    def keep(sid: int, why: str) -> None:
        out.keep.setdefault(sid, why)

    chain = ancestors(by_id, current)
    for s in chain[:retain_last]:
        keep(s.snapshot_id, f"one of the last {retain_last}")
    for s in by_id.values():
        if s.timestamp_ms >= cutoff:
            keep(s.snapshot_id, "younger than the age cutoff")
    for sid in pinned:
        if sid in by_id:
            keep(sid, "pinned (published view)")

    if protect_flink:
        # Newest first: the first snapshot met per job is the one its committer looks for.
        newest_by_job: dict[str, int] = {}
        for depth, s in enumerate(chain):
            if s.flink_job_id and s.flink_job_id not in newest_by_job:
                newest_by_job[s.flink_job_id] = depth
        protected = {}
        newest_flink = min(newest_by_job.items(), key=lambda kv: kv[1], default=None)
        if newest_flink:
            protected[newest_flink[0]] = newest_flink[1]
        for job, depth in newest_by_job.items():
            if chain[depth].timestamp_ms >= cutoff:
                protected[job] = depth
        for job, depth in protected.items():
            out.flink_resume_snapshot[job] = chain[depth].snapshot_id
            for s in chain[:depth + 1]:
                keep(s.snapshot_id, f"Flink job {job[:8]}… resumes from here" if s is chain[depth]
                     else "on the chain to a Flink job's last commit")

    out.expire = sorted(sid for sid in by_id if sid not in out.keep)
    return out


def files_to_delete(expired_files: Iterable[str], kept_files: Iterable[str]) -> set[str]:
    """Files that only expired snapshots reach. A data file a kept snapshot still reads (or a
    manifest it shares) stays."""
    return set(expired_files) - set(kept_files)


def orphans(listed: Iterable[tuple[str, float]], referenced: Iterable[str], now_s: float,
            min_age_s: float) -> list[str]:
    """Files under the table's location that no metadata reaches and that are older than
    `min_age_s`. The age is the safety margin: a running writer's data files exist before the
    checkpoint that commits them, and a concurrent commit writes its metadata before the pointer
    swap; both look orphaned until then."""
    refs = set(referenced)
    return sorted(path for path, modified in listed if path not in refs and now_s - modified >= min_age_s)


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'90s', '10m', '1h', '3d' (or plain seconds) -> seconds."""
    t = text.strip().lower()
    try:
        if t and t[-1] in UNITS:
            value = float(t[:-1]) * UNITS[t[-1]]
        else:
            value = float(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (use e.g. 90s, 10m, 1h, 3d)") from None
    if value < 0:
        raise ValueError(f"{text!r}: a duration cannot be negative")
    return value

"""The job's snapshot expiry (dev.homeflow.flink.SnapshotExpiry) against `homeflow maintain`'s rule
(udfs/retention.py), on random snapshot histories.

The job hands Iceberg's ExpireSnapshots one cutoff; Iceberg keeps a branch's ancestors while they
are among the last N or not older than the cutoff (RemoveSnapshots.computeBranchSnapshotsToRetain,
emulated here in four lines). What Iceberg then keeps must be exactly what the Python rule keeps:
the last N, everything younger than the age, the chain to each protected Flink job's newest commit.
One difference, on the safe side: the Python rule keeps the published view's snapshot alone, while
Iceberg's branch retention cannot keep an ancestor without those above it, so the job keeps the
chain down to it (the view names a snapshot of the last second or so: the same snapshots in
practice). The control: Iceberg's plain age cutoff (what the job would
do without the rule) expires a snapshot the rule keeps in most histories."""
from __future__ import annotations

import random

import pytest

from udfs.retention import SnapshotInfo, plan

NOW = 10_000_000_000
MIN = 60_000


def _history(rng: random.Random) -> list[SnapshotInfo]:
    """A linear history, oldest first: Flink jobs (restores start new ones) with compactions and
    Python commits (no job id) in between, timestamps strictly rising."""
    n = rng.randint(1, 60)
    jobs = [f"job-{i}" for i in range(rng.randint(1, 4))]
    job, ts, out = jobs[0], NOW - n * 20 * MIN - rng.randint(1, 300) * MIN, []
    for i in range(n):
        if rng.random() < 0.1:
            job = rng.choice(jobs)
        ts += rng.randint(1, 20 * MIN)
        out.append(SnapshotInfo(i + 1, i or None, ts, None if rng.random() < 0.3 else job))
    return out


def _iceberg_keeps(chain: list[SnapshotInfo], cutoff: int, retain_last: int) -> set[int]:
    kept = set()
    for s in chain:
        if len(kept) < retain_last or s.timestamp_ms >= cutoff:
            kept.add(s.snapshot_id)
        else:
            break
    return kept


def _java_cutoff(gw, chain, pinned_depth, older_than):
    ts = gw.new_array(gw.jvm.long, len(chain))
    jobs = gw.new_array(gw.jvm.String, len(chain))
    for d, s in enumerate(chain):
        ts[d] = s.timestamp_ms
        jobs[d] = s.flink_job_id
    return gw.jvm.dev.homeflow.flink.SnapshotExpiry.cutoff(ts, jobs, pinned_depth, NOW, older_than)


@pytest.mark.parametrize("seed", range(4))
def test_the_jobs_cutoff_keeps_exactly_what_maintain_keeps(java_gateway, seed):
    rng = random.Random(seed)
    cut_something = rule_mattered = 0
    for _ in range(100):
        history = _history(rng)
        chain = list(reversed(history))  # current first
        older_than = rng.randint(1, 600) * MIN
        retain_last = rng.randint(1, 5)
        pinned = rng.choice([None, *[s.snapshot_id for s in chain]])
        pinned_depth = next((d for d, s in enumerate(chain) if s.snapshot_id == pinned), -1)
        want = plan(history, chain[0].snapshot_id, NOW, older_than, retain_last,
                    pinned=[pinned] if pinned else [])
        cutoff = _java_cutoff(java_gateway, chain, pinned_depth, older_than)
        got = _iceberg_keeps(chain, cutoff, retain_last)
        expected = set(want.keep) | {s.snapshot_id for s in chain[:pinned_depth + 1]}
        assert got == expected, (history, older_than, retain_last, pinned)
        cut_something += bool(want.expire)
        # The control: Iceberg's own age rule, without the lowered cutoff.
        rule_mattered += not set(want.keep) <= _iceberg_keeps(chain, NOW - older_than, retain_last)
    assert cut_something > 20 and rule_mattered > 10, (cut_something, rule_mattered)


def test_a_compaction_on_top_does_not_cut_the_flink_jobs_chain(java_gateway):
    # Newest first: two compactions (no job id) over Flink job A's commits, all older than an hour.
    chain = [SnapshotInfo(5, 4, NOW - 2 * 60 * MIN, None), SnapshotInfo(4, 3, NOW - 3 * 60 * MIN, None),
             SnapshotInfo(3, 2, NOW - 4 * 60 * MIN, "A"), SnapshotInfo(2, 1, NOW - 5 * 60 * MIN, "A"),
             SnapshotInfo(1, None, NOW - 6 * 60 * MIN, "A")]
    cutoff = _java_cutoff(java_gateway, chain, -1, 60 * MIN)
    assert _iceberg_keeps(chain, cutoff, 1) == {5, 4, 3}
    assert _iceberg_keeps(chain, NOW - 60 * MIN, 1) == {5}  # what Iceberg's age rule alone keeps

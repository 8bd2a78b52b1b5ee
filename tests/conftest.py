"""Shared test helpers. The sandbox helpers live in sandbox/local_cluster.py (the benchmarks use them
too); each test's sandbox has its own port so a developer's sandbox on 4566 is untouched."""
from __future__ import annotations

from pathlib import Path

from connectors import lake


def latest_checkpoint(root: Path) -> Path:
    """The newest completed checkpoint (a chk-N with _metadata) under a checkpoint directory."""
    chks = [p for p in root.glob("**/chk-*") if (p / "_metadata").exists()]
    assert chks, f"no completed checkpoint under {root}"
    return max(chks, key=lambda p: (p / "_metadata").stat().st_mtime)


def first_commit_index(settings, region) -> dict[str, int]:
    """event_id -> index of the first snapshot (in commit order) whose table state contains it."""
    table = lake.load_table(settings, region)
    out: dict[str, int] = {}
    for i, snap in enumerate(sorted(table.metadata.snapshots, key=lambda s: s.sequence_number)):
        for eid in table.scan(snapshot_id=snap.snapshot_id, selected_fields=("event_id",)).to_arrow()["event_id"].to_pylist():
            out.setdefault(eid, i)
    return out

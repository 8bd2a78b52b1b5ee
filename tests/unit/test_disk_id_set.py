"""The dedup seed's on-disk set (udfs/disk_id_set.py): exact membership over many partitions,
unicode and lone surrogates, repeats, an empty set, and files removed on close."""
from __future__ import annotations

import random
import uuid

import pytest

from udfs import disk_id_set


@pytest.fixture
def small_partitions(monkeypatch):
    monkeypatch.setattr(disk_id_set, "PARTITION_IDS", 500)  # many partitions from a small set


def test_every_member_is_found_and_no_other_string(tmp_path, small_partitions):
    rng = random.Random(7)
    members = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(20_000)]
    members += ["ключ-1", "鍵/2", "🔑", "a\ud800b", ""]
    ids = disk_id_set.build(members + members[:100], expected=len(members), directory=tmp_path)
    assert ids.bits >= 5 and len(ids) == len(set(members))
    assert all(m in ids for m in members)
    others = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(20_000)] + ["ключ-2", "a\ud801b", " "]
    assert not any(o in ids for o in others)
    assert ids.disk_bytes() == 16 * len(ids)
    d = ids.dir
    ids.close()
    assert not d.exists()


def test_an_empty_set_and_one_built_without_an_estimate(tmp_path):
    assert "x" not in disk_id_set.empty(tmp_path)
    ids = disk_id_set.build((f"e{i}" for i in range(3_000)), directory=tmp_path)
    assert "e2999" in ids and "e3000" not in ids and len(ids) == 3_000


def test_a_failed_build_leaves_no_files(tmp_path):
    def broken():
        yield "a"
        raise RuntimeError("S3 went away")
    with pytest.raises(RuntimeError):
        disk_id_set.build(broken(), directory=tmp_path)
    assert list(tmp_path.iterdir()) == []

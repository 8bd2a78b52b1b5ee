"""The drill audit's checks on hand-made rows: each failure it must catch, caught."""
from __future__ import annotations

from drills.audit import Row, audit_rows, percentile
from drills.traffic import Event


def ev(i: int, key: str = "k", origin: str = "us-east-1", seq: int | None = None) -> Event:
    return Event(f"e{i}", key, origin, seq if seq is not None else i, 0)


def row(e: Event, epoch: int = 1, routed_at: int = 0, unordered: str | None = None, home: str = "us-east-1",
        commit: int = 0) -> Row:
    return Row(e.event_id, e.key, e.origin, e.seq, epoch, routed_at or e.seq, 0, unordered, home, 0, commit, commit)


def test_clean_run_has_nothing_to_report():
    evs = [ev(i) for i in range(1, 6)]
    a = audit_rows([row(e) for e in evs], evs)
    assert a.summary()["lost"] == a.summary()["duplicated"] == a.late == 0 and a.committed == 5


def test_lost_duplicated_and_unexpected_rows_are_counted():
    evs = [ev(i) for i in range(1, 5)]
    rows = [row(evs[0]), row(evs[1]), row(evs[1], home="eu-west-1"), row(ev(99))]
    a = audit_rows(rows, evs)
    assert sorted(a.lost) == ["e3", "e4"] and a.duplicated == {"e2": 2} and a.unexpected == 1


def test_inversions_are_found_and_split_by_whether_the_lake_marks_them():
    evs = [ev(i) for i in range(1, 5)]
    # seq 2 routed after seq 3 (same epoch): late; marked in one case, not in the other
    for mark, reported in ((None, 0), ("reordered", 1)):
        rows = [row(evs[0]), row(evs[2], routed_at=10), row(evs[1], routed_at=11, unordered=mark), row(evs[3], routed_at=12)]
        a = audit_rows(rows, evs)
        assert a.late == 1 and a.reported == reported and len(a.unreported) == 1 - reported


def test_order_follows_epochs_across_homes():
    evs = [ev(i) for i in range(1, 5)]
    # seq 3-4 committed at the new home under epoch 2 BEFORE seq 1-2 reach the old home under epoch 1:
    # that is in order (the old home's table comes first); the reverse epochs would not be.
    ok = [row(evs[2], 2, 1, home="eu-west-1"), row(evs[3], 2, 2, home="eu-west-1"), row(evs[0], 1, 5), row(evs[1], 1, 6)]
    assert audit_rows(ok, evs).late == 0
    bad = [row(evs[0], 2, 1, home="eu-west-1"), row(evs[1], 1, 5), row(evs[2], 1, 6), row(evs[3], 2, 2, home="eu-west-1")]
    assert audit_rows(bad, evs).late == 1  # seq 1 committed after 2 and 3


def test_sequences_are_per_key_and_origin():
    a = [ev(1, "a", seq=1), ev(2, "a", seq=2)]
    b = [ev(3, "a", "eu-west-1", seq=1), ev(4, "b", seq=1)]
    rows = [row(a[1], routed_at=1), row(b[0], routed_at=2), row(b[1], routed_at=3), row(a[0], routed_at=4)]
    assert audit_rows(rows, a + b).late == 1  # only key a from us-east-1 went 2, 1


def test_percentile():
    assert percentile([], 50) is None and percentile([5], 99) == 5 and percentile(list(range(101)), 50) == 50

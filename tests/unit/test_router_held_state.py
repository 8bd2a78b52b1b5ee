"""What the router writes to its held-records list state (jobs/functions.py, RouterFunction._store),
counted with stand-ins for Flink's state handles. Records that queue behind a wait (no routing
table yet, a hand-off) are appended: the list used to be rewritten whole on every arrival and on
every retry timer (every 200 ms per held key), each rewrite converting every held record into
Java, so holding n records of a key cost O(n^2) conversions."""
from __future__ import annotations

from jobs.functions import RouterFunction
from udfs.handoff import Held, KeyState


class _JavaMap:
    def __init__(self, calls: list):
        self.d, self.calls = {}, calls

    def put(self, k, v):
        self.calls.append(("put", k))
        self.d[k] = v

    def items(self):
        return list(self.d.items())


class _JavaList:
    def __init__(self, calls: list):
        self.rows, self.calls = [], calls

    def add_all(self, rows):
        self.calls.append(("add_all", len(rows)))
        self.rows += rows

    def update(self, rows):
        self.calls.append(("update", len(rows)))
        self.rows = list(rows)

    def clear(self):
        self.calls.append(("clear", 0))
        self.rows = []


def _router_with_held(calls: list) -> RouterFunction:
    r = RouterFunction.__new__(RouterFunction)
    r.order, r.kstate, r.held, r._held_now = _JavaMap(calls), None, _JavaList(calls), 0
    return r


def test_held_records_are_appended_not_rewritten_and_the_list_state_matches():
    calls: list = []
    r = _router_with_held(calls)
    ks = KeyState()
    r._cache = {"k": [ks, RouterFunction._core_view(ks), {}, []]}
    for i in range(50):  # records queue behind a wait: one row crosses per record
        before = len(ks.held)
        ks.held.append(Held(b"x", f"s/0/{i}", i))
        r._store("k", ks, before, True)
    assert calls == [("add_all", 1)] * 50
    assert [row[0] for row in r.held.rows] == [f"s/0/{i}" for i in range(50)]
    r._store("k", ks, 50, True)  # a retry timer that released nothing writes nothing
    assert len(calls) == 50
    ks.held[3].late = "handoff-timeout:eu-west-1"  # a held record marked in place: rewritten
    r._store("k", ks, 50, True)
    assert calls[-1] == ("update", 50) and r.held.rows[3][3] == "handoff-timeout:eu-west-1"
    ks.held = ks.held[10:]  # released from the front: rewritten
    r._store("k", ks, 50, True)
    assert calls[-1] == ("update", 40) and [row[0] for row in r.held.rows] == [f"s/0/{i}" for i in range(10, 50)]
    ks.held = []
    r._store("k", ks, 40, True)
    assert calls[-1] == ("clear", 0) and r.held.rows == []
    n = len(calls)
    r._store("k", ks, 0, True)  # still empty: nothing to write
    assert len(calls) == n


def test_control_a_key_loaded_without_its_stored_list_is_rewritten():
    calls: list = []
    r = _router_with_held(calls)
    ks = KeyState()
    ks.held = [Held(b"x", "s/0/1", 1)]
    r._cache = {"k": [ks, RouterFunction._core_view(ks), {}, None]}  # what was stored is unknown
    r._store("k", ks, 1, True)
    assert calls == [("update", 1)]


class _Value:
    def value(self):
        return None


class _ListOf(_JavaList):
    def __init__(self, calls: list, rows: list):
        super().__init__(calls)
        self.rows = rows

    def get(self):
        return list(self.rows)


def test_records_held_in_the_layout_before_entry_lanes_are_moved_once_and_keep_their_place():
    """A snapshot taken before 2026-12-04 holds records as (source, data, arrived, late): the first
    load of the key moves them into the new list (entry unknown), in order, and clears the old."""
    from pyflink.common import Row
    calls: list = []
    r = _router_with_held(calls)
    r.kstate = _Value()
    r.held = _ListOf(calls, [])
    r.held_v1 = _ListOf(calls, [Row("s/0/1", b"a", 1, None), Row("s/0/2", b"b", 2, "handoff-timeout:eu-west-1")])
    r._cache = {}
    ks = r._load("k")
    assert [(h.raw, h.source, h.arrived_ms, h.late, h.entry) for h in ks.held] == \
        [(b"a", "s/0/1", 1, None, None), (b"b", "s/0/2", 2, "handoff-timeout:eu-west-1", None)]
    assert r.held_v1.rows == [] and [row[0] for row in r.held.rows] == ["s/0/1", "s/0/2"]
    assert len(r.held.rows[0]) == 6, "stored in the new layout"
    r._cache = {}
    assert [h.source for h in r._load("k").held] == ["s/0/1", "s/0/2"], "loaded again: from the new list only"

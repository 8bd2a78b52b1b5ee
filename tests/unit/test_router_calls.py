"""The router's per-record calls into Java, counted with stand-ins for Flink's metric and state
handles (jobs/functions.py). In THREAD mode every such call crosses PyFlink's embedded bridge and
costs about as much as the rest of a record's Python work (scripts/bench_capacity.py --floor), so
the counts are what is asserted: counters are summed in Python and handed over in batches, and a
home record's dedup and high-water writes are one claim."""
from __future__ import annotations

from jobs.functions import RouterFunction, _Counters, _Seen
from udfs.handoff import KeyState


class _Counter:
    def __init__(self, calls: list):
        self.calls, self.value = calls, 0

    def inc(self, n: int = 1) -> None:
        self.calls.append(n)
        self.value += n


class _Group:
    def __init__(self):
        self.calls: list[int] = []
        self.counters: dict[str, _Counter] = {}

    def add_group(self, name):
        return self

    def counter(self, name):
        return self.counters.setdefault(name, _Counter(self.calls))


class _Ctx:
    def __init__(self):
        self.group = _Group()

    def get_metrics_group(self):
        return self.group


def test_counters_are_summed_in_python_and_handed_over_in_batches():
    ctx = _Ctx()
    c = _Counters(ctx, "homeflow_", flush_every=1000)
    for _ in range(2500):
        c.inc("records_home")
    c.inc("dedup_dropped", 3)
    assert ctx.group.calls == [1000, 1000], "two full batches, nothing else yet"
    c.flush()
    assert ctx.group.counters["homeflow_records_home"].value == 2500
    assert ctx.group.counters["homeflow_dedup_dropped"].value == 3
    assert len(ctx.group.calls) == 4
    c.flush()  # nothing pending: no call
    assert len(ctx.group.calls) == 4


def test_control_counters_without_batching_call_java_per_increment():
    ctx = _Ctx()
    c = _Counters(ctx, "homeflow_")
    for _ in range(50):
        c.inc("publish_errors")
    assert ctx.group.calls == [1] * 50 and ctx.group.counters["homeflow_publish_errors"].value == 50


class _JavaMap:
    """What a PyFlink state handle wraps in THREAD mode (its `_state`), counting calls."""

    def __init__(self, calls: list):
        self.d, self.calls = {}, calls

    def contains(self, k):
        self.calls.append(("contains", k))
        return k in self.d

    def put(self, k, v):
        self.calls.append(("put", k))
        self.d[k] = v

    def items(self):
        return list(self.d.items())


class _Handle:
    def __init__(self, java: _JavaMap):
        self._state = java

    def __getattr__(self, name):
        return getattr(self._state, name)


class _Ops:
    """dev.homeflow.flink.RouterStateOps's contract, one counted call."""

    def __init__(self, calls: list):
        self.calls = calls

    def claim(self, seen, order, event_id, now, origin, high_water):
        self.calls.append(("claim", event_id))
        if event_id in seen.d:
            return False
        seen.d[event_id] = now
        if origin is not None:
            order.d[origin] = high_water
        return True


def test_claim_is_one_call_and_the_high_water_is_not_written_twice():
    calls: list = []
    seen, order = _JavaMap(calls), _JavaMap(calls)
    known: dict = {}
    s = _Seen(_Handle(seen), set(), _Handle(order), known, _Ops(calls))
    assert s.claim("e1", 10, ("us-east-1", "100")) is True
    assert s.claim("e1", 11, ("us-east-1", "101")) is False  # a duplicate writes nothing
    assert s.claim("e2", 12, None) is True
    assert calls == [("claim", "e1"), ("claim", "e1"), ("claim", "e2")]
    assert seen.d == {"e1": 10, "e2": 12} and order.d == {"us-east-1": "100"} and known == {"us-east-1": "100"}

    # _store then finds the high-water already written and makes no call for it.
    r = RouterFunction.__new__(RouterFunction)
    r.order, r.kstate, r._held_now = _Handle(order), None, 0
    ks = KeyState()
    ks.order = {"us-east-1": "100"}
    r._cache = {"k": [ks, RouterFunction._core_view(ks), known]}
    before = len(calls)
    r._store("k", ks, 0, False)
    assert calls[before:] == []
    ks.order["eu-west-1"] = "7"  # a high-water learnt another way (a hand-off) is still written
    r._store("k", ks, 0, False)
    assert calls[before:] == [("put", "eu-west-1")]


def test_control_without_ops_a_claim_is_two_calls():
    calls: list = []
    seen = _JavaMap(calls)
    s = _Seen(_Handle(seen), {"seeded"}, _Handle(_JavaMap(calls)), {}, None)
    assert s.claim("seeded", 1, None) is False and calls == []  # the lake seed answers first
    assert s.claim("e1", 1, ("us-east-1", "5")) is True
    assert calls == [("contains", "e1"), ("put", "e1")]

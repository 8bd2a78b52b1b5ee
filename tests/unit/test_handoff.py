"""The hand-off protocol (udfs/handoff.py): targeted cases, then properties over many random
schedules of the in-memory multi-region model (tests/unit/handoff_sim.py), each with a control
that shows the property can fail."""
from __future__ import annotations

from collections import defaultdict

import pytest

from udfs.envelope import Envelope, parse
from udfs.handoff import Dead, Forward, Held, Home, KeyRouter, KeyState
from udfs.routing_table import RegionEntry, RoutingTable, TableHistory

from tests.unit.handoff_sim import REGIONS, Sim, flip, set_state

US, EU, AP = REGIONS
KNOWN = frozenset(REGIONS)


class Seen(dict):
    def contains(self, e):
        return e in self

    def put(self, e, at):
        self[e] = at

    def recent(self, n):
        return list(self)[-n:]


def table(epoch, overrides=None, **states):
    return RoutingTable(epoch, {r: RegionEntry(1, states.get(r.replace("-", "_"), "ACTIVE")) for r in (US, EU)},
                        overrides or {})


def item(env: Envelope, at=0):
    return Held(env.to_json().encode(), "s/0/1", at)


def router(region, **kw):
    return KeyRouter(region, (US, EU), max_hops=3, max_record_bytes=10**6, handoff_timeout_ms=1000,
                     table_wait_ms=500, **kw)


def test_nothing_is_routed_before_the_first_table_and_then_in_arrival_order():
    r, ks, seen, t = router(US), KeyState(), Seen(), TableHistory()
    for i in range(3):
        assert r.on_item(ks, seen, t, item(Envelope(f"e{i}", "k", i, US)), 0) == []
    t.adopt(table(1, {"k": US}))
    out = r.pump(ks, seen, t, 10)
    assert [o.env.event_id for o in out] == ["e0", "e1", "e2"] and all(isinstance(o, Home) for o in out)
    assert not ks.busy()


def test_receiver_with_older_table_waits_for_it_and_does_not_reject():
    """A record routed here under epoch 2 while this region still has epoch 1 (where the key's home
    is elsewhere) waits for table 2 instead of bouncing or being called a conflict."""
    r, ks, seen, t = router(EU), KeyState(), Seen(), TableHistory([table(1, {"k": US})])
    fwd = Envelope("e1", "k", 1, US, hops=1, epoch=2, via=US)
    assert r.on_item(ks, seen, t, item(fwd), 0) == []
    t.adopt(table(2, {"k": EU}))
    out = r.pump(ks, seen, t, 100)
    assert [type(o) for o in out] == [Forward, Home] or [type(o) for o in out] == [Home]


def test_waiting_for_a_table_is_bounded_then_dead_lettered_with_reason():
    r, ks, seen, t = router(EU), KeyState(), Seen(), TableHistory([table(1, {"k": US})])
    r.on_item(ks, seen, t, item(Envelope("e1", "k", 1, US, hops=1, epoch=5, via=US), at=0), 0)
    out = r.pump(ks, seen, t, 600)
    assert len(out) == 1 and isinstance(out[0], Dead) and out[0].reason == "stale-routing-table"


def test_one_epoch_ahead_and_home_under_both_tables_goes_through_at_once():
    """Keys that do not move must not pause while tables propagate."""
    r, ks, seen, t = router(EU), KeyState(), Seen(), TableHistory([table(1, {"k": EU})])
    out = r.on_item(ks, seen, t, item(Envelope("e1", "k", 1, US, hops=1, epoch=2, via=US)), 0)
    assert len(out) == 1 and isinstance(out[0], Home)


def test_sender_switching_a_key_sends_a_marker_through_the_old_home_and_flags_the_new_path():
    r, ks, seen = router(AP := US), KeyState(), Seen()
    r = KeyRouter(AP, REGIONS, 3, 10**6)
    t3 = RoutingTable(1, {x: RegionEntry(1) for x in REGIONS}, {"k": EU})
    t = TableHistory([t3])
    r.on_item(ks, seen, t, item(Envelope("e1", "k", 1, AP)), 0)
    t.adopt(RoutingTable(2, t3.regions, {"k": "ap-south-1"}))
    out = r.on_item(ks, seen, t, item(Envelope("e2", "k", 2, AP)), 1)
    marker, rec = out
    assert marker.region == EU and marker.env.marker and marker.env.marker.old == EU
    assert rec.region == "ap-south-1" and rec.env.after == (marker.env.marker.id, EU)


def test_new_home_acquires_holds_new_path_and_lets_the_old_path_through():
    h = router(EU)
    ks, seen = KeyState(), Seen()
    t = TableHistory([table(1, {"k": US}), table(2, {"k": EU})])
    own = h.on_item(ks, seen, t, item(Envelope("eu-1", "k", 1, EU)), 0)
    assert len(own) == 1 and own[0].env.marker and own[0].env.marker.acquire and own[0].region == US
    assert ks.acquiring and ks.held  # its own record waits
    old = h.on_item(ks, seen, t, item(Envelope("us-9", "k", 1, US, hops=1, epoch=2, via=US)), 5)
    assert [o.env.event_id for o in old if isinstance(o, Home)] == ["us-9"]  # the old path is not held
    back = own[0].env.forwarded(2, via=US, seen=("eu-0",))
    done = h.on_item(ks, seen, t, item(back), 20)
    assert [o.env.event_id for o in done if isinstance(o, Home)] == ["eu-1"]
    assert not ks.busy() and seen.contains("eu-0"), "the old home's event_ids were handed over"


def test_old_home_answers_an_acquire_marker_with_its_seen_ids_and_drops_duplicates():
    p = router(US)
    ks, seen = KeyState(), Seen()
    t = TableHistory([table(1, {"k": US})])
    assert isinstance(p.on_item(ks, seen, t, item(Envelope("e1", "k", 1, US)), 0)[0], Home)
    t.adopt(table(2, {"k": EU}))
    assert p.on_item(ks, seen, t, item(Envelope("e1", "k", 1, US)), 1) == [], "a duplicate of a committed event"
    from udfs.envelope import Marker, marker_envelope
    m = marker_envelope("k", Marker("eu-west-1:2", EU, US, EU, True), 2, 2).forwarded(2, via=EU)
    out = p.on_item(ks, seen, t, item(m), 2)
    assert len(out) == 1 and out[0].region == EU and out[0].env.seen == ("e1",)


def test_timed_out_hand_off_releases_and_marks_stragglers_late():
    h = router(EU)
    ks, seen = KeyState(), Seen()
    t = TableHistory([table(1, {"k": US}), table(2, {"k": EU})])
    h.on_item(ks, seen, t, item(Envelope("eu-1", "k", 1, EU)), 0)
    out = h.pump(ks, seen, t, 1001)
    assert [o.env.event_id for o in out if isinstance(o, Home)] == ["eu-1"] and not ks.busy()
    late = h.on_item(ks, seen, t, item(Envelope("us-1", "k", 1, US, hops=1, epoch=2, via=US)), 1100)
    assert late[0].late == f"handoff-timeout:{US}"


def test_lost_region_no_wait_and_its_backlog_is_marked_stranded():
    h = router(EU)
    ks, seen = KeyState(), Seen()
    down = RoutingTable(2, {US: RegionEntry(1, "DOWN", 2), EU: RegionEntry(1)}, {})
    t = TableHistory([table(1, {"k": US}), down])
    out = h.on_item(ks, seen, t, item(Envelope("eu-1", "k", 1, EU)), 0)
    assert [type(o) for o in out] == [Home], "no hand-off from a region that is DOWN"
    # The lost region comes back (still DOWN in its table) and routes its backlog.
    p = router(US)
    out = p.on_item(KeyState(), Seen(), TableHistory([down]), item(Envelope("us-1", "k", 1, US)), 5)
    assert out[0].region == EU and out[0].env.late == f"stranded:{US}"
    # A record forwarded to it before the loss, routed after its return (ACTIVE again): stranded too.
    back = RoutingTable(3, {US: RegionEntry(1, "ACTIVE", 2), EU: RegionEntry(1)}, {"k": US})
    out = p.on_item(KeyState(), Seen(), TableHistory([back]), item(Envelope("e", "k", 1, EU, hops=1, epoch=1, via=EU)), 5)
    assert out[0].late == f"stranded:{US}"


def test_unordered_mode_sends_no_markers():
    r = KeyRouter(US, REGIONS, 3, 10**6, ordered=False)
    ks, seen = KeyState(), Seen()
    t3 = RoutingTable(1, {x: RegionEntry(1) for x in REGIONS}, {"k": EU})
    t = TableHistory([t3])
    r.on_item(ks, seen, t, item(Envelope("e1", "k", 1, US)), 0)
    t.adopt(RoutingTable(2, t3.regions, {"k": "ap-south-1"}))
    out = r.on_item(ks, seen, t, item(Envelope("e2", "k", 2, US)), 1)
    assert len(out) == 1 and out[0].env.after is None


def test_key_state_round_trips_through_json():
    ks = KeyState(last_home=US, homed=True, owned_since=3, checked=4)
    ks.markers["a:1"] = 5
    ks.late_via[US] = "x"
    from udfs.handoff import Wait
    ks.acquiring = Wait("eu:2", US, 2, 1, 9)
    ks.awaiting[AP] = Wait("ap:2", US, 2, 1, 9)
    back = KeyState.from_json(ks.to_json())
    assert back == ks


def test_forwarded_marker_and_flag_survive_the_wire():
    from udfs.envelope import Marker, marker_envelope
    e = marker_envelope("k", Marker("us-east-1:3", US, EU, US, True), 1, 3).forwarded(3, via=US, seen=("a", "b"))
    assert parse(e.to_json().encode(), KNOWN) == e
    f = Envelope("e", "k", 1, US).forwarded(3, via=US, after=("us-east-1:3", EU), late="stranded:us-east-1")
    assert parse(f.to_json().encode(), KNOWN) == f


# ------------------------------------------------------------------ properties over schedules

def _planned_flips(seed: int, ordered: bool, regions=REGIONS[:2], flips: int = 6, dup_rate: float = 0.0):
    sim = Sim(seed, keys=6, ordered=ordered, regions=regions, dup_rate=dup_rate)
    moving = sim.keys[:3]
    for f in range(flips):
        for _ in range(300):
            sim.step(produce_in=list(regions))
        for _ in range(100_000):  # traffic goes on; a move starts only once the last one is done
            if sim.moved():
                break
            sim.step(produce_in=list(regions))
        else:
            raise AssertionError("the move never completed")
        flip(sim, moving, regions[(f + 1) % len(regions)] if f % 2 == 0 else regions[0])
    sim.settle()
    return sim, sim.audit()


@pytest.mark.parametrize("seed", range(40))
def test_planned_moves_under_traffic_keep_every_key_in_order_exactly_once(seed):
    sim, a = _planned_flips(seed, ordered=True, regions=REGIONS if seed % 2 else REGIONS[:2], dup_rate=0.02)
    assert a["lost"] == 0 and a["duplicates"] == 0 and a["dead"] == 0, a
    assert a["inversions"] == 0 and a["marked_late"] == 0, a


def test_control_without_the_protocol_reorders():
    """The same schedules with markers and acquisition off: moves reorder keys. Without this the
    property above could pass for a simulator that never reorders."""
    total = 0
    for seed in range(40):
        _, a = _planned_flips(seed, ordered=False, regions=REGIONS if seed % 2 else REGIONS[:2])
        assert a["lost"] == 0
        total += a["inversions"]
    assert total > 0


@pytest.mark.parametrize("seed", range(30))
def test_region_loss_return_and_failback_lose_nothing_and_report_every_inversion(seed):
    sim = Sim(seed, keys=8, ordered=True, regions=REGIONS[:2])
    lost, survivor = REGIONS[0], REGIONS[1]
    for _ in range(600):
        sim.step(produce_in=[lost, survivor])
    sim.crash(lost)  # no savepoint: it restarts from its last checkpoint
    set_state(sim, lost, "DOWN")
    for _ in range(1500):  # producers switched to the survivor
        sim.step(produce_in=[survivor])
    sim.recover(lost)  # returns, still DOWN in the table, drains its backlog
    for _ in range(1500):
        sim.step(produce_in=[survivor])
    sim.settle()
    set_state(sim, lost, "ACTIVE")  # failback with the planned-move protocol
    for _ in range(1500):
        sim.step(produce_in=[lost, survivor])
    sim.settle()
    a = sim.audit()
    assert a["lost"] == 0 and a["duplicates"] == 0 and a["dead"] == 0, a
    assert a["inversions"] == a["reported"], f"unreported inversions: {a}"


@pytest.mark.parametrize("seed", range(30))
def test_overlapping_moves_may_reorder_but_never_silently(seed):
    """Moves written faster than records drain (what `homeflow routes` refuses without --force),
    with hand-offs that expire: nothing is lost (past the hop limit a record is dead-lettered
    with its reason), no home commits an event twice, and whatever is out of order or committed
    by two homes is marked, or belongs to a key marked `handoff-timeout` (whose order nobody
    vouches for: an expired hand-off could not pass on what the old home knew)."""
    regions = REGIONS if seed % 2 else REGIONS[:2]
    sim = Sim(seed, keys=5, ordered=True, regions=regions, dup_rate=0.02, timeout_ms=3000, max_hops=6)
    for f in range(8):
        for _ in range(sim.rng.randint(20, 400)):
            sim.step(produce_in=list(regions))
        flip(sim, sim.keys[:3], sim.rng.choice(regions))
    sim.settle()
    a = sim.audit()
    assert a["lost"] == a["dead"], a
    assert all(d.reason == "routing-conflict" for d in sim.dead)
    flagged = {r.key for r in sim.lake if r.late and r.late.startswith("handoff-timeout")}
    assert {k for k, _ in sim.unreported()} <= flagged, (sim.unreported(), flagged)
    copies = defaultdict(list)
    for r in sim.lake:
        copies[r.event_id].append(r)
    for rows in copies.values():
        if len(rows) > 1:  # read-side resolution keeps one (udfs/resolve.py)
            assert len({r.home for r in rows}) == len(rows), rows
            assert any(r.late for r in rows) or rows[0].key in flagged, rows


def test_bounded_pause_expires_and_still_loses_nothing():
    """With a short hand-off timeout markers may come too late: the records go on, stragglers are
    committed marked late, nothing is lost or duplicated, and every inversion is reported."""
    for seed in range(20):
        sim = Sim(seed, keys=6, ordered=True, timeout_ms=30)
        for f in range(4):
            for _ in range(400):
                sim.step(produce_in=list(sim.regions))
            flip(sim, sim.keys[:3], sim.regions[(f + 1) % 2])
        sim.settle()
        a = sim.audit()
        assert a["lost"] == 0 and a["duplicates"] == 0, a
        assert a["inversions"] == a["reported"], a


def test_same_epoch_disagreement_is_a_conflict_not_a_bounce():
    """A record sent here under our own epoch that our table sends elsewhere: two different tables
    carry one epoch (two editors). Bouncing it could loop, so it is dead-lettered."""
    r, ks, seen = router(US), KeyState(), Seen()
    t = TableHistory([table(5, {"k": EU})])
    out = r.on_item(ks, seen, t, item(Envelope("e", "k", 1, EU, hops=1, epoch=5, via=EU)), 0)
    assert len(out) == 1 and isinstance(out[0], Dead) and out[0].reason == "routing-conflict"


def test_hop_limit_is_a_backstop():
    r, ks, seen = router(US), KeyState(), Seen()
    t = TableHistory([table(5, {"k": EU})])
    out = r.on_item(ks, seen, t, item(Envelope("e", "k", 1, EU, hops=3, epoch=4, via=EU)), 0)
    assert isinstance(out[0], Dead) and "hop limit" in out[0].detail


def test_two_regions_that_disagree_cannot_loop():
    """Re-forwarding needs a strictly newer epoch, so a record bounces at most once per epoch."""
    t_us = TableHistory([table(6, {"k": EU})])
    t_eu = TableHistory([table(7, {"k": US})])
    routers = {US: router(US), EU: router(EU)}
    tables = {US: t_us, EU: t_eu}
    e, at, hops = Envelope("e", "k", 1, US), US, 0
    for _ in range(10):
        ks = KeyState()
        out = routers[at].on_item(ks, Seen(), tables[at], item(e), 0)
        fwd = [o for o in out if isinstance(o, Forward) and not o.env.marker]
        if not fwd:
            break
        e, at, hops = fwd[0].env, fwd[0].region, hops + 1
    # us-east-1 (epoch 6) gets it back under epoch 7: it waits for table 7, then gives up.
    assert hops == 2 and out == [] and ks.held
    out = routers[at].pump(ks, Seen(), tables[at], 10_000)
    assert len(out) == 1 and isinstance(out[0], Dead) and out[0].reason == "stale-routing-table"

import json

import pytest

from udfs.ring import HashRing, stable_hash
from udfs.routing_table import RegionEntry, RoutingTable, RoutingTableError, accept, default_table

REGIONS = ["us-east-1", "eu-west-1", "ap-south-1", "us-west-2"]
KNOWN = frozenset(REGIONS)
KEYS = [f"key-{i}" for i in range(20_000)]


def test_stable_hash_and_homes_are_pinned():
    # Pinned values: if these change, every key in production silently changes home.
    assert stable_hash("") == 16476032584258269876
    assert stable_hash("key-1") == 4645804100768122847
    t = default_table(["us-east-1", "eu-west-1", "ap-south-1"])
    assert [t.home_of(f"key-{i}") for i in range(6)] == [
        "us-east-1", "us-east-1", "ap-south-1", "us-east-1", "eu-west-1", "ap-south-1"]


def test_same_answer_for_same_table_regardless_of_region_order():
    a = HashRing([(r, 1) for r in REGIONS])
    b = HashRing([(r, 1) for r in reversed(REGIONS)])
    assert all(a.owner(k) == b.owner(k) for k in KEYS[:2000])


def test_removing_one_region_moves_only_its_keys_and_about_one_nth():
    full = default_table(REGIONS, epoch=1)
    down = RoutingTable(2, {**full.regions, "ap-south-1": RegionEntry(1, "DOWN")})
    before = {k: full.home_of(k) for k in KEYS}
    after = {k: down.home_of(k) for k in KEYS}
    moved = [k for k in KEYS if before[k] != after[k]]
    assert all(before[k] == "ap-south-1" for k in moved), "a key of a surviving region moved"
    assert all(after[k] != "ap-south-1" for k in KEYS)
    share = len(moved) / len(KEYS)
    assert 0.18 < share < 0.32, f"moved share {share:.3f} is far from 1/{len(REGIONS)}"


def test_every_active_region_gets_a_fair_share():
    t = default_table(REGIONS)
    counts = {r: 0 for r in REGIONS}
    for k in KEYS:
        counts[t.home_of(k)] += 1
    for r, n in counts.items():
        assert 0.15 < n / len(KEYS) < 0.35, (r, n)


def test_weight_zero_and_draining_regions_get_no_keys():
    t = RoutingTable(3, {"us-east-1": RegionEntry(1), "eu-west-1": RegionEntry(0),
                         "ap-south-1": RegionEntry(1, "DRAINING")})
    assert {t.home_of(k) for k in KEYS[:3000]} == {"us-east-1"}


def test_override_wins_unless_its_region_is_down():
    t = RoutingTable(4, {"us-east-1": RegionEntry(1), "eu-west-1": RegionEntry(1)}, {"vip": "eu-west-1"})
    assert t.home_of("vip") == "eu-west-1"
    t2 = RoutingTable(5, {"us-east-1": RegionEntry(1), "eu-west-1": RegionEntry(1, "DOWN")}, {"vip": "eu-west-1"})
    assert t2.home_of("vip") == "us-east-1"


def test_json_round_trip():
    t = RoutingTable(9, {"us-east-1": RegionEntry(2), "eu-west-1": RegionEntry(1, "DRAINING")}, {"k": "us-east-1"}, 32)
    assert RoutingTable.from_json(t.to_json(), KNOWN) == t


@pytest.mark.parametrize("doc, needle", [
    ("{oops", "unparsable"),
    ({"epoch": 0, "regions": {"us-east-1": {}}}, "epoch"),
    ({"epoch": 1, "regions": {}}, "regions"),
    ({"epoch": 1, "regions": {"mars-1": {}}}, "unknown region"),
    ({"epoch": 1, "regions": {"us-east-1": {"weight": -1}}}, "weight"),
    ({"epoch": 1, "regions": {"us-east-1": {"weight": 1.5}}}, "weight"),
    ({"epoch": 1, "regions": {"us-east-1": {"state": "SLEEPY"}}}, "state"),
    ({"epoch": 1, "regions": {"us-east-1": {"state": "DOWN"}}}, "no ACTIVE"),
    ({"epoch": 1, "regions": {"us-east-1": {}}, "overrides": {"k": "eu-west-1"}}, "unknown region"),
])
def test_bad_tables_are_rejected_with_a_reason(doc, needle):
    text = doc if isinstance(doc, str) else json.dumps(doc)
    with pytest.raises(RoutingTableError, match=needle):
        RoutingTable.from_json(text, KNOWN)


def test_accept_refuses_epoch_going_backwards_or_a_different_table_at_same_epoch():
    t5 = default_table(REGIONS, epoch=5)
    assert accept(None, t5) is None
    assert accept(t5, default_table(REGIONS, epoch=6)) is None
    assert accept(t5, t5) is None
    assert "backwards" in accept(t5, default_table(REGIONS, epoch=4))
    assert "same epoch" in accept(t5, default_table(REGIONS[:2], epoch=5))

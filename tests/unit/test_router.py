from udfs.envelope import Envelope
from udfs.router import FORWARD, HOME, REJECT, decide
from udfs.routing_table import RegionEntry, RoutingTable

T = RoutingTable(5, {"us-east-1": RegionEntry(1), "eu-west-1": RegionEntry(1)},
                 {"k-us": "us-east-1", "k-eu": "eu-west-1"})


def env(key, hops=0, epoch=0):
    return Envelope("e", key, 1, "us-east-1", hops, epoch)


def test_home_record_stays():
    assert decide(env("k-us"), T, "us-east-1", 2).action == HOME


def test_fresh_record_is_forwarded_to_its_home():
    d = decide(env("k-eu"), T, "us-east-1", 2)
    assert (d.action, d.region) == (FORWARD, "eu-west-1")


def test_forwarded_record_is_reforwarded_only_under_a_newer_epoch():
    assert decide(env("k-eu", hops=1, epoch=4), T, "us-east-1", 2).action == FORWARD
    d = decide(env("k-eu", hops=1, epoch=5), T, "us-east-1", 2)
    assert (d.action, d.reason) == (REJECT, "routing-conflict")
    d = decide(env("k-eu", hops=1, epoch=9), T, "us-east-1", 2)
    assert (d.action, d.reason) == (REJECT, "routing-conflict")


def test_hop_limit_bounds_forwarding_even_with_newer_epochs():
    d = decide(env("k-eu", hops=2, epoch=1), T, "us-east-1", 2)
    assert (d.action, d.reason) == (REJECT, "routing-conflict")
    assert "hop limit" in d.detail


def test_no_loop_between_two_regions_that_disagree():
    """Two regions with different tables bounce a record at most max_hops times, then reject."""
    t_us = RoutingTable(6, {"us-east-1": RegionEntry(1), "eu-west-1": RegionEntry(1)}, {"k": "eu-west-1"})
    t_eu = RoutingTable(7, {"us-east-1": RegionEntry(1), "eu-west-1": RegionEntry(1)}, {"k": "us-east-1"})
    tables = {"us-east-1": t_us, "eu-west-1": t_eu}
    e, at, hops_seen = env("k"), "us-east-1", 0
    for _ in range(10):
        d = decide(e, tables[at], at, 2)
        if d.action != FORWARD:
            break
        e, at = e.forwarded(tables[at].epoch), d.region
        hops_seen += 1
    assert d.action == REJECT and hops_seen <= 2

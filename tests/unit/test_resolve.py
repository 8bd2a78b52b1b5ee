import itertools

from udfs.resolve import resolve


def row(eid, home, epoch, payload="x"):
    return {"event_id": eid, "home_region": home, "epoch": epoch, "payload": payload}


def test_newest_epoch_wins_then_smallest_region_and_order_does_not_matter():
    rows = [row("e1", "us-east-1", 3), row("e1", "eu-west-1", 4), row("e2", "us-east-1", 5),
            row("e2", "eu-west-1", 5), row("e3", "ap-south-1", 1)]
    for perm in itertools.permutations(rows):
        kept, dropped = resolve(perm)
        assert dropped == 2
        assert {r["event_id"]: r["home_region"] for r in kept} == {
            "e1": "eu-west-1", "e2": "eu-west-1", "e3": "ap-south-1"}


def test_no_duplicates_nothing_dropped():
    kept, dropped = resolve([row("a", "us-east-1", 1), row("b", "eu-west-1", 1)])
    assert dropped == 0 and len(kept) == 2

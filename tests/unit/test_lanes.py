"""Entry lanes and marks (udfs/lanes.py): what counts as later, within a lane and across lanes."""
from __future__ import annotations

from udfs import lanes
from udfs.lanes import Entry, Mark

US, EU = "us-east-1", "eu-west-1"


def e(region, shard, seq, at):
    return Entry.parse(f"{region}/{shard}/{seq}", at)


def test_within_a_shard_sequence_numbers_order_and_subsequences_follow_their_record():
    m = lanes.advance(None, e(US, "shardId-000000000001", "100", 5))
    assert lanes.behind(m, e(US, "shardId-000000000001", "99", 4))
    assert not lanes.behind(m, e(US, "shardId-000000000001", "101", 6))
    m = lanes.advance(m, e(US, "shardId-000000000001", "100:3", 5))
    assert lanes.behind(m, e(US, "shardId-000000000001", "100:1", 5))
    assert m == Mark.parse("shardId-000000000001/100:3/5") and m.text() == "shardId-000000000001/100:3/5"


def test_a_child_shard_comes_after_its_parent_whatever_its_numbers():
    m = lanes.advance(None, e(US, "shardId-000000000004", "7", 10))
    assert lanes.behind(m, e(US, "shardId-000000000001", "99999", 9)), "a parent's record after its child's"
    assert not lanes.behind(m, e(US, "shardId-000000000005", "1", 11))


def test_shards_without_a_number_are_not_evidence():
    m = lanes.advance(None, e(US, "odd-a", "7", 10))
    assert not lanes.behind(m, e(US, "odd-b", "1", 11))
    assert lanes.behind(m, e(US, "odd-a", "6", 9))


def test_across_lanes_entry_times_decide_and_unknowns_count_as_later():
    marks = {US: lanes.advance(None, e(US, "shardId-0", "5", 1_000))}
    assert lanes.overtaken(marks, e(EU, "shardId-0", "1", 900), skew_ms=0)
    assert not lanes.overtaken(marks, e(EU, "shardId-0", "1", 1_100), skew_ms=0)
    assert lanes.overtaken(marks, e(EU, "shardId-0", "1", 1_050), skew_ms=100), "within the skew: cannot know"
    assert not lanes.overtaken(marks, e(US, "shardId-0", "4", 10), skew_ms=0), "its own lane goes by position"
    assert lanes.overtaken(marks, e(EU, "shardId-0", "1", None), skew_ms=0)
    assert lanes.overtaken(marks, None, skew_ms=0)
    assert not lanes.overtaken({}, None, skew_ms=0)
    assert lanes.overtaken({US: Mark.parse("shardId-0/5/")}, e(EU, "shardId-0", "1", 5), skew_ms=0)


def test_merge_takes_the_later_of_each_and_ignores_what_it_cannot_read():
    mine = lanes.advance(None, e(US, "shardId-0", "5", 1_000))
    theirs = "shardId-0/9/900"
    assert lanes.merge(mine, theirs) == Mark.parse("shardId-0/9/1000")
    assert lanes.merge(mine, "12345") == mine, "a per-origin number of an older job names no shard"
    assert lanes.merge(None, "12345") is None


def test_entry_text_round_trips_and_bad_ones_are_refused():
    x = e(US, "shardId-000000000001", "4963:2", 7)
    assert Entry.parse(x.text(), 7) == x and x.region == US and x.seq == "4963:2"
    for bad in ("", "us-east-1/shard", "us-east-1/shard/abc", "a/b/c/d", "//1"):
        assert Entry.parse(bad, None) is None and not lanes.valid_entry(bad)


def test_the_routers_stored_marks_read_back_as_written():
    marks = {"us-east-1": lanes.Mark.parse("shardId-000000000001/49650000000000000000000000000000001/1700000000123"),
             "eu-west-1": lanes.Mark.parse("shardId-000000000000/77:3/")}
    assert lanes.unpack_marks(lanes.pack_marks(marks)) == marks
    assert lanes.unpack_marks(lanes.pack_marks({})) == {}
    # a mark stored by a layout this code cannot read is dropped, not misread
    assert lanes.unpack_marks("us-east-1\x1fnot-a-mark") == {}

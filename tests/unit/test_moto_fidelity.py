"""The sandbox's corrections to moto (sandbox/moto_fidelity.py) keep moto's answers."""
from moto.kinesis.models import Shard

from sandbox import moto_fidelity


def test_sequence_bounds_read_directly_give_what_moto_computed():
    moto_fidelity.apply()
    shard = Shard(0, 0, 2 ** 128)
    assert (shard.get_min_sequence_number(), shard.get_max_sequence_number()) == (0, 0)
    seqs = [shard.put_record("k", f"d{i}", None) for i in range(5)]
    assert seqs == ["1", "2", "3", "4", "5"]
    keys = list(shard.records.keys())  # what moto itself used
    assert (shard.get_min_sequence_number(), shard.get_max_sequence_number()) == (keys[0], keys[-1]) == (1, 5)
    records, last, _ = shard.get_records("2", None)
    assert [r.data for r in records] == ["d2", "d3", "d4"] and last == 5


def test_list_shards_after_an_exclusive_start():
    class S:
        def __init__(self, i):
            self.shard_id = i
    shards = [S("shardId-000000000000"), S("shardId-000000000001"), S("shardId-000000000002")]
    assert moto_fidelity.list_shards_after(shards, None) == shards
    assert [s.shard_id for s in moto_fidelity.list_shards_after(shards, "shardId-000000000000")] == \
        ["shardId-000000000001", "shardId-000000000002"]

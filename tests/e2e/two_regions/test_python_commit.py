"""PyIceberg commits (homeflow's implementation of the DynamoDB catalog commit) interleave with
the Flink job's Java commits on the same pointer item without losing either side's commit."""
from __future__ import annotations

import threading
import time

import pytest

from sandbox.jobrunner import wait_until
from connectors import lake
from connectors.producer import events, put

pytestmark = pytest.mark.e2e
HOME = "us-east-1"


def test_java_and_python_commits_interleave_without_loss(two_regions):
    sb = two_regions
    s = sb.settings
    evs = [e for e in events(HOME, 1500, 60, seed=1414) if sb.table.home_of(e.key) == HOME][:500]
    before = len(lake.load_table(s, HOME).metadata.snapshots)

    def produce():
        for i in range(0, len(evs), 50):
            put(s, HOME, [(e.key, e.to_json().encode()) for e in evs[i:i + 50]])
            time.sleep(0.8)
    t = threading.Thread(target=produce, daemon=True)
    t.start()
    conflicts = 0
    n_python = 15
    for i in range(n_python):  # Python commits while Flink commits about once a second
        conflicts += lake.commit_with_retry(s, HOME, lambda tx, i=i: tx.set_properties(**{f"homeflow.python-commit-{i}": str(i)}))
        time.sleep(0.5)
    t.join(60)
    ids = {e.event_id for e in evs}
    wait_until(lambda: ids <= sb.committed_ids(HOME), 120, 1.0, sb.jobs, "Flink commits")
    time.sleep(3)
    table = lake.load_table(s, HOME)
    for i in range(n_python):
        assert table.properties.get(f"homeflow.python-commit-{i}") == str(i), f"Python commit {i} was lost"
    parents = {x.snapshot_id: x.parent_snapshot_id for x in table.metadata.snapshots}
    chain, sid = set(), table.metadata.current_snapshot_id
    while sid is not None:
        chain.add(sid)
        sid = parents.get(sid)
    assert chain == set(parents), "a Flink snapshot is not in the current chain"
    flink_commits = len(table.metadata.snapshots) - before
    assert flink_commits >= 3, "the test needs Flink commits interleaved with the Python ones"
    assert len([x for x in sb.lake_ids(HOME) if x in ids]) == len(ids)
    # Both writers keep the metadata log (read pointers and orphan removal rely on it): it names
    # consecutive metadata versions, ending with the one just before the current.
    log = [e.metadata_file for e in table.metadata.metadata_log]
    versions = [lake.catalog(s, HOME)._parse_metadata_version(f) for f in log + [table.metadata_location]]
    assert versions[-20:] == list(range(versions[-1] - min(20, len(versions)) + 1, versions[-1] + 1)), versions
    print(f"\n{n_python} Python commits ({conflicts} retried after a conflict) and {flink_commits} Flink commits, none lost")

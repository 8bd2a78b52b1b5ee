"""Exactly once and per-key commit order across hard crashes and a savepoint: while events flow,
the job is killed (SIGKILL of its whole process group, JVM included) at random points and
restored from the latest completed checkpoint; once it is stopped with a savepoint (through the
REST API, as a failover drill does) and a new process restores from that; and once it is killed
right after a checkpoint that holds records in the router's state (restored with no routing table
in DynamoDB, so the router holds what it reads for its freshness wait), the next run proving from
its log that it loaded them from state. The job compacts its
table as it goes (every 5 commits). Afterwards every event_id is in the lake exactly once, and
for each key no event is committed in an earlier snapshot than an event produced before it.

It also checks that a key's per-entry-lane marks (the router's order state) are in the
state a restore gets: a probe key committed before every interruption and not touched after them is
then sent a record whose origin position is older; it must land flagged `reordered`, and the
same record for a key without history (the control) unflagged.

Bad records of four kinds go in with the traffic: each lands in the dead-letter archive table
(homeflow.dead_letters_us_east_1, committed with the checkpoints like the home table) exactly
once, however the interruptions fell."""
from __future__ import annotations

import random
import signal
import threading
import time
from collections import defaultdict

import pytest

from connectors import routing_control
from connectors.routing_store import ITEM_KEY, RoutingStore
from sandbox.flink_rest import stop_with_savepoint
from sandbox.jobrunner import start_job, wait_until
from connectors import lake
from connectors.producer import events, put
from udfs.envelope import Envelope
from sandbox.local_cluster import Sandbox
from tests.conftest import first_commit_index, latest_checkpoint

pytestmark = pytest.mark.e2e
BAD_KINDS = (  # (reason, raw for the i-th bad record): each raw is unique, so the archive can be counted
    ("malformed-json", lambda i: b'{"event_id": "bad-%d", "key": "k' % i),
    ("missing-key", lambda i: b'{"event_id": "bad-%d", "ts": 1, "origin": "us-east-1"}' % i),
    ("wrong-type", lambda i: b'{"event_id": "bad-%d", "key": "k", "ts": "soon", "origin": "us-east-1"}' % i),
    ("unknown-region", lambda i: b'{"event_id": "bad-%d", "key": "k", "ts": 1, "origin": "mars-1"}' % i),
    # JSON to Python's json.loads but not to the Java side (a job that failed on them failed again
    # on every restart), and nesting beyond Python's parser:
    ("malformed-json", lambda i: b'{"event_id": "bad-%d", "key": "k", "ts": 1, "origin": "us-east-1", '
                                 b'"payload": {"x": NaN}}' % i),
    ("wrong-type", lambda i: b'{"event_id": "bad-%d", "key": "k", "ts": 18446744073709551615, '
                             b'"origin": "us-east-1"}' % i),
    ("malformed-json", lambda i: b'{"event_id": "bad-%d", "key": "k", "payload": ' % i + b"[" * 3000 + b"]" * 3000
                                 + b"}"),
)
KILLS = 3
SAVEPOINT_AFTER_KILL = 2  # the 3rd interruption is a stop-with-savepoint, not a kill
REST_PORT = 18096
ROUTING_POLL_MS = 3000
FRESH_WAIT_S = 5 * ROUTING_POLL_MS / 1000  # udfs/router_policy.py: the router's wait for a fresh table


HELD_KILL_AFTER = 1  # after the 1st kill: one more kill while the restored router holds records


def _log_has(log_dir, text: str) -> bool:
    return any(text in f.read_text(errors="replace") for f in log_dir.rglob("*.log"))


def _kill_while_held(sb, tmp_path, ckpt, base_args, restore_uri):
    """Restore with no routing table in DynamoDB (every replica): the router holds what it reads
    for its freshness wait (5 routing polls), the group's timer retrying; kill it right after a
    checkpoint taken inside that wait, put the table back, and return what to restore from."""
    table = routing_control.latest(sb.settings)
    stores = [RoutingStore(sb.settings, r) for r in sb.settings.job.regions]
    for st in stores:
        st.ddb.delete_item(TableName=st.table, Key=ITEM_KEY)
    job = start_job("us-east-1", sb.properties, tmp_path / "logs-held", extra_args=[*base_args, "--restore", restore_uri])
    sb.jobs.append(job)
    wait_until(lambda: _log_has(tmp_path / "logs-held", "seeded with"), 180, 0.2, [job], "the held run's router open")
    opened = time.time()
    wait_until(lambda: (latest_checkpoint(ckpt) / "_metadata").stat().st_mtime > opened, 60, 0.1, [job],
               "a checkpoint of the held run")
    held_ckpt = latest_checkpoint(ckpt)
    job.stop(signal.SIGKILL)
    took = (held_ckpt / "_metadata").stat().st_mtime - opened
    assert took < FRESH_WAIT_S - 3, f"the checkpoint came {took:.1f} s after the router opened: not inside its wait"
    stores[0].write(table)
    return job, held_ckpt.as_uri()


def test_kill_and_restore_keeps_exactly_once_and_key_order(tmp_path):
    # The job compacts its table every 5 commits: kills also land during rewrites (lock held,
    # rewrite files written but not committed), which a restore must get through. One key group
    # (max.parallelism 1) and batches that wait up to 2 s: every batch packs many keys, whose
    # records after each restore are held (until a fresh routing table) behind the group's timer,
    # and every kill lands in the middle of a batch.
    sb = Sandbox(tmp_path, 4596, ["us-east-1"], lake={"compact.commits": "5", "compact.min.interval.ms": "3000"},
                 **{"max.parallelism": "1", "batch.max.ms": "2000", "batch.max.records": "5000",
                    "routing.poll.ms": str(ROUTING_POLL_MS)}).up()
    ckpt = tmp_path / "ckpt"
    rng = random.Random(2024)
    all_evs = list(events("us-east-1", 12_000, 30, seed=909))
    sent = []
    sent_bad: list[tuple[bytes, str]] = []
    stop_producing = threading.Event()

    def produce():
        for i in range(0, len(all_evs), 25):  # 50 events/s until every interruption is done
            if stop_producing.is_set():
                return
            batch = all_evs[i:i + 25]
            reason, make = BAD_KINDS[(i // 25) % len(BAD_KINDS)]
            bad = make(i // 25)
            put(sb.settings, "us-east-1", [(e.key, e.to_json().encode()) for e in batch] + [(f"bad-{i}", bad)])
            sent.extend(batch)
            sent_bad.append((bad, reason))
            time.sleep(0.5)

    def committed_since(t: float) -> bool:
        table = lake.load_table(sb.settings, "us-east-1")
        snap = table.current_snapshot() if table else None
        return snap is not None and snap.timestamp_ms > t * 1000 and int(
            snap.summary.additional_properties.get("added-records", 0)) > 0

    producer = threading.Thread(target=produce, daemon=True)
    try:
        base_args = ["--checkpoint-dir", ckpt.as_uri(), "--rest-port", str(REST_PORT)]
        job = start_job("us-east-1", sb.properties, tmp_path / "logs-0", extra_args=base_args)
        sb.jobs.append(job)
        wait_until(lambda: list(ckpt.glob("**/chk-*/_metadata")), 180, 1.0, [job], "first checkpoint")
        probe = [Envelope(f"probe-{i}", "order-probe", int(time.time() * 1000), "us-east-1") for i in range(3)]
        put(sb.settings, "us-east-1", [(e.key, e.to_json().encode()) for e in probe])
        wait_until(lambda: {e.event_id for e in probe} <= sb.committed_ids("us-east-1"), 120, 1.0, [job],
                   "the order probe's first records")
        producer.start()
        kills = []
        restored_at = 0.0
        savepoint = None
        for k in range(1, KILLS + 2):
            # Interrupt only a job that is running: since its start it has completed a checkpoint
            # of its own and committed records (a restore alone can commit: the restored
            # checkpoint's files, if the crash came before their commit), then at a random point.
            wait_until(lambda: committed_since(restored_at) and (
                latest_checkpoint(ckpt) / "_metadata").stat().st_mtime > restored_at,
                180, 0.5, [job], f"a commit and a checkpoint of run {k}")
            time.sleep(rng.uniform(0.5, 4))
            if k == SAVEPOINT_AFTER_KILL + 1:
                savepoint = stop_with_savepoint(REST_PORT, (tmp_path / "savepoints").as_uri())
                job.proc.wait(60)  # env.execute() returns once the job has stopped
                restore_uri = savepoint
            else:
                job.stop(signal.SIGKILL)
                restore = latest_checkpoint(ckpt)
                kills.append(restore.name)
                restore_uri = restore.as_uri()
            restored_at = time.time()
            if k == HELD_KILL_AFTER:
                job, restore_uri = _kill_while_held(sb, tmp_path, ckpt, base_args, restore_uri)
                restored_at = time.time()
            job = start_job("us-east-1", sb.properties, tmp_path / f"logs-{k}",
                            extra_args=[*base_args, "--restore", restore_uri])
            sb.jobs.append(job)
            if k == HELD_KILL_AFTER:  # the held records came back from the checkpoint
                wait_until(lambda: _log_has(tmp_path / f"logs-{k}", "loaded held records from state"), 120, 1.0,
                           [job], "the router loading held records from the restored checkpoint")
        wait_until(lambda: committed_since(restored_at), 180, 0.5, [job], "a commit of the last run")
        stop_producing.set()
        producer.join(30)
        evs = list(sent)
        ids = {e.event_id for e in evs}
        wait_until(lambda: ids <= sb.committed_ids("us-east-1"), 300, 2.0, [job], "all events committed")
        # Sent through the forward stream as if another router had read it from the probe key's lane
        # (the shard its first records entered) at the oldest possible position.
        entries = dict(zip(*lake.read_rows(sb.settings, "us-east-1", ("event_id", "entry")).to_pydict().values()))
        shard = entries["probe-0"].split("/")[1]
        older = [Envelope(f"probe-older-{k}", k, int(time.time() * 1000), "us-east-1").forwarded(
                 0, via="us-east-1", entry=f"us-east-1/{shard}/1", entered=0)
                 for k in ("order-probe", "order-probe-control")]
        put(sb.settings, "us-east-1", [(e.key, e.to_json().encode()) for e in older], sb.settings.streams.forward)
        wait_until(lambda: {e.event_id for e in older} <= sb.committed_ids("us-east-1"), 120, 1.0, [job],
                   "the order probe's older records")
        time.sleep(4)  # a few more checkpoints: late duplicates would be committed by now

        rows = sb.lake_ids("us-east-1")
        mine = [x for x in rows if x in ids]
        assert len(mine) == len(ids), f"{len(mine) - len(ids)} duplicate rows after {KILLS} kills"

        first = first_commit_index(sb.settings, "us-east-1")
        by_key = defaultdict(list)
        for e in evs:  # produce order
            by_key[e.key].append(first[e.event_id])
        for key, commits in by_key.items():
            assert commits == sorted(commits), f"{key}: a later event was committed before an earlier one"

        flags = dict(zip(*lake.read_rows(sb.settings, "us-east-1", ("event_id", "unordered")).to_pydict().values()))
        assert flags["probe-older-order-probe"] == "reordered", \
            f"the probe key's lane mark did not survive the restores: {flags['probe-older-order-probe']!r}"
        assert flags["probe-older-order-probe-control"] is None, "control: a key without history is in order"

        # the dead-letter archive: every bad record once, with its reason
        def archived():
            t = lake.load_dead_letter_table(sb.settings, "us-east-1")
            if t is None or t.current_snapshot() is None:
                return None
            rows = t.scan(selected_fields=("raw", "reason")).to_arrow().to_pylist()
            return rows if {b.decode() for b, _ in sent_bad} <= {r["raw"] for r in rows} else None
        dead = wait_until(archived, 120, 2.0, [job], "every bad record in the dead-letter archive")
        time.sleep(4)  # a few more checkpoints: a late duplicate would be committed by now
        dead = archived()
        counts = defaultdict(int)
        for r in dead:
            counts[r["raw"]] += 1
        reasons = {r["raw"]: r["reason"] for r in dead}
        assert [b for b, _ in sent_bad if counts[b.decode()] != 1] == [], "bad records archived twice or never"
        assert all(reasons[b.decode()] == reason for b, reason in sent_bad)
        assert len(dead) == len(sent_bad) and {r for _, r in sent_bad} == {k for k, _ in BAD_KINDS}

        table = lake.load_table(sb.settings, "us-east-1")
        summaries = [s.summary for s in table.metadata.snapshots]
        # every commit is the Flink committer's, except the job's own compaction (replace)
        rewrites = sum(1 for s in summaries if s and s.operation.value == "replace")
        assert all(s and s.additional_properties.get("flink.max-committed-checkpoint-id")
                   for s in summaries if s and s.operation.value != "replace")
        assert len(set(kills)) == KILLS, f"each kill must come after fresh progress: {kills}"
        assert savepoint and (tmp_path / "savepoints").exists(), "the savepoint stop did not happen"
        assert rewrites >= 2, f"the job's compaction rewrote the table {rewrites} times; the test needs it running"
        print(f"\n{KILLS} kills, restored from {kills}, and a stop-with-savepoint restored from {savepoint}; "
              f"{len(ids)} events once, {len(sent_bad)} bad records archived once; {len(summaries)} snapshots ({rewrites} by the job's compaction)")
    finally:
        stop_producing.set()
        sb.down()

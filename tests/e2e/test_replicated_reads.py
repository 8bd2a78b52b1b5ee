"""Replication-aware reads: with S3 cross-region replication lagging, a reader in eu-west-1 reads
us-east-1's table only through its read pointer and its own replica bucket. It never meets a
missing file, only ever sees whole commits, and trails the writer by about the replication lag.
The control: following the writer's own pointer through the replica does meet missing files."""
from __future__ import annotations

import threading
import time

import pytest

from connectors.producer import events, put
from sandbox.s3_replicator import S3Replicator
from connectors import lake, read_pointer
from sandbox.local_cluster import Sandbox

pytestmark = pytest.mark.e2e
HOME, READER, LAG_S = "us-east-1", "eu-west-1", 3.0


def test_reader_in_other_region_sees_whole_commits_and_no_missing_file(tmp_path):
    sb = Sandbox(tmp_path, 4598, [HOME], replicate=False).up()
    s = sb.settings
    pair = [(s.lake.bucket(HOME), read_pointer.replica_bucket(s, HOME, READER))]
    stop = threading.Event()
    try:
        sb.start_jobs([HOME])  # running and committing before the traffic starts
        with S3Replicator(s, pair, lag_s=LAG_S):
            def publisher():
                while not stop.is_set():
                    read_pointer.publish(s, HOME, READER)
                    time.sleep(0.3)
            pub = threading.Thread(target=publisher, daemon=True)
            pub.start()

            evs = list(events(HOME, 1200, 40, seed=1111))
            reads, control_misses, errors = [], 0, []

            def produce():
                for i in range(0, len(evs), 100):  # a commit roughly every checkpoint
                    put(s, HOME, [(e.key, e.to_json().encode()) for e in evs[i:i + 100]])
                    time.sleep(1.0)
            prod = threading.Thread(target=produce, daemon=True)
            prod.start()
            ids = {e.event_id for e in evs}
            deadline = time.time() + 240
            done = False
            while time.time() < deadline and not done:
                try:
                    rows, snap = read_pointer.read_rows(s, HOME, READER)
                    reads.append((time.time() * 1000, snap, rows.num_rows))
                    done = ids <= set(rows["event_id"].to_pylist())
                except Exception as e:  # any missing file or partial read is a failure
                    errors.append(repr(e))
                writer = lake.load_table(s, HOME)
                if writer and writer.current_snapshot():
                    try:  # control: the writer's pointer, read through the replica, right away
                        read_pointer.read_rows(s, HOME, READER, metadata_location=writer.metadata_location)
                    except Exception:
                        control_misses += 1
                time.sleep(0.3)
            stop.set()
        assert not errors, errors[:3]
        assert done, "the reader never saw every event"

        writer = lake.load_table(s, HOME)
        snaps = {sn.snapshot_id: sn for sn in writer.metadata.snapshots}
        rows_at = {sid: int(sn.summary.additional_properties["total-records"]) for sid, sn in snaps.items()}
        for _, sid, n in reads:
            if sid is not None:
                assert n == rows_at[sid], f"partial commit: read {n} rows at snapshot {sid}, which has {rows_at[sid]}"
        assert [n for _, _, n in reads] == sorted(n for _, _, n in reads), "the reader went back in time"
        # How far behind: for each writer snapshot, time until the reader first saw it (or later).
        order = sorted(snaps.values(), key=lambda sn: sn.sequence_number)
        seq = {sn.snapshot_id: sn.sequence_number for sn in order}
        behind = []
        for sn in order:
            seen = [t for t, sid, _ in reads if sid is not None and seq[sid] >= sn.sequence_number]
            if seen:
                behind.append(min(seen) - sn.timestamp_ms)
        behind.sort()
        assert control_misses > 0, "the control never met a missing file: the test proves nothing"
        print(f"\nreader {READER}: {len(reads)} reads, 0 errors, {len(snaps)} writer snapshots; "
              f"trailing the writer p50 {behind[len(behind) // 2] / 1000:.1f}s max {behind[-1] / 1000:.1f}s "
              f"(replication lag {LAG_S}s); control reads of the writer's pointer failed {control_misses} times")
    finally:
        stop.set()
        sb.down()

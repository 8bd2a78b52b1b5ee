"""The router's metrics are registered under the group `kinesisanalytics` (the only group Managed
Flink exports to CloudWatch) and count what happened; read back through Flink's REST API."""
from __future__ import annotations

import pytest

from sandbox.flink_rest import call as _get, running_job
from sandbox.jobrunner import wait_until
from connectors import lake
from connectors.producer import events, put
from jobs.metrics import documented
from tests.e2e.two_regions.conftest import REST_PORTS

pytestmark = pytest.mark.e2e


def _metrics(port: int, group: str = ".kinesisanalytics.") -> dict[str, float]:
    """Every metric of the running job in `group`, summed over subtasks, by metric name."""
    job = running_job(port)
    out: dict[str, float] = {}
    for v in _get(port, f"/jobs/{job}")["vertices"]:
        ids = [m["id"] for m in _get(port, f"/jobs/{job}/vertices/{v['id']}/metrics")
               if group in m["id"]]
        if not ids:
            continue
        vals = _get(port, f"/jobs/{job}/vertices/{v['id']}/metrics?get={','.join(ids)}")
        for m in vals:
            name = m["id"].rsplit(".", 1)[-1]
            out[name] = out.get(name, 0) + float(m["value"])
    return out


def test_router_metrics_under_kinesisanalytics(two_regions):
    sb = two_regions
    port = REST_PORTS["us-east-1"]
    before = _metrics(port)
    evs = list(events("us-east-1", 100, 10, seed=1313))
    recs = [(e.key, e.to_json().encode()) for e in evs]
    put(sb.settings, "us-east-1", recs + recs[:10] + [("bad", b"{not json")])
    home = sum(1 for e in evs if sb.table.home_of(e.key) == "us-east-1")
    fwd = len(evs) - home
    dup_home = sum(1 for e in evs[:10] if sb.table.home_of(e.key) == "us-east-1")

    def grown():
        m = _metrics(port)
        d = {k: m.get(k, 0) - before.get(k, 0) for k in m}
        ok = (d.get("homeflow_records_home", 0) >= home
              and d.get("homeflow_records_forwarded_eu_west_1", 0) >= fwd
              and d.get("homeflow_dead_letter_malformed_json", 0) >= 1
              and d.get("homeflow_dedup_dropped", 0) >= dup_home)
        return (m, d) if ok else None
    # Flink's REST API serves metrics cached for up to 10 s, so `before` may lag a little: the
    # deltas are checked as lower bounds.
    m, d = wait_until(grown, 60, 2.0, sb.jobs, "metrics to count the records")
    assert m.get("homeflow_router_epoch", 0) >= 1 and m.get("homeflow_routing_epoch", 0) >= 1
    assert "homeflow_records_held" in m and "homeflow_keys_held" in m
    # every name the running job registered is on the metrics reference page (jobs/metrics.py)
    assert [n for n in m if not documented(n)] == []


def test_lake_commit_metrics(two_regions):
    """The lake's shape as kinesisanalytics gauges (lake-stats operator), and Iceberg's own
    committer metrics (commit duration, files and bytes committed) in the same run."""
    sb = two_regions
    port = REST_PORTS["us-east-1"]
    before = _metrics(port, ".IcebergFilesCommitter.")
    evs = [e for e in events("us-east-1", 200, 20, seed=1717) if sb.table.home_of(e.key) == "us-east-1"]
    put(sb.settings, "us-east-1", [(e.key, e.to_json().encode()) for e in evs])
    ids = {e.event_id for e in evs}
    wait_until(lambda: ids <= sb.committed_ids("us-east-1"), 60, 1.0, sb.jobs, "commit")

    def settled():
        m = _metrics(port)
        i = _metrics(port, ".IcebergFilesCommitter.")
        snapshots = len(lake.load_table(sb.settings, "us-east-1").metadata.snapshots)
        ok = (m.get("homeflow_lake_snapshots", 0) >= snapshots - 1 > 0  # gauges trail by <= one tick
              and i.get("committedDataFilesRecordCount", 0) - before.get("committedDataFilesRecordCount", 0) >= len(ids))
        return (m, i) if ok else None
    m, i = wait_until(settled, 60, 2.0, sb.jobs, "lake gauges and committer counters")
    assert m["homeflow_lake_data_files"] >= 1 and m["homeflow_lake_last_commit_files"] >= 1
    assert m["homeflow_lake_last_commit_bytes"] > 0 and m["homeflow_lake_avg_file_bytes"] > 0
    assert m["homeflow_lake_small_file_permille"] == 1000  # KB-sized files: all small until compacted
    assert 0 <= m["homeflow_lake_commit_age_ms"] < 60_000
    assert m.get("homeflow_lake_stats_errors", 0) == 0
    assert i["committedDataFilesCount"] >= 1 and i["committedDataFilesByteCount"] > 0
    assert i["lastCommitDurationMs"] > 0
    print(f"\nlake gauges: { {k: v for k, v in m.items() if k.startswith('homeflow_lake_')} }; "
          f"Iceberg committer: lastCommitDurationMs={i['lastCommitDurationMs']:.0f}, "
          f"committedDataFilesCount={i['committedDataFilesCount']:.0f}")

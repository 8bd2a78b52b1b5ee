"""The router's metrics are registered under the group `kinesisanalytics` (the only group Managed
Flink exports to CloudWatch) and count what happened; read back through Flink's REST API."""
from __future__ import annotations

import json
import urllib.request

import pytest

from cli.jobrunner import wait_until
from cli.produce import events, put
from tests.e2e.two_regions.conftest import REST_PORTS

pytestmark = pytest.mark.e2e


def _get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def _metrics(port: int) -> dict[str, float]:
    """Every kinesisanalytics metric of the running job, summed over subtasks, by metric name."""
    job = next(j for j in _get(port, "/jobs")["jobs"] if j["status"] == "RUNNING")
    out: dict[str, float] = {}
    for v in _get(port, f"/jobs/{job['id']}")["vertices"]:
        ids = [m["id"] for m in _get(port, f"/jobs/{job['id']}/vertices/{v['id']}/metrics")
               if ".kinesisanalytics." in m["id"]]
        if not ids:
            continue
        vals = _get(port, f"/jobs/{job['id']}/vertices/{v['id']}/metrics?get={','.join(ids)}")
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
    assert "homeflow_records_waiting_for_table" in m

"""Issue 9, item 7: each regional job keeps its region's read pointers and lake view moving
(the `read-publisher` operator). Nothing here publishes: the test only produces and reads."""
from __future__ import annotations

import pytest

from connectors import lake_view, read_pointer
from connectors.producer import events, put
from sandbox.jobrunner import wait_until

pytestmark = pytest.mark.e2e
REGIONS = ["us-east-1", "eu-west-1"]


def test_reader_pointers_and_view_advance_with_nothing_run_by_hand(two_regions):
    sb = two_regions
    s = sb.settings
    views_before = {r: (lake_view.current_view(s, r) or {"version": 0})["version"] for r in REGIONS}
    sent: dict[str, str] = {}  # event_id -> home
    for r in REGIONS:
        evs = list(events(r, 300, 30, seed=909))
        put(s, r, [(e.key, e.to_json().encode()) for e in evs])
        sent.update({e.event_id: sb.table.home_of(e.key) for e in evs})
    assert set(sent.values()) == set(REGIONS), "the test needs keys homed in both regions"

    for home in REGIONS:
        want = {eid for eid, h in sent.items() if h == home}
        wait_until(lambda: want <= sb.committed_ids(home), 180, 1.0, sb.jobs, f"{home} commits")
        for reader in REGIONS:
            if reader == home:
                continue
            # Through the reader's pointer and its replica bucket only (read_pointer.read_rows).
            def visible():
                rows, _ = read_pointer.read_rows(s, home, reader)
                return want <= set(rows["event_id"].to_pylist())
            wait_until(visible, 120, 1.0, sb.jobs, f"{reader}'s read pointer for {home} to cover its commits")

    for reader in REGIONS:
        def whole_view():
            rows, _, view = lake_view.read_view(s, reader, ("event_id",))
            ids = {x["event_id"] for x in rows}
            return view["version"] > views_before[reader] and set(sent) <= ids
        wait_until(whole_view, 120, 1.0, sb.jobs, f"{reader}'s lake view to hold every event")
        rows, _, _ = lake_view.read_view(s, reader, ("event_id",))
        ids = [x["event_id"] for x in rows if x["event_id"] in sent]
        assert len(ids) == len(set(ids)) == len(sent)

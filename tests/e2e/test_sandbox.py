"""Sandbox up/down: idempotent, and `down` stops only what `up` started."""
from __future__ import annotations

import subprocess

import pytest

from cli import sandbox
from cli.sandbox import services
from conf.settings import load
from cli.local_cluster import write_properties

pytestmark = pytest.mark.e2e


def test_up_is_idempotent_and_down_stops_only_its_own(tmp_path):
    settings = load(write_properties(tmp_path / "p.json", 4592))
    state = tmp_path / "state"
    svc = services(settings)[0]
    try:
        sandbox.start(settings, state)
        first = sandbox.create_resources(settings)
        assert all(first[r] for r in settings.job.regions), first
        pid = sandbox.running_pid(svc, state)
        assert pid

        sandbox.start(settings, state)  # again: same process, nothing new created
        assert sandbox.running_pid(svc, state) == pid
        assert sandbox.create_resources(settings) == {r: [] for r in settings.job.regions}
        st = sandbox.status(settings, state)
        assert st["services"]["moto"]["healthy"]
        assert set(st["regions"]["eu-west-1"]["streams"]) == {"homeflow-ingest", "homeflow-forward", "homeflow-dead-letter"}

        assert sandbox.stop(settings, state) == [f"moto (pid {pid})"]
        assert sandbox.stop(settings, state) == []
        assert not sandbox.status(settings, state)["services"]["moto"]["healthy"]
    finally:
        sandbox.stop(settings, state)

    # A pid file naming someone else's process (a recycled pid) must not get that process killed.
    other = subprocess.Popen(["sleep", "30"])
    try:
        state.mkdir(exist_ok=True)
        (state / "moto.pid").write_text(str(other.pid))
        assert sandbox.stop(settings, state) == []
        assert other.poll() is None
    finally:
        other.kill()

"""How the sandbox's processes are started (sandbox/services.py), without starting them."""
from __future__ import annotations

from pathlib import Path

import pytest

from conf.settings import load
from sandbox import kinesis_mock, services
from sandbox.paths import LOCAL_PROPERTIES


def test_the_replicator_gets_an_absolute_properties_path(tmp_path, monkeypatch):
    # `homeflow --properties props.json sandbox up` from another directory: the replicator runs
    # in the repository and must still find the file (it did not, and died at start).
    monkeypatch.chdir(tmp_path)
    svc = services.replicator(load(LOCAL_PROPERTIES), Path("props.json"), tmp_path, 1, 2)
    arg = svc.argv[svc.argv.index("--properties") + 1]
    assert arg == str(tmp_path / "props.json")


def test_kinesis_mock_sits_on_port_plus_50_behind_the_gate(tmp_path):
    s = load(LOCAL_PROPERTIES)  # endpoint http://127.0.0.1:4566
    assert "--kinesis-upstream" not in services.emulator(s, tmp_path).argv
    argv = services.emulator(s, tmp_path, "kinesis-mock").argv
    assert argv[argv.index("--kinesis-upstream") + 1] == "http://127.0.0.1:4616"
    svc = kinesis_mock.service(s)
    env = dict(svc.env)
    assert env["KINESIS_MOCK_PLAIN_PORT"] == "4616" and env["AWS_ACCOUNT_ID"] == s.aws.account_id
    assert svc.cwd == kinesis_mock.MAIN.parent  # it reads its TLS material from there


def test_an_unknown_kinesis_backend_is_refused_by_name(tmp_path):
    with pytest.raises(SystemExit, match="unknown Kinesis backend 'kinesalite'"):
        services.start(load(LOCAL_PROPERTIES), tmp_path, kinesis="kinesalite")

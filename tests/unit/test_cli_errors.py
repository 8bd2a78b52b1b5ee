"""The CLI's errors a person meets (unreachable endpoint, no credentials, bad properties file):
one line naming the thing and what fixes it, exit code 2, no traceback unless --debug."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from cli.errors import describe
from sandbox.local_cluster import write_properties

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)


def _one_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_unreachable_endpoint_names_it_and_the_fix(tmp_path):
    port = _free_port()  # nothing listens there
    props = write_properties(tmp_path / "p.json", port)
    line = _one_line(_cli("--properties", str(props), "route", "acct-42"))
    assert f"127.0.0.1:{port}" in line and "homeflow sandbox up" in line, line
    # --debug: the whole traceback instead
    r = _cli("--properties", str(props), "--debug", "route", "acct-42")
    assert r.returncode != 0 and "Traceback" in r.stderr and "EndpointConnectionError" in r.stderr


def test_missing_credentials_say_where_to_put_them(tmp_path):
    doc = json.loads(write_properties(tmp_path / "p.json", _free_port()).read_text())
    for g in doc:
        if g["PropertyGroupId"] == "homeflow.aws":
            g["PropertyMap"] = {k: v for k, v in g["PropertyMap"].items() if "key" not in k}
    props = tmp_path / "nokeys.json"
    props.write_text(json.dumps(doc))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"}
    line = _one_line(_cli("--properties", str(props), "route", "acct-42", env=env))
    assert "no AWS credentials" in line and "AWS_ACCESS_KEY_ID" in line, line


@pytest.mark.parametrize("content, says", [(None, "properties file not found"), ("{not json", "not valid JSON")])
def test_bad_properties_file(tmp_path, content, says):
    props = tmp_path / "p.json"
    if content is not None:
        props.write_text(content)
    line = _one_line(_cli("--properties", str(props), "route", "acct-42"))
    assert str(props) in line and says in line, line


def test_a_command_check_exits_2_in_one_line(tmp_path):
    props = write_properties(tmp_path / "p.json", _free_port())
    line = _one_line(_cli("--properties", str(props), "sandbox", "lose"))
    assert "needs --region" in line


def test_not_found_names_the_resource_and_the_fix():
    e = ClientError({"Error": {"Code": "ResourceNotFoundException",
                               "Message": "Stream homeflow-ingest under account 123456789012 not found."}},
                    "PutRecords")
    line = describe(e)
    assert "homeflow-ingest" in line and "PutRecords" in line and "homeflow sandbox up" in line
    # a bug is not dressed up as a user error: the traceback stays
    assert describe(ValueError("bug")) is None

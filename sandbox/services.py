"""The local multi-region AWS sandbox: one moto server on loopback serving Kinesis, DynamoDB and S3
for every configured region (moto keys its state by the region in each request's signature),
behind a region gate (sandbox/moto_gate.py), plus the replication stand-ins (sandbox/replicate.py):
DynamoDB global tables (lag, last writer wins) and S3 cross-region replication (lag).

`up` starts what is not running, waits until healthy, creates every stream, table and bucket that
is missing (idempotent), and starts the replicators. `down` stops only the processes whose pids it
recorded. `lose`/`restore` make a whole region unreachable and bring it back.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from conf.settings import Settings
from sandbox import kinesis_mock
from sandbox.paths import SANDBOX_DIR
from sandbox.resources import create_resources  # noqa: F401  (part of this module's interface)

DEFAULT_DDB_LAG_S = 1.0
DEFAULT_S3_LAG_S = 2.0


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    marker: str  # a word of its command line, to recognise our own process behind a pid
    cwd: Path | None = None  # default: the repository
    env: tuple[tuple[str, str], ...] = ()


def _endpoint(settings: Settings):
    if not settings.aws.endpoint:
        raise SystemExit("homeflow.aws/endpoint is not set: the sandbox only serves local endpoints")
    u = urlparse(settings.aws.endpoint)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"homeflow.aws/endpoint {settings.aws.endpoint} is not on loopback")
    return u


def emulator(settings: Settings, state_dir: Path = SANDBOX_DIR, kinesis: str = "moto") -> Service:
    u = _endpoint(settings)
    argv = [sys.executable, "-m", "sandbox.moto_gate", "-H", u.hostname, "-p", str(u.port),
            "--managed-flink-dir", str(managed_flink_dir(state_dir))]
    if kinesis == "kinesis-mock":
        argv += ["--kinesis-upstream", kinesis_mock.url(settings)]
    return Service("moto", argv, "sandbox.moto_gate")


def managed_flink_dir(state_dir: Path = SANDBOX_DIR) -> Path:
    """The Managed Flink stand-in's state: per region its Flink cluster, code and snapshots."""
    return state_dir / "managed-flink"


def replicator(settings: Settings, properties: Path, state_dir: Path, ddb_lag: float, s3_lag: float) -> Service:
    # resolved: the replicator runs in the repository, not in the caller's directory
    return Service("replicator", [sys.executable, "-m", "sandbox.replicate", "--properties", str(properties.resolve()),
                                  "--ddb-lag", str(ddb_lag), "--s3-lag", str(s3_lag),
                                  "--stats", str(state_dir / "replicator.json")], "sandbox.replicate")


def _pidfile(name: str, state_dir: Path) -> Path:
    return state_dir / f"{name}.pid"


def _alive(pid: int, marker: str) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return marker in cmd  # guards against a recycled pid belonging to someone else


def answers(url: str) -> bool:
    """A GET of `url` answers 200 (a service's health check)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def healthy(settings: Settings) -> bool:
    return answers(f"{settings.aws.endpoint}/moto-api/")


def running_pid(svc: Service, state_dir: Path = SANDBOX_DIR) -> int | None:
    pf = _pidfile(svc.name, state_dir)
    if not pf.exists():
        return None
    pid = int(pf.read_text().strip() or 0)
    return pid if pid and _alive(pid, svc.marker) else None


def _spawn(svc: Service, state_dir: Path) -> int:
    log = open(state_dir / f"{svc.name}.log", "ab")
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
               **dict(svc.env))
    p = subprocess.Popen(svc.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, cwd=svc.cwd or root, env=env)
    _pidfile(svc.name, state_dir).write_text(str(p.pid))
    # Popen returns once the child's exec has begun (its close-on-exec pipe closed), but the
    # kernel fills /proc/<pid>/cmdline a moment later: a running_pid() in that window read an
    # empty command line and took the new process for dead (test_sandbox, 1 run in 5 here).
    deadline = time.monotonic() + 5
    while not _alive(p.pid, svc.marker) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return p.pid


def start(settings: Settings, state_dir: Path = SANDBOX_DIR, timeout_s: float = 60, kinesis: str | None = None) -> bool:
    """Start the emulator if it is not running; True if this call started it (a fresh, empty AWS).
    kinesis="kinesis-mock" serves Kinesis from kinesis-mock (resharding) behind the same endpoint;
    None: a running sandbox keeps its own, a new one gets moto."""
    if kinesis is not None and kinesis not in kinesis_mock.BACKENDS:
        raise SystemExit(f"unknown Kinesis backend {kinesis!r}: one of {', '.join(kinesis_mock.BACKENDS)}")
    state_dir.mkdir(parents=True, exist_ok=True)
    svc = emulator(settings, state_dir, kinesis or "moto")
    pid = running_pid(svc, state_dir)
    fresh = False
    if pid is None and healthy(settings):
        raise SystemExit(f"{settings.aws.endpoint} already answers but was not started by this sandbox; "
                         "stop that process or change homeflow.aws/endpoint")
    if pid is not None and kinesis is not None and kinesis_mock.backend(settings) != kinesis:
        raise SystemExit(f"the sandbox on {settings.aws.endpoint} serves Kinesis from "
                         f"{kinesis_mock.backend(settings)}, not {kinesis}: stop it first (homeflow sandbox down)")
    if pid is None and kinesis == "kinesis-mock":
        _start_kinesis_mock(settings, state_dir, timeout_s)
    if pid is None:
        pid = _spawn(svc, state_dir)
        fresh = True
        print(f"started {svc.name} (pid {pid}) on {settings.aws.endpoint}", flush=True)
    deadline = time.monotonic() + timeout_s
    while not healthy(settings):
        if time.monotonic() > deadline:
            raise SystemExit(f"{svc.name} did not become healthy in {timeout_s}s; see {state_dir}/{svc.name}.log")
        time.sleep(0.2)
    return fresh


def _start_kinesis_mock(settings: Settings, state_dir: Path, timeout_s: float) -> None:
    svc = kinesis_mock.service(settings)
    if running_pid(svc, state_dir) is None:
        if kinesis_mock.healthy(settings):
            raise SystemExit(f"port {kinesis_mock.port(settings)} (kinesis-mock) already answers but was not "
                             "started by this sandbox")
        pid = _spawn(svc, state_dir)
        print(f"started {svc.name} (pid {pid}) on {kinesis_mock.url(settings)}", flush=True)
    deadline = time.monotonic() + timeout_s
    while not kinesis_mock.healthy(settings):
        if time.monotonic() > deadline:
            raise SystemExit(f"kinesis-mock did not answer in {timeout_s}s; see {state_dir}/{svc.name}.log")
        time.sleep(0.2)


def start_replicator(settings: Settings, properties: Path, state_dir: Path = SANDBOX_DIR,
                     ddb_lag: float = DEFAULT_DDB_LAG_S, s3_lag: float = DEFAULT_S3_LAG_S) -> None:
    svc = replicator(settings, properties, state_dir, ddb_lag, s3_lag)
    if running_pid(svc, state_dir) is None:
        pid = _spawn(svc, state_dir)
        print(f"started {svc.name} (pid {pid}): DynamoDB lag {ddb_lag}s, S3 lag {s3_lag}s", flush=True)


def up(settings: Settings, properties: Path, state_dir: Path = SANDBOX_DIR, replicate: bool = True,
       ddb_lag: float = DEFAULT_DDB_LAG_S, s3_lag: float = DEFAULT_S3_LAG_S,
       kinesis: str | None = None) -> dict[str, list[str]]:
    fresh = start(settings, state_dir, kinesis=kinesis)
    if fresh:
        # Checkpoints name shards and positions of the streams of a previous emulator, which are
        # gone with it: restoring them would resume from positions that do not exist.
        stale = Path(settings.job.checkpoint_dir or state_dir / "checkpoints")
        if stale.exists() and any(stale.iterdir()):
            shutil.rmtree(stale)
            print(f"removed checkpoints of a previous sandbox ({stale})", flush=True)
    made = create_resources(settings)
    if replicate:
        start_replicator(settings, properties, state_dir, ddb_lag, s3_lag)
    return made


def stop(settings: Settings, state_dir: Path = SANDBOX_DIR) -> list[str]:
    stopped = []
    svcs = [replicator(settings, Path(), state_dir, 0, 0), emulator(settings)]
    if _pidfile("kinesis-mock", state_dir).exists():
        svcs.append(kinesis_mock.service(settings))
    for svc in svcs:
        pid = running_pid(svc, state_dir)
        if pid is not None:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(50):
                if not _alive(pid, svc.marker):
                    break
                time.sleep(0.1)
            else:
                os.killpg(pid, signal.SIGKILL)
            stopped.append(f"{svc.name} (pid {pid})")
        _pidfile(svc.name, state_dir).unlink(missing_ok=True)
    # The Managed Flink stand-in's clusters, should the emulator's exit not have stopped them.
    from sandbox import flink_cluster
    for pid_dir in sorted(managed_flink_dir(state_dir).glob("*/applications/*/cluster/pid")):
        if any(p.read_text().strip() for p in pid_dir.glob("*.pid")):
            stopped += [f"Managed Flink stand-in {pid_dir.parents[1].name}: pid {x}"
                        for x in flink_cluster.kill(flink_cluster.ClusterSpec(), pid_dir.parent, timeout=0)]
    return stopped


def replicator_stats(state_dir: Path = SANDBOX_DIR) -> dict | None:
    f = state_dir / "replicator.json"
    return json.loads(f.read_text()) if f.exists() else None


@contextmanager
def replication_paused(state_dir: Path = SANDBOX_DIR, wait_s: float = 1.0):
    """A DynamoDB replication partition while the block runs: each region keeps its own writes
    (how a split brain between two routing-table editors arises)."""
    from sandbox.replicate import PAUSE_FILE
    f = state_dir / PAUSE_FILE
    f.write_text("paused")
    time.sleep(wait_s)  # let a step in progress finish
    try:
        yield
    finally:
        f.unlink(missing_ok=True)


# ---------------------------------------------------------------- the region gate

def _gate(settings: Settings, down: list[str] | None = None) -> dict:
    req = urllib.request.Request(f"{settings.aws.endpoint}/homeflow/gate",
                                 data=None if down is None else json.dumps({"down": down}).encode(),
                                 method="GET" if down is None else "POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def down_regions(settings: Settings) -> list[str]:
    return _gate(settings)["down"]


def lose(settings: Settings, region: str) -> list[str]:
    """Make `region` unreachable: every request signed for it gets 503 until `restore`."""
    return _gate(settings, sorted(set(down_regions(settings)) | {region}))["down"]


def restore(settings: Settings, region: str) -> list[str]:
    return _gate(settings, sorted(set(down_regions(settings)) - {region}))["down"]


def status(settings: Settings, state_dir: Path = SANDBOX_DIR) -> dict:
    from connectors import aws
    out: dict = {"services": {}, "regions": {}}
    ok = healthy(settings)
    out["services"]["moto"] = {"pid": running_pid(emulator(settings), state_dir), "healthy": ok,
                               "endpoint": settings.aws.endpoint}
    if _pidfile("kinesis-mock", state_dir).exists():
        out["services"]["kinesis-mock"] = {"pid": running_pid(kinesis_mock.service(settings), state_dir),
                                           "healthy": kinesis_mock.healthy(settings),
                                           "endpoint": kinesis_mock.url(settings)}
    rep = replicator(settings, Path(), state_dir, 0, 0)
    stats_file = state_dir / "replicator.json"
    out["services"]["replicator"] = {"pid": running_pid(rep, state_dir),
                                     "stats": json.loads(stats_file.read_text()) if stats_file.exists() else None}
    if ok:
        out["unreachable_regions"] = down_regions(settings)
        for region in settings.job.regions:
            if region in out["unreachable_regions"]:
                continue
            kin = aws.client("kinesis", region, settings.aws)
            out["regions"][region] = {"streams": sorted(kin.list_streams()["StreamNames"])}
    return out


def print_status(settings: Settings, state_dir: Path = SANDBOX_DIR) -> None:
    print(json.dumps(status(settings, state_dir), indent=2))

"""The local multi-region AWS sandbox: one moto server on loopback serving Kinesis, DynamoDB and S3
for every configured region (moto keys its state by the region in each request's signature).

`up` starts what is not running, waits until healthy, and creates every stream, table and bucket
that is missing (idempotent). `down` stops only the processes whose pids it recorded.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from conf.settings import Settings
from connectors import aws, lake, read_pointer
from connectors.routing_store import RoutingStore
from udfs.routing_table import default_table
from cli.paths import SANDBOX_DIR

STREAM_SHARDS = {"ingest": 2, "forward": 2, "dead_letter": 1}


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    health_url: str


def services(settings: Settings) -> list[Service]:
    if not settings.aws.endpoint:
        raise SystemExit("homeflow.aws/endpoint is not set: the sandbox only serves local endpoints")
    u = urlparse(settings.aws.endpoint)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"homeflow.aws/endpoint {settings.aws.endpoint} is not on loopback")
    return [Service("moto", [sys.executable, "-m", "moto.server", "-H", u.hostname, "-p", str(u.port)],
                    f"{settings.aws.endpoint}/moto-api/reset-auth")]


def _pidfile(name: str, state_dir: Path) -> Path:
    return state_dir / f"{name}.pid"


def _alive(pid: int, name: str) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return name in cmd  # guards against a recycled pid belonging to someone else


def _healthy(svc: Service) -> bool:
    try:
        base = svc.health_url.rsplit("/moto-api", 1)[0]
        with urllib.request.urlopen(f"{base}/moto-api/", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def running_pid(svc: Service, state_dir: Path = SANDBOX_DIR) -> int | None:
    pf = _pidfile(svc.name, state_dir)
    if not pf.exists():
        return None
    pid = int(pf.read_text().strip() or 0)
    return pid if pid and _alive(pid, "moto") else None


def start(settings: Settings, state_dir: Path = SANDBOX_DIR, timeout_s: float = 60) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    for svc in services(settings):
        pid = running_pid(svc, state_dir)
        if pid is None and _healthy(svc):
            raise SystemExit(f"{settings.aws.endpoint} already answers but was not started by this sandbox; "
                             "stop that process or change homeflow.aws/endpoint")
        if pid is None:
            log = open(state_dir / f"{svc.name}.log", "ab")
            p = subprocess.Popen(svc.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
            _pidfile(svc.name, state_dir).write_text(str(p.pid))
            print(f"started {svc.name} (pid {p.pid}) on {settings.aws.endpoint}", flush=True)
        deadline = time.monotonic() + timeout_s
        while not _healthy(svc):
            if time.monotonic() > deadline:
                raise SystemExit(f"{svc.name} did not become healthy in {timeout_s}s; see {state_dir}/{svc.name}.log")
            time.sleep(0.2)


def stop(settings: Settings, state_dir: Path = SANDBOX_DIR) -> list[str]:
    stopped = []
    for svc in services(settings):
        pid = running_pid(svc, state_dir)
        if pid is not None:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(50):
                if not _alive(pid, "moto"):
                    break
                time.sleep(0.1)
            else:
                os.killpg(pid, signal.SIGKILL)
            stopped.append(f"{svc.name} (pid {pid})")
        _pidfile(svc.name, state_dir).unlink(missing_ok=True)
    return stopped


def create_resources(settings: Settings) -> dict[str, list[str]]:
    """Create, if missing, every region's streams, routing table, catalog table, bucket and lake table."""
    made: dict[str, list[str]] = {}
    streams = {"ingest": settings.streams.ingest, "forward": settings.streams.forward,
               "dead_letter": settings.streams.dead_letter}
    for region in settings.job.regions:
        out = made.setdefault(region, [])
        kin = aws.client("kinesis", region, settings.aws)
        existing = set(kin.list_streams()["StreamNames"])
        for kind, name in streams.items():
            if name not in existing:
                kin.create_stream(StreamName=name, ShardCount=STREAM_SHARDS[kind])
                out.append(f"stream {name}")
        s3 = aws.client("s3", region, settings.aws)
        have = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        # This region's lake bucket, and its replicas of every other home region's bucket.
        wanted = [settings.lake.bucket(region)] + [
            read_pointer.replica_bucket(settings, home, region) for home in settings.job.regions if home != region]
        for bucket in wanted:
            if bucket not in have:
                kw = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
                s3.create_bucket(Bucket=bucket, **kw)
                out.append(f"bucket {bucket}")
        read_pointer.ensure_table(settings, region)
        store = RoutingStore(settings, region)
        store.ensure_table()
        if store.read_raw() is None:
            store.write(default_table(list(settings.job.regions)))
            out.append(f"routing table {settings.job.routing_table} (epoch 1)")
        if lake.load_table(settings, region) is None:
            lake.ensure_table(settings, region)
            out.append(f"iceberg table {'.'.join(lake.identifier(settings, region))}")
    return made


def status(settings: Settings, state_dir: Path = SANDBOX_DIR) -> dict:
    out: dict = {"services": {}, "regions": {}}
    for svc in services(settings):
        out["services"][svc.name] = {"pid": running_pid(svc, state_dir), "healthy": _healthy(svc),
                                     "endpoint": settings.aws.endpoint}
    if all(s["healthy"] for s in out["services"].values()):
        for region in settings.job.regions:
            kin = aws.client("kinesis", region, settings.aws)
            out["regions"][region] = {"streams": sorted(kin.list_streams()["StreamNames"])}
    return out


def print_status(settings: Settings) -> None:
    print(json.dumps(status(settings), indent=2))

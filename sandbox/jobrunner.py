"""Start and stop regional jobs as separate processes, each on its own Flink minicluster."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.paths import LOCAL_PROPERTIES, ROOT, SANDBOX_DIR


@dataclass
class JobProcess:
    region: str
    proc: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if not self.alive():
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def start_job(region: str, properties: Path = LOCAL_PROPERTIES, log_dir: Path = SANDBOX_DIR / "logs",
              extra_args: list[str] | None = None, cwd: Path = ROOT, module_or_script: list[str] | None = None,
              env_extra: dict[str, str] | None = None) -> JobProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    flink_logs = log_dir / f"flink-{region}"
    flink_logs.mkdir(exist_ok=True)
    # Its temporary files (the minicluster's working directories, about 75 MB a start) go under
    # log_dir, not /tmp: a killed job never removes them, and on this machine /tmp filled its disk.
    tmp = tempfile.mkdtemp(prefix=f"tmp-{region}-", dir=log_dir)
    env = dict(os.environ, FLINK_LOG_DIR=str(flink_logs), PYTHONUNBUFFERED="1", TMPDIR=tmp)
    env.update(env_extra or {})
    env["JVM_ARGS"] = f"{env.get('JVM_ARGS', '')} -Djava.io.tmpdir={tmp}".strip()
    log = log_dir / f"job-{region}.out"
    argv = [sys.executable, *(module_or_script or ["-m", "jobs.ingest"]),
            "--region", region, "--properties", str(properties), *(extra_args or [])]
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    return JobProcess(region, proc, log)


def wait_until(predicate, timeout: float, interval: float = 1.0, jobs: list[JobProcess] = (),
               what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for j in jobs:
            if not j.alive():
                raise RuntimeError(f"job {j.region} exited ({j.proc.returncode}) while waiting for {what}:\n{j.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def await_canaries(settings, table, regions, jobs: list[JobProcess], timeout: float) -> None:
    """Send one event per region, keyed to be homed there, and wait until each is in its home
    table: proof that every job reads, routes and commits."""
    from connectors.producer import put
    from connectors import lake
    from udfs.envelope import Envelope

    canaries = {}
    for r in regions:
        key = next(f"canary-{i}" for i in range(10_000) if table.home_of(f"canary-{i}") == r)
        eid = f"canary-{r}-{time.time_ns()}"
        canaries[r] = eid
        e = Envelope(eid, key, int(time.time() * 1000), r, payload={"canary": True})
        put(settings, r, [(key, e.to_json().encode())])

    ids = lake.CommittedIds(settings)

    def committed() -> bool:
        return all(canaries[r] in ids(r) for r in regions)
    wait_until(committed, timeout, 1.0, jobs, "canary commits")

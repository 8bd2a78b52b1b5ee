"""Where a drill runs the regional jobs. A scenario only starts, stops (with a savepoint), kills
and restarts jobs through this interface, so Managed Flink can plug in with snapshots in place of
savepoints.

* `MiniclusterBackend`: each regional job is its own process with a Flink minicluster (as
  `python -m jobs.ingest` runs it); a kill is SIGKILL of the whole process group.
* `ClusterBackend`: one local standalone cluster (sandbox/flink_cluster.py) runs every regional
  job, submitted with `flink run`; a kill cancels the job without a savepoint (state-wise a crash:
  the next start restores the latest retained checkpoint).
"""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Protocol

from jobs import checkpoints
from sandbox import flink_cluster, flink_rest
from sandbox.jobrunner import JobProcess, start_job, wait_until
from sandbox.local_cluster import Sandbox


class Backend(Protocol):
    name: str

    def start(self, region: str, restore: str = "latest", parallelism: int | None = None) -> None: ...

    def launch(self, region: str, restore: str = "latest", parallelism: int | None = None) -> None: ...

    def wait_started(self, region: str) -> None: ...

    def stop_with_savepoint(self, region: str) -> str: ...

    def kill(self, region: str) -> None: ...

    def rest_port(self, region: str) -> int: ...

    def job_id(self, region: str) -> str | None: ...

    def check_alive(self, regions: list[str]) -> None: ...

    def close(self) -> None: ...


def _region_dir(sb: Sandbox, region: str) -> Path:
    return checkpoints.region_dir(sb.settings.job.checkpoint_dir, region)


def wait_running(port: int, job: str | None, timeout: float, what: str, alive=lambda: None) -> None:
    """Until the job's every task runs (a restored job has state loaded then)."""
    def ok():
        alive()
        try:
            j = job or flink_rest.running_job(port)
            d = flink_rest.call(port, f"/jobs/{j}")
        except flink_rest.FlinkRestError:
            return False
        return d.get("state") == "RUNNING" and all(v.get("status") == "RUNNING" for v in d.get("vertices", []))
    wait_until(ok, timeout, 1.0, what=what)


class MiniclusterBackend:
    name = "minicluster"

    def __init__(self, sb: Sandbox, rest_ports: dict[str, int], log_dir: Path):
        self.sb, self.ports, self.log_dir = sb, rest_ports, log_dir
        self.procs: dict[str, JobProcess] = {}
        self.killed: set[str] = set()  # regions whose job a drill killed on purpose
        self.starts = 0

    def start(self, region: str, restore: str = "latest", parallelism: int | None = None) -> None:
        self.launch(region, restore, parallelism)
        self.wait_started(region)

    def launch(self, region: str, restore: str = "latest", parallelism: int | None = None,
               properties: Path | None = None) -> None:
        self.starts += 1
        self.killed.discard(region)
        args = ["--rest-port", str(self.ports[region]), "--restore", restore]
        if parallelism:
            args += ["--parallelism", str(parallelism)]
        p = start_job(region, properties or self.sb.properties, self.log_dir / f"{region}-{self.starts}",
                      extra_args=args)
        self.procs[region] = p
        self.sb.jobs.append(p)

    def wait_started(self, region: str) -> None:
        p = self.procs[region]

        def alive():
            if not p.alive():
                raise RuntimeError(f"job {region} exited ({p.proc.returncode}):\n{p.tail()}")
        wait_running(self.ports[region], None, 240, f"job {region} running", alive)

    def stop_with_savepoint(self, region: str) -> str:
        target = (_region_dir(self.sb, region) / "savepoints").as_uri()
        location = flink_rest.stop_with_savepoint(self.ports[region], target)
        self.procs[region].proc.wait(120)  # env.execute() returns once the job has stopped
        return location

    def kill(self, region: str) -> None:
        self.killed.add(region)
        self.procs[region].stop(signal.SIGKILL)

    def rest_port(self, region: str) -> int:
        return self.ports[region]

    def job_id(self, region: str) -> str | None:
        try:
            return flink_rest.running_job(self.ports[region])
        except flink_rest.FlinkRestError:
            return None

    def check_alive(self, regions: list[str]) -> None:
        for r in regions:
            p = self.procs.get(r)
            if p is not None and r not in self.killed and not p.alive():
                raise RuntimeError(f"job {r} exited ({p.proc.returncode}):\n{p.tail()}")

    def close(self) -> None:
        for p in self.procs.values():
            p.stop()


class ClusterBackend:
    """One local standalone cluster per region, as Managed Flink runs one per application. A job
    always starts on fresh JVMs: PyFlink's THREAD mode runs Python inside the TaskManager (pemja),
    and a second Python job started in a TaskManager whose earlier Python job was cancelled while
    another kept running crashed the JVM here (SIGSEGV in PyImport_Import)."""
    name = "cluster"

    def __init__(self, sb: Sandbox, rest_ports: dict[str, int], cluster_dir: Path):
        self.sb, self.dir = sb, cluster_dir
        self.env = flink_cluster.aws_env(sb.settings)
        self.specs = {r: flink_cluster.ClusterSpec(rest_port=p, taskmanager_memory="2048m") for r, p in rest_ports.items()}
        self.jobs: dict[str, str] = {}
        self.killed: set[str] = set()

    def _dir(self, region: str) -> Path:
        return self.dir / region

    def start(self, region: str, restore: str = "latest", parallelism: int | None = None) -> None:
        self.launch(region, restore, parallelism)
        self.wait_started(region)

    def launch(self, region: str, restore: str = "latest", parallelism: int | None = None) -> None:
        spec, d = self.specs[region], self._dir(region)
        if flink_cluster.running(spec):
            flink_cluster.down(spec, d)
            wait_until(lambda: not flink_cluster.running(spec), 60, 0.5, what=f"{region}'s cluster to stop")
        flink_cluster.up(spec, d, self.env)
        self.killed.discard(region)
        path = checkpoints.resolve_restore(restore, _region_dir(self.sb, region))
        self.jobs[region] = flink_cluster.submit(spec, region, self.sb.properties, path, parallelism, d=d,
                                                 env=self.env)

    def wait_started(self, region: str) -> None:
        wait_running(self.specs[region].rest_port, self.jobs[region], 240, f"job {region} running",
                     self._alive(region))

    def _alive(self, region: str):
        def check():
            try:
                st = flink_rest.call(self.specs[region].rest_port, f"/jobs/{self.jobs[region]}")["state"]
            except flink_rest.FlinkRestError as e:
                raise RuntimeError(f"{region}'s cluster does not answer ({e}); see {self._dir(region) / 'log'}")
            if st not in ("RUNNING", "CREATED", "INITIALIZING"):
                raise RuntimeError(f"job {region} is {st}; see {self._dir(region) / 'log'}")
        return check

    def stop_with_savepoint(self, region: str) -> str:
        target = (_region_dir(self.sb, region) / "savepoints").as_uri()
        return flink_rest.stop_with_savepoint(self.specs[region].rest_port, target, job=self.jobs[region])

    def kill(self, region: str) -> None:
        self.killed.add(region)
        flink_cluster.kill(self.specs[region], self._dir(region))

    def rest_port(self, region: str) -> int:
        return self.specs[region].rest_port

    def job_id(self, region: str) -> str | None:
        return self.jobs.get(region)

    def check_alive(self, regions: list[str]) -> None:
        for r in regions:
            if r in self.jobs and r not in self.killed:
                self._alive(r)()

    def close(self) -> None:
        for r, spec in self.specs.items():
            flink_cluster.down(spec, self._dir(r))

"""Where a drill runs the regional jobs. A scenario only starts, stops (with a savepoint), kills
and restarts jobs through this interface, so Managed Flink can plug in with snapshots in place of
savepoints.

* `MiniclusterBackend`: each regional job is its own process with a Flink minicluster (as
  `python -m jobs.ingest` runs it); a kill is SIGKILL of the whole process group.
* `ClusterBackend`: one local standalone cluster (sandbox/flink_cluster.py) runs every regional
  job, submitted with `flink run`; a kill cancels the job without a savepoint (state-wise a crash:
  the next start restores the latest retained checkpoint).
* `ManagedFlinkBackend`: each regional job is a Managed Flink application, driven only through
  the `kinesisanalyticsv2` API (start with a restore setting, stop with and without Force,
  snapshots, UpdateApplication for parallelism and properties). On the sandbox a kill is an
  instance failure injected into the stand-in, and the application comes back through the
  service's automatic recovery from its latest checkpoint; with `recovery="snapshot"` (what a
  real account allows: no call fails an instance) a kill is a forced stop and the next start
  restores the latest snapshot.
"""
from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Callable, Protocol

from connectors import aws
from connectors import managed_flink as msf
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


RECOVERY_OP = "AutomaticRecovery"  # the stand-in's record of the service's own restart (sandbox/managed_flink)
# What a drill may change in an application's properties: its own knobs (the hand-off, the
# dedup seed, how long snapshots live), never the streams, tables or regions it runs against.
DRILL_PROPERTY_KEYS = {"homeflow.job": ("handoff", "table.wait.ms", "handoff.timeout.ms", "dedup.seed",
                                        "lake.stats.interval.ms"),
                       "homeflow.lake": ("expire.older.than.ms",)}


class ManagedFlinkBackend:
    """The regional jobs as Managed Flink applications (one per region, named by the stack's
    ApplicationName parameter), through the API only. `deploy` creates them from a zip with
    `homeflow deploy`'s code (connectors/managed_flink.py)."""
    name = "managed-flink"

    def __init__(self, sb, zip_path: Path | None, recovery: str = "checkpoint",
                 say: Callable[[str], None] = print, app_name: str = "homeflow"):
        if recovery not in ("checkpoint", "snapshot"):
            raise ValueError(f"recovery must be checkpoint or snapshot, not {recovery!r}")
        self.sb, self.zip, self.recovery, self.say, self.app = sb, zip_path, recovery, say, app_name
        self.owned = zip_path is not None  # deployed by the drill (stopped at its end), or a deployment's own
        self.loss_words = (("application failed (an instance failure)",
                            "the service recovers it from its latest checkpoint") if recovery == "checkpoint" else
                           ("application force-stopped (StopApplication Force=true)",
                            "StartApplication restores its latest snapshot"))
        self.ops: dict[str, str | None] = {}  # region -> the operation its last launch started
        self.failed_at: dict[str, float] = {}  # region -> when an instance failure was injected
        self.killed: set[str] = set()
        self.recoveries: list[dict] = []

    def kda(self, region: str):
        return aws.client("kinesisanalyticsv2", region, self.sb.settings.aws)

    def status(self, region: str) -> dict:
        return self.kda(region).describe_application(ApplicationName=self.app)["ApplicationDetail"]

    def deploy(self, regions: list[str]) -> None:
        """Create (or update) each region's application from the zip, then set the drill's own
        property keys (DRILL_PROPERTY_KEYS) with UpdateApplication while it is READY."""
        ours = {g["PropertyGroupId"]: g["PropertyMap"] for g in json.loads(self.sb.properties.read_text())}
        for r in regions:
            msf.apply(self.sb.settings, r, self.zip, out=lambda m: None)
            d = self.status(r)
            groups = d["ApplicationConfigurationDescription"]["EnvironmentPropertyDescriptions"][
                "PropertyGroupDescriptions"]
            changed = False
            for g in groups:
                for k in DRILL_PROPERTY_KEYS.get(g["PropertyGroupId"], ()):
                    v = ours.get(g["PropertyGroupId"], {}).get(k)
                    if v is not None and g["PropertyMap"].get(k) != v:
                        g["PropertyMap"][k], changed = v, True
            if changed:
                self.kda(r).update_application(
                    ApplicationName=self.app, CurrentApplicationVersionId=d["ApplicationVersionId"],
                    ApplicationConfigurationUpdate={"EnvironmentPropertyUpdates": {"PropertyGroups": groups}})
            d = self.status(r)
            self.say(f"      {r}: application {self.app} version {d['ApplicationVersionId']}, {d['ApplicationStatus']}")

    def start(self, region: str, restore: str = "latest", parallelism: int | None = None) -> None:
        self.launch(region, restore, parallelism)
        self.wait_started(region)

    def launch(self, region: str, restore: str = "latest", parallelism: int | None = None) -> None:
        if region in self.failed_at and restore == "latest" and parallelism is None:
            self.ops[region] = None  # the service restarts it by itself: wait_started waits for that
            return
        kda = self.kda(region)
        d = self.status(region)
        if d["ApplicationStatus"] != "READY":  # e.g. recovering after a failure: a fresh start is asked for
            msf.stop(kda, self.app, force=True, out=lambda m: None)
            d = self.status(region)
        if parallelism:
            kda.update_application(
                ApplicationName=self.app, CurrentApplicationVersionId=d["ApplicationVersionId"],
                ApplicationConfigurationUpdate={"FlinkApplicationConfigurationUpdate": {
                    "ParallelismConfigurationUpdate": {"ConfigurationTypeUpdate": "CUSTOM",
                                                       "ParallelismUpdate": parallelism}}})
        r = kda.start_application(ApplicationName=self.app, RunConfiguration={
            "ApplicationRestoreConfiguration": msf.restore_configuration(restore),
            **msf.flink_run_configuration(False)})
        self.ops[region] = r.get("OperationId")
        self.failed_at.pop(region, None)
        self.killed.discard(region)

    def wait_started(self, region: str, timeout: float = 300) -> None:
        kda = self.kda(region)
        op = self.ops.get(region)
        if op is None and region in self.failed_at:
            op = self._recovery_op(kda, region, timeout)
        d = msf.wait(kda, self.app, op, out=lambda m: None, timeout=timeout)
        if d["ApplicationStatus"] != "RUNNING":
            raise RuntimeError(f"application {self.app} in {region} is {d['ApplicationStatus']} after its start")
        self.failed_at.pop(region, None)
        self.killed.discard(region)

    def _recovery_op(self, kda, region: str, timeout: float) -> str:
        """The service's restart after the failure injected at failed_at[region]."""
        since = self.failed_at[region]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for o in kda.list_application_operations(ApplicationName=self.app)["ApplicationOperationInfoList"]:
                if o["Operation"] == RECOVERY_OP and o["StartTime"].timestamp() >= since:
                    self.recoveries.append({"region": region, "after_failure_s": round(
                        o["StartTime"].timestamp() - since, 1)})
                    return o["OperationId"]
            time.sleep(1)
        raise RuntimeError(f"{region}: no {RECOVERY_OP} of {self.app} within {timeout:.0f}s of its failure")

    def stop_with_savepoint(self, region: str) -> str:
        """StopApplication without Force: the service takes a snapshot on the way down; its name."""
        kda = self.kda(region)
        before = {s["SnapshotName"] for s in msf.snapshots(kda, self.app)}
        msf.stop(kda, self.app, force=False, out=lambda m: None)
        new = [s for s in msf.snapshots(kda, self.app) if s["SnapshotName"] not in before and
               s["SnapshotStatus"] == "READY"]
        if not new:
            raise RuntimeError(f"{region}: StopApplication took no snapshot (are snapshots enabled?)")
        return max(new, key=lambda s: s["SnapshotCreationTimestamp"])["SnapshotName"]

    def snapshot(self, region: str, name: str) -> str:
        msf.create_snapshot(self.kda(region), self.app, name)
        return name

    def kill(self, region: str) -> None:
        self.killed.add(region)
        if self.recovery == "snapshot":
            msf.stop(self.kda(region), self.app, force=True, out=lambda m: None)
            return
        self.failed_at[region] = time.time()
        inject_failure(self.sb.settings, region, self.app)

    def rest_port(self, region: str) -> int:
        raise NotImplementedError("a Managed Flink application is reached through its API, not Flink's REST port")

    def job_id(self, region: str) -> str | None:
        return None

    def check_alive(self, regions: list[str]) -> None:
        for r in regions:
            if r in self.killed:
                continue
            d = self.status(r)
            if d["ApplicationStatus"] not in ("RUNNING", "STARTING", "UPDATING", "AUTOSCALING"):
                ops = self.kda(r).list_application_operations(ApplicationName=self.app)["ApplicationOperationInfoList"]
                raise RuntimeError(f"application {self.app} in {r} is {d['ApplicationStatus']}; its operations: "
                                   + ", ".join(f"{o['Operation']} {o['OperationStatus']}" for o in ops[:4]))

    def require_running(self, region: str) -> str:
        """A deployment's application must be RUNNING before a drill touches it."""
        d = self.status(region)
        if d["ApplicationStatus"] != "RUNNING":
            raise RuntimeError(f"application {self.app} in {region} is {d['ApplicationStatus']}, not RUNNING: "
                               "a drill starts from a running deployment")
        return f"{self.app} RUNNING, version {d['ApplicationVersionId']}, parallelism {self.parallelism(region, d)}"

    def parallelism(self, region: str, detail: dict | None = None) -> int:
        d = detail or self.status(region)
        par = d["ApplicationConfigurationDescription"].get("FlinkApplicationConfigurationDescription", {}).get(
            "ParallelismConfigurationDescription", {})
        return int(par.get("CurrentParallelism") or par.get("Parallelism") or 1)

    def close(self) -> None:
        if not self.owned:
            return  # a deployment's applications stay as the drill left them: running
        for r in self.sb.settings.job.regions:
            try:
                if self.status(r)["ApplicationStatus"] == "RUNNING":
                    self.kda(r).stop_application(ApplicationName=self.app, Force=True)
            except Exception:  # noqa: BLE001 - best effort: the sandbox's shutdown stops what is left
                pass


def inject_failure(settings, region: str, application: str) -> list[int]:
    """Kill a stand-in application's cluster, as an instance failure would (the sandbox's fault
    injection, sandbox/managed_flink/service.py: no API call does this)."""
    req = urllib.request.Request(f"{settings.aws.endpoint}/homeflow/managed-flink", method="POST",
                                 data=json.dumps({"fail": {"region": region, "application": application}}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["killed"]

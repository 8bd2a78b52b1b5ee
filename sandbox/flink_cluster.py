"""A local standalone Flink cluster from the Flink distribution inside the PyFlink package: one
JobManager and TaskManagers on loopback, jobs submitted as `flink run` submits them (detached),
stopped with a savepoint or cancelled through the REST API. For savepoint and failover drills:
unlike a minicluster per job, the cluster outlives the jobs, as Managed Flink's does.

    homeflow cluster up [--taskmanagers 1] [--slots 4]   /   homeflow cluster down|status

State lives in .sandbox/cluster/ (configuration, lib with flink-python, logs, pid files).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox import flink_rest
from sandbox.paths import JAR, ROOT, SANDBOX_DIR

CLUSTER_DIR = SANDBOX_DIR / "cluster"
CODE_PACKAGES = ("jobs", "udfs", "connectors", "conf")  # what the job imports (shipped with --pyFiles)
DEFAULT_REST_PORT = 8081


def flink_home() -> Path:
    import pyflink
    return Path(pyflink.__file__).resolve().parent


@dataclass(frozen=True)
class ClusterSpec:
    rest_port: int = DEFAULT_REST_PORT
    taskmanagers: int = 1
    slots: int = 4
    jobmanager_memory: str = "1024m"
    taskmanager_memory: str = "3072m"

    @property
    def rpc_port(self) -> int:
        return self.rest_port + 1000


def _site_packages() -> list[str]:
    import site
    return site.getsitepackages()


def _env(d: Path, aws_env: dict[str, str] | None = None, code_on_path: bool = True) -> dict[str, str]:
    """The cluster processes' environment: our conf/lib/log/pid dirs, and for THREAD mode the
    virtualenv's packages and (unless the job ships its own, as a Managed Flink zip does) our code
    on the embedded interpreter's path (jobs/ingest.py does the same for a minicluster)."""
    env = dict(os.environ)
    env.update({"FLINK_CONF_DIR": str(d / "conf"), "FLINK_LIB_DIR": str(d / "lib"), "FLINK_LOG_DIR": str(d / "log"),
                "FLINK_PID_DIR": str(d / "pid"),
                "PYTHONPATH": os.pathsep.join([str(ROOT)] * code_on_path + _site_packages())})
    env.update(aws_env or {})
    return env


def _java_opts_all() -> str:
    """The distribution's `env.java.opts.all` (the --add-opens Java 17 needs), from its config.yaml."""
    text = (flink_home() / "conf" / "config.yaml").read_text()
    m = re.search(r"^\s+all:\s*(--add-.*)$", text, re.M)
    return m.group(1).strip() if m else ""


def _config(spec: ClusterSpec, d: Path) -> str:
    python = sys.executable
    conf = {
        # Java 17 needs the distribution's --add-opens; the sandbox's Kinesis speaks JSON, not CBOR
        # (connectors/aws.py does the same for a minicluster).
        "env.java.opts.all": f"{_java_opts_all()} -Daws.cborEnabled=false -XX:ErrorFile={d / 'log'}/hs_err_pid%p.log "
                             f"-Djava.io.tmpdir={d / 'tmp'}",
        # Working directories (about 100 MB per JobManager and TaskManager) under the cluster's
        # own directory, emptied at each start: a killed cluster never removes them from /tmp.
        "io.tmp.dirs": str(d / "tmp"),
        "jobmanager.rpc.address": "127.0.0.1", "jobmanager.rpc.port": spec.rpc_port,
        "jobmanager.bind-host": "127.0.0.1", "taskmanager.bind-host": "127.0.0.1",
        "taskmanager.host": "127.0.0.1", "rest.address": "127.0.0.1", "rest.bind-address": "127.0.0.1",
        "rest.port": spec.rest_port, "jobmanager.memory.process.size": spec.jobmanager_memory,
        "taskmanager.memory.process.size": spec.taskmanager_memory,
        "taskmanager.numberOfTaskSlots": spec.slots, "parallelism.default": 1,
        "python.executable": python, "python.client.executable": python,
        "web.checkpoints.history": 20,
    }
    return "".join(f"{k}: {v}\n" for k, v in conf.items())


def _prepare(spec: ClusterSpec, d: Path) -> None:
    home = flink_home()
    shutil.rmtree(d / "tmp", ignore_errors=True)  # only called while none of its processes runs
    for sub in ("conf", "lib", "log", "pid", "tmp"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    for f in (home / "conf").iterdir():
        if f.name != "config.yaml":
            shutil.copy(f, d / "conf" / f.name)
    (d / "conf" / "config.yaml").write_text(_config(spec, d))
    # lib = the distribution's lib plus flink-python (in opt/ in the package): the TaskManagers run
    # the Python operators.
    for jar in [*(home / "lib").glob("*.jar"), *(home / "opt").glob("flink-python*.jar")]:
        link = d / "lib" / jar.name
        if not link.exists():
            link.symlink_to(jar)


def running(spec: ClusterSpec) -> bool:
    try:
        flink_rest.call(spec.rest_port, "/overview")
        return True
    except flink_rest.FlinkRestError:
        return False


def up(spec: ClusterSpec = ClusterSpec(), d: Path = CLUSTER_DIR, aws_env: dict[str, str] | None = None,
       timeout: float = 120, code_on_path: bool = True) -> dict:
    if running(spec):
        ov = flink_rest.call(spec.rest_port, "/overview")
        return ov
    _prepare(spec, d)
    home, env = flink_home(), _env(d, aws_env, code_on_path)
    subprocess.run(["bash", str(home / "bin" / "jobmanager.sh"), "start"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    for _ in range(spec.taskmanagers):
        subprocess.run(["bash", str(home / "bin" / "taskmanager.sh"), "start"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ov = flink_rest.call(spec.rest_port, "/overview")
            if ov.get("taskmanagers", 0) >= spec.taskmanagers:
                return ov
        except flink_rest.FlinkRestError:
            pass
        time.sleep(1)
    raise RuntimeError(f"the local Flink cluster did not come up in {timeout:.0f}s; see {d / 'log'}")


def down(spec: ClusterSpec = ClusterSpec(), d: Path = CLUSTER_DIR) -> list[str]:
    """Stop the TaskManagers and the JobManager this directory started (their pid files)."""
    stopped = []
    home, env = flink_home(), _env(d)
    for pidfile in sorted((d / "pid").glob("*.pid")):
        pids = [p for p in pidfile.read_text().split() if p.strip()]
        if pids:
            stopped.append(f"{pidfile.stem.rsplit('-', 1)[-1]} ({', '.join(pids)})")
    subprocess.run(["bash", str(home / "bin" / "taskmanager.sh"), "stop-all"], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    subprocess.run(["bash", str(home / "bin" / "jobmanager.sh"), "stop-all"], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return stopped


def kill(spec: ClusterSpec, d: Path = CLUSTER_DIR, timeout: float = 30) -> list[int]:
    """SIGKILL the cluster's processes (a region lost with its cluster: no cancel, no savepoint;
    retained checkpoints stay for the next start)."""
    killed = []
    for pidfile in sorted((d / "pid").glob("*.pid")):
        for pid in (int(p) for p in pidfile.read_text().split() if p.strip()):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        pidfile.unlink()
    deadline = time.monotonic() + timeout
    while running(spec) and time.monotonic() < deadline:
        time.sleep(0.2)
    return killed


def aws_env(settings) -> dict[str, str]:
    """Credentials for the Java SDKs of the client (it loads the table schema while building the
    graph) and of the cluster's processes, from the job's settings (the sandbox's keys)."""
    a = settings.aws
    return {"AWS_ACCESS_KEY_ID": a.access_key_id, "AWS_SECRET_ACCESS_KEY": a.secret_access_key or ""} \
        if a.access_key_id else {}


def submit(spec: ClusterSpec, region: str, properties: Path, restore: str | None = None,
           parallelism: int | None = None, jar: Path = JAR, d: Path = CLUSTER_DIR,
           extra_args: list[str] | None = None, script: Path | None = None,
           env: dict[str, str] | None = None, allow_non_restored: bool = False) -> str:
    """`flink run` the regional job, detached; returns its Flink job id."""
    home = flink_home()
    script = script or ROOT / "jobs" / "ingest.py"
    code = script.parent.parent
    argv = [str(home / "bin" / "flink"), "run", "-d", "-m", f"127.0.0.1:{spec.rest_port}",
            "--python", str(script), "--pyFiles", ",".join(str(code / p) for p in CODE_PACKAGES if (code / p).is_dir()),
            "--jarfile", str(jar),
            "--pyExecutable", sys.executable, "--pyClientExecutable", sys.executable]
    if restore:
        argv += ["--fromSavepoint", restore] + (["--allowNonRestoredState"] if allow_non_restored else [])
    argv += ["--region", region, "--properties", str(properties), "--jar", str(jar),
             "--restore", restore or "none"]
    if parallelism:
        argv += ["--parallelism", str(parallelism)]
    argv += extra_args or []
    r = subprocess.run(argv, env=_env(d, env), capture_output=True, text=True, timeout=600,
                       cwd=script.parent.parent)
    m = re.search(r"JobID ([0-9a-f]{32})", r.stdout + r.stderr)
    if r.returncode != 0 or m is None:
        raise RuntimeError(f"flink run of {region} failed ({r.returncode}):\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}")
    return m.group(1)


def jobs(spec: ClusterSpec) -> list[dict]:
    """[{id, name, state}] of every job the cluster knows."""
    return [{"id": j["jid"], "name": j["name"], "state": j["state"]}
            for j in flink_rest.call(spec.rest_port, "/jobs/overview")["jobs"]]


def job_of(spec: ClusterSpec, region: str) -> str | None:
    running_ = [j["id"] for j in jobs(spec) if j["name"] == f"homeflow-{region}" and j["state"] == "RUNNING"]
    return running_[0] if running_ else None

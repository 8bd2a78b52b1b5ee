"""Runs one region's applications the way Managed Flink does, each on a local standalone Flink
cluster of its own, started for each run and stopped with it: a stopped application holds no
resources (on the service it is billed no KPUs), and every start gets fresh TaskManagers. (A
TaskManager that ran the job a few times runs out of metaspace: each submission loads the
uber-jar's classes again in a new class loader, and some are not released.)

What the service does and this does likewise:
- fetch the zip named by the application's S3 code location and unpack it;
- read the run options (property group `kinesis.analytics.flink.run.options`: `python`,
  `jarfile`, `pyFiles`) and run `python` with the jar and Python files they name;
- hand the job its property groups (the service writes /etc/flink/application_properties.json;
  here a file per run, passed with --properties, since several regions share this machine);
- keep checkpoints in storage of its own and take snapshots as savepoints;
- after a failure (the job FAILED, or a process of its cluster died) restart the application
  from its latest retained checkpoint (`latest_checkpoint`), on fresh processes.

What stands in for the service's environment: the job's credentials (the service gives it the
execution role's; here a key of its own, `msf-<region>`, so the emulator's call record tells its
calls apart) and the endpoint (the emulator's), added to the homeflow.aws group. The runtime's
preinstalled Python packages are this virtualenv's site-packages.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config

from jobs import checkpoints
from sandbox import flink_cluster, flink_rest
from sandbox.managed_flink.model import Application, code_location, property_groups

RUN_OPTIONS = "kinesis.analytics.flink.run.options"


class RunError(RuntimeError):
    """The application could not be started or snapshotted; the message is the operation's error."""


class RegionRunner:
    def __init__(self, region: str, root: Path, endpoint: str, allocate_port):
        self.region, self.dir, self.endpoint = region, root / region, endpoint
        self.allocate_port = allocate_port
        self.specs: dict[str, flink_cluster.ClusterSpec] = {}
        self.key = f"msf-{region}"

    def spec(self, app: Application) -> flink_cluster.ClusterSpec:
        if app.name not in self.specs:
            self.specs[app.name] = flink_cluster.ClusterSpec(rest_port=self.allocate_port(), taskmanagers=1, slots=4)
        return self.specs[app.name]

    def cluster_dir(self, app: Application) -> Path:
        return self.app_dir(app) / "cluster"

    def app_dir(self, app: Application) -> Path:
        return self.dir / "applications" / app.name

    def _s3(self):
        return boto3.client("s3", region_name=self.region, endpoint_url=self.endpoint,
                            aws_access_key_id=self.key, aws_secret_access_key="msf",
                            config=Config(retries={"max_attempts": 3, "mode": "standard"}))

    def fresh_cluster(self, app: Application) -> None:
        self.release(app)
        flink_cluster.up(self.spec(app), self.cluster_dir(app), self._aws_env(), code_on_path=False)

    def release(self, app: Application) -> None:
        """Stop the application's cluster once its job has ended (stopped with a snapshot, or
        cancelled): nothing in it is needed any more, so its processes are killed, which takes
        a second where Flink's stop scripts took about 14."""
        if any(p.read_text().strip() for p in (self.cluster_dir(app) / "pid").glob("*.pid")):
            flink_cluster.kill(self.spec(app), self.cluster_dir(app))

    def _aws_env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": "msf"}

    def fetch(self, app: Application, config: dict) -> Path:
        """The unpacked code of `config`, one directory per zip object (cached)."""
        bucket, key, version = code_location(config)
        dest = self.app_dir(app) / "code" / re.sub(r"[^A-Za-z0-9._-]", "_", f"{key}@{version or 'latest'}")
        if (dest / ".complete").exists():
            return dest
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        zpath = dest.parent / (dest.name + ".zip")
        try:
            extra = {"VersionId": version} if version else {}
            body = self._s3().get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
        except Exception as e:  # noqa: BLE001 - the operation's failure message
            raise RunError(f"cannot read the application code s3://{bucket}/{key}: {e}") from None
        zpath.write_bytes(body)
        try:
            with zipfile.ZipFile(zpath) as z:
                z.extractall(dest)
        except zipfile.BadZipFile:
            raise RunError(f"s3://{bucket}/{key} is not a zip file") from None
        finally:
            zpath.unlink(missing_ok=True)
        (dest / ".complete").write_text(key)
        return dest

    def properties(self, app: Application, config: dict) -> Path:
        groups = property_groups(config)
        groups.setdefault("homeflow.aws", {}).update(
            {"endpoint": self.endpoint, "access.key.id": self.key, "secret.access.key": "msf"})
        path = self.app_dir(app) / f"application_properties-v{app.version_id}.json"
        path.write_text(json.dumps([{"PropertyGroupId": g, "PropertyMap": m} for g, m in groups.items()], indent=2))
        return path

    def submit(self, app: Application, config: dict, restore: str | None, allow_non_restored: bool = False) -> str:
        """`flink run` the application's code, detached; returns the Flink job id."""
        code = self.fetch(app, config)
        opts = property_groups(config).get(RUN_OPTIONS, {})
        missing = [k for k in ("python", "jarfile") if not opts.get(k)]
        if missing:
            raise RunError(f"property group {RUN_OPTIONS} lacks {', '.join(missing)}")
        main, jar = code / opts["python"], code / opts["jarfile"]
        for f in (main, jar):
            if not f.exists():
                raise RunError(f"the zip has no {f.relative_to(code)} (named by {RUN_OPTIONS})")
        # The zip's packages go to the Python workers as --pyFiles (they keep their names there),
        # with the directory the run option names.
        py_files = [str(p) for p in sorted(code.iterdir()) if p.is_dir() and (p / "__init__.py").exists()]
        if opts.get("pyFiles"):
            py_files += [str(code / p.strip()) for p in opts["pyFiles"].split(",") if p.strip()]
        self.fresh_cluster(app)
        spec, home = self.spec(app), flink_cluster.flink_home()
        par = config.get("FlinkApplicationConfiguration", {}).get("ParallelismConfiguration", {})
        argv = [str(home / "bin" / "flink"), "run", "-d", "-m", f"127.0.0.1:{spec.rest_port}",
                "--python", str(main), "--pyFiles", ",".join(py_files), "--jarfile", str(jar),
                "--pyExecutable", sys.executable, "--pyClientExecutable", sys.executable]
        if par.get("ConfigurationType") == "CUSTOM" and par.get("Parallelism"):
            argv += ["--parallelism", str(par["Parallelism"])]
        if restore:
            argv += ["--fromSavepoint", restore] + (["--allowNonRestoredState"] if allow_non_restored else [])
        argv += ["--properties", str(self.properties(app, config)), "--jar", str(jar),
                 "--checkpoint-dir", str(self.app_dir(app) / "checkpoints"), "--restore", restore or "none"]
        log = self.app_dir(app) / "flink-run.log"
        r = subprocess.run(argv, env=flink_cluster._env(self.cluster_dir(app), self._aws_env(), code_on_path=False),
                           capture_output=True, text=True, timeout=600, cwd=code)
        with open(log, "a") as f:
            f.write(f"--- {time.strftime('%H:%M:%S')} v{app.version_id} restore={restore} "
                    f"parallelism={par.get('Parallelism') if par.get('ConfigurationType') == 'CUSTOM' else 'default'}"
                    f"\n{r.stdout}\n{r.stderr}\n")
        m = re.search(r"JobID ([0-9a-f]{32})", r.stdout + r.stderr)
        if r.returncode != 0 or m is None:
            tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-5:])
            raise RunError(f"the application did not start (flink run exit {r.returncode}; {log}): {tail}")
        return m.group(1)

    def wait_running(self, app: Application, job: str, timeout: float = 240) -> None:
        """Until every task of the job runs (state restored); a job that fails first is an error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                d = flink_rest.call(self.spec(app).rest_port, f"/jobs/{job}")
            except flink_rest.FlinkRestError:
                d = {}
            state = d.get("state")
            if state == "RUNNING" and all(v.get("status") == "RUNNING" for v in d.get("vertices", [])):
                return
            if state in ("FAILED", "CANCELED", "FINISHED"):
                raise RunError(f"the Flink job {job} ended {state} while starting: {self._root_cause(app, job)}")
            time.sleep(1)
        raise RunError(f"the Flink job {job} was not running after {timeout:.0f}s")

    def _root_cause(self, app: Application, job: str) -> str:
        try:
            ex = flink_rest.call(self.spec(app).rest_port, f"/jobs/{job}/exceptions")
        except flink_rest.FlinkRestError:
            return "unknown"
        text = (ex.get("root-exception") or "").strip().splitlines()
        return text[0] if text else "unknown"

    def savepoint(self, app: Application, job: str, stop: bool) -> str:
        target = (self.app_dir(app) / "snapshots").as_uri()
        try:
            if stop:
                return flink_rest.stop_with_savepoint(self.spec(app).rest_port, target, job=job)
            return flink_rest.savepoint(self.spec(app).rest_port, job, target)
        except flink_rest.FlinkRestError as e:
            raise RunError(str(e)) from None

    def cancel(self, app: Application, job: str, timeout: float = 60) -> None:
        port = self.spec(app).rest_port
        try:
            flink_rest.cancel(port, job)
        except flink_rest.FlinkRestError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if flink_rest.call(port, f"/jobs/{job}").get("state") in ("CANCELED", "FAILED", "FINISHED"):
                    return
            except flink_rest.FlinkRestError:
                return
            time.sleep(0.5)

    def failed(self, app: Application, job: str) -> str | None:
        """Why the application's job is no longer running, or None while it is: a process of its
        cluster died (an instance failure), or Flink gave the job up (FAILED)."""
        pids = [p for f in (self.cluster_dir(app) / "pid").glob("*.pid") for p in f.read_text().split() if p.strip()]
        if not pids:
            return "its cluster's processes are gone"
        for pid in pids:
            if not Path(f"/proc/{pid}").exists():
                return f"process {pid} of its cluster died"
        try:
            state = flink_rest.call(self.spec(app).rest_port, f"/jobs/{job}").get("state")
        except flink_rest.FlinkRestError:
            return None  # a busy JobManager answers late; its processes are alive
        return f"the Flink job {job} is FAILED: {self._root_cause(app, job)}" if state == "FAILED" else None

    def latest_checkpoint(self, app: Application) -> str | None:
        """The newest retained checkpoint of the application's jobs (what the service's recovery
        restores; snapshots are kept apart, under snapshots/)."""
        return checkpoints.resolve_restore("latest", self.app_dir(app) / "checkpoints" / self.region)

    def fail(self, app: Application) -> list[int]:
        """An instance failure: SIGKILL the application's cluster (sandbox-only fault injection,
        for drills; no API call does this)."""
        return flink_cluster.kill(self.spec(app), self.cluster_dir(app), timeout=10)

    def delete_savepoint(self, location: str | None) -> None:
        if location:
            shutil.rmtree(location.removeprefix("file:"), ignore_errors=True)

    def shutdown(self) -> None:
        for pid_dir in (self.dir / "applications").glob("*/cluster/pid"):
            if any(p.read_text().strip() for p in pid_dir.glob("*.pid")):
                flink_cluster.kill(flink_cluster.ClusterSpec(), pid_dir.parent, timeout=0)

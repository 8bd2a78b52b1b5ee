"""The `kinesisanalyticsv2` API on the emulator's endpoint: a WSGI layer in moto's process (inside
the region gate, so a lost region's control plane is unreachable too) that answers every request
whose X-Amz-Target is KinesisAnalytics_20180523.*, and passes the rest to moto.

A call checks the rules and changes the status at once (model.py); what takes time (starting the
job, snapshots, stopping) runs on the region's worker thread, one operation after another, which
ends the operation SUCCESSFUL or FAILED (ListApplicationOperations / DescribeApplicationOperation
show it, with the error) and sets the status the service would: RUNNING, or READY after a failed
start.

A watcher per region does the service's automatic recovery: a RUNNING application whose job
failed or whose cluster lost a process, noticed on two checks `DETECT_S` apart while its region
is reachable, is restarted from its latest checkpoint (`AutomaticRecovery`, model.py).

`POST /homeflow/managed-flink` is the sandbox's fault injection, outside the API as a real
failure is (drills/backends.py): `{"fail": {"region": R, "application": A}}` kills the
application's cluster (an instance failure). `GET` lists the recoveries so far.
"""
from __future__ import annotations

import atexit
import json
import logging
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox.api_calls import DEFAULT_ACCOUNT
from sandbox.managed_flink.model import (ApiError, Application, Operation, Snapshot, describe_config,
                                          new_application)
from sandbox.managed_flink.runner import RegionRunner, RunError
from sandbox.moto_gate import request_region

TARGET_PREFIX = "KinesisAnalytics_20180523."
ADMIN_PATH = "/homeflow/managed-flink"
DETECT_S = 3.0  # a failure is acted on once seen twice this far apart (a busy JobManager is not a dead one)
log = logging.getLogger("homeflow.managed_flink")


class RegionPlane:
    def __init__(self, region: str, runner: RegionRunner, account: str = DEFAULT_ACCOUNT,
                 reachable=lambda region: True):
        self.region, self.runner, self.account = region, runner, account
        self.reachable = reachable
        self.apps: dict[str, Application] = {}
        self.lock = threading.RLock()
        self.worker = ThreadPoolExecutor(1, thread_name_prefix=f"msf-{region}")
        self.closed = threading.Event()
        self.watcher = threading.Thread(target=self._watch, daemon=True, name=f"msf-{region}-recovery")
        self.watcher.start()

    def call(self, op: str, req: dict) -> dict:
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise ApiError("UnsupportedOperationException",
                           f"{op} is not modelled by the sandbox's Managed Flink stand-in (sandbox/managed_flink)")
        with self.lock:
            return handler(req)

    def app(self, req: dict) -> Application:
        name = req.get("ApplicationName", "")
        if name not in self.apps:
            raise ApiError("ResourceNotFoundException", f"Application {name} not found in {self.region}")
        return self.apps[name]

    # ---------------------------------------------------------------- applications

    def op_CreateApplication(self, req):
        if req.get("ApplicationName") in self.apps:
            raise ApiError("ResourceInUseException", f"Application {req['ApplicationName']} already exists")
        a = new_application(req, self.region, self.account)
        self.apps[a.name] = a
        return {"ApplicationDetail": a.detail()}

    def op_DescribeApplication(self, req):
        return {"ApplicationDetail": self.app(req).detail()}

    def op_ListApplications(self, req):
        return {"ApplicationSummaries": [a.summary() for a in self.apps.values()]}

    def op_DeleteApplication(self, req):
        a = self.app(req)
        if a.status not in ("READY",):
            raise ApiError("ResourceInUseException", f"stop application {a.name} before deleting it ({a.status})")
        del self.apps[a.name]
        return {}

    def op_ListApplicationVersions(self, req):
        a = self.app(req)
        return {"ApplicationVersionSummaries": [
            {"ApplicationVersionId": v, "ApplicationStatus": a.status if v == a.version_id else "READY"}
            for v in sorted(a.versions, reverse=True)]}

    def op_DescribeApplicationVersion(self, req):
        a = self.app(req)
        v = req.get("ApplicationVersionId")
        if v not in a.versions:
            raise ApiError("ResourceNotFoundException", f"version {v} of application {a.name} does not exist")
        detail = a.detail()
        detail.update({"ApplicationVersionId": v, "ApplicationConfigurationDescription":
                       describe_config(a.versions[v], a.restore)})
        return {"ApplicationVersionDetail": detail}

    def op_ListApplicationOperations(self, req):
        a = self.app(req)
        return {"ApplicationOperationInfoList": [o.summary() for o in reversed(a.operations)]}

    def op_DescribeApplicationOperation(self, req):
        a = self.app(req)
        for o in a.operations:
            if o.id == req.get("OperationId"):
                return {"ApplicationOperationInfoDetails": o.details()}
        raise ApiError("ResourceNotFoundException", f"operation {req.get('OperationId')} not found")

    # ---------------------------------------------------------------- start, stop, update, rollback

    def op_StartApplication(self, req):
        a = self.app(req)
        op, snap = a.start(req.get("RunConfiguration"))
        self._run(a, op, lambda: self._launch(a, snap.location if snap else None, a.allow_non_restored),
                  on_fail="READY")
        return {"OperationId": op.id}

    def op_StopApplication(self, req):
        a = self.app(req)
        job_before = a.job_id
        op, snapshot = a.stop(bool(req.get("Force")))

        def work():
            self._halt(a, job_before, snapshot)
            self.runner.release(a)
            a.status = "READY"
        self._run(a, op, work, on_fail="READY")
        return {"OperationId": op.id}

    def op_UpdateApplication(self, req):
        a = self.app(req)
        op, restart = a.update(req.get("CurrentApplicationVersionId"), req.get("ApplicationConfigurationUpdate"),
                               req.get("RunConfigurationUpdate"))
        if restart:
            self._run(a, op, lambda: self._relaunch(a), on_fail="READY")
        else:
            op.status, op.ended = "SUCCESSFUL", time.time()
        return {"ApplicationDetail": a.detail(), "OperationId": op.id}

    def op_RollbackApplication(self, req):
        a = self.app(req)
        op, _target = a.rollback(req.get("CurrentApplicationVersionId"))
        self._run(a, op, lambda: self._relaunch(a), on_fail="READY")
        return {"ApplicationDetail": a.detail(), "OperationId": op.id}

    # ---------------------------------------------------------------- snapshots

    def op_CreateApplicationSnapshot(self, req):
        a = self.app(req)
        snap = a.add_snapshot(req.get("SnapshotName", ""))
        job = a.job_id

        self.worker.submit(self._guard, a, None, lambda: self._take(a, snap, job, stop=False), None)
        return {}

    def op_ListApplicationSnapshots(self, req):
        a = self.app(req)
        return {"SnapshotSummaries": [s.details(a.runtime) for s in sorted(a.snapshots, key=lambda s: -s.created)
                                      if s.status != "DELETING"]}

    def op_DescribeApplicationSnapshot(self, req):
        a = self.app(req)
        return {"SnapshotDetails": a.snapshot(req.get("SnapshotName", "")).details(a.runtime)}

    def op_DeleteApplicationSnapshot(self, req):
        a = self.app(req)
        snap = a.delete_snapshot(req.get("SnapshotName", ""), float(req.get("SnapshotCreationTimestamp", 0)))

        def work():
            self.runner.delete_savepoint(snap.location)
            a.snapshots.remove(snap)
        self.worker.submit(self._guard, a, None, work, None)
        return {}

    # ---------------------------------------------------------------- the worker's side

    def _run(self, a: Application, op: Operation, work, on_fail: str) -> None:
        self.worker.submit(self._guard, a, op, work, on_fail)

    def _guard(self, a: Application, op: Operation | None, work, on_fail: str | None) -> None:
        try:
            work()
            with self.lock:
                if op:
                    op.status = "SUCCESSFUL"
        except Exception as e:  # noqa: BLE001 - every failure ends the operation FAILED, with its message
            msg = str(e) if isinstance(e, RunError) else f"{type(e).__name__}: {e}"
            log.error("%s %s: %s\n%s", a.name, op.name if op else "snapshot", msg, traceback.format_exc())
            with self.lock:
                if op:
                    op.status, op.error = "FAILED", msg
                if on_fail:
                    a.status = on_fail
                    if on_fail == "READY" and a.job_id:
                        self.runner.cancel(a, a.job_id)
                        a.job_id = None
                    if on_fail == "READY":
                        self.runner.release(a)
        finally:
            if op:
                op.ended = time.time()

    def _launch(self, a: Application, location: str | None, allow_non_restored: bool = False) -> None:
        """Run the current version from `location` (a snapshot's savepoint or a checkpoint; None:
        without state)."""
        config, version = a.config, a.version_id
        a.job_id = self.runner.submit(a, config, location, allow_non_restored)
        self.runner.wait_running(a, a.job_id)
        with self.lock:
            a.status = "RUNNING"
            if not a.ran or a.ran[-1] != version:
                a.ran.append(version)

    def _halt(self, a: Application, job: str | None, snapshot: bool) -> None:
        if job is None:
            return
        if snapshot:
            self._take(a, a.auto_snapshot(a.ran[-1] if a.ran else a.version_id), job, stop=True)
        else:
            self.runner.cancel(a, job)
        a.job_id = None

    def _take(self, a: Application, snap: Snapshot, job: str, stop: bool) -> None:
        try:
            snap.location = self.runner.savepoint(a, job, stop)
            snap.status = "READY"
        except RunError:
            snap.status = "FAILED"
            raise

    def _relaunch(self, a: Application) -> None:
        """An update or rollback of a running application: snapshot and stop the running job,
        then run the current version, restored as its run configuration says."""
        self._halt(a, a.job_id, a.snapshots_enabled())
        snap = a.resolve_restore(a.restore)
        self._launch(a, snap.location if snap else None, a.allow_non_restored)

    # ---------------------------------------------------------------- automatic recovery

    def _watch(self) -> None:
        suspects: dict[str, tuple[str, str]] = {}  # application -> (job, why) seen failed on the last check
        while not self.closed.wait(DETECT_S):
            if not self.reachable(self.region):
                suspects.clear()  # a lost region recovers nothing until it is back
                continue
            with self.lock:
                watched = [(a, a.job_id) for a in self.apps.values() if a.status == "RUNNING" and a.job_id]
            for a, job in watched:
                why = self.runner.failed(a, job)
                if why is None:
                    suspects.pop(a.name, None)
                elif suspects.get(a.name, ("",))[0] != job:
                    suspects[a.name] = (job, why)
                else:
                    suspects.pop(a.name)
                    self._recover(a, job, why)

    def _recover(self, a: Application, job: str, why: str) -> None:
        with self.lock:
            if a.status != "RUNNING" or a.job_id != job:
                return  # a call changed it meanwhile
            op = a.recover()
            a.job_id = None
        log.warning("%s: %s; restarting it from its latest checkpoint", a.name, why)

        def work():
            self.runner.release(a)
            self._launch(a, self.runner.latest_checkpoint(a), a.allow_non_restored)
        self._run(a, op, work, on_fail="READY")

    def fail(self, name: str) -> list[int]:
        with self.lock:
            if name not in self.apps:
                raise ApiError("ResourceNotFoundException", f"Application {name} not found in {self.region}")
            a = self.apps[name]
        return self.runner.fail(a)

    def close(self) -> None:
        self.closed.set()
        self.worker.shutdown(wait=False, cancel_futures=True)
        self.runner.shutdown()


class ManagedFlinkService:
    """WSGI: kinesisanalyticsv2 requests to the region's plane, everything else to `app`."""

    def __init__(self, app, root: Path, endpoint: str, first_rest_port: int):
        self.app, self.root, self.endpoint = app, root, endpoint
        self.next_port = first_rest_port  # one Flink REST port per application (RPC: +1000)
        self.planes: dict[str, RegionPlane] = {}
        self.lock = threading.RLock()
        self.reachable = lambda region: True  # the region gate's view, set by sandbox/moto_gate.py
        atexit.register(self.close)

    def plane(self, region: str) -> RegionPlane:
        with self.lock:
            if region not in self.planes:
                self.planes[region] = RegionPlane(region, RegionRunner(region, self.root, self.endpoint,
                                                                       self._allocate_port),
                                                  reachable=lambda r: self.reachable(r))
            return self.planes[region]

    def _allocate_port(self) -> int:
        with self.lock:
            self.next_port += 1
            return self.next_port - 1

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == ADMIN_PATH:
            return self._admin(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(TARGET_PREFIX):
            return self.app(environ, start_response)
        n = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            req = json.loads(environ["wsgi.input"].read(n) or b"{}")
            region = request_region(environ) or "us-east-1"
            status, doc = "200 OK", self.plane(region).call(target[len(TARGET_PREFIX):], req)
        except ApiError as e:
            status, doc = "400 Bad Request", {"__type": e.code, "message": e.message}
        except Exception as e:  # noqa: BLE001 - the service's own fault: a 500 with the reason
            log.error("kinesisanalyticsv2 %s: %s", target, traceback.format_exc())
            status, doc = "500 Internal Server Error", {"__type": "InternalFailure", "message": str(e)}
        body = json.dumps(doc, default=str).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(body)))]
        if not status.startswith("200"):
            headers.append(("x-amzn-ErrorType", doc["__type"]))
        start_response(status, headers)
        return [body]

    def _admin(self, environ, start_response):
        status, doc = "200 OK", {}
        try:
            if environ.get("REQUEST_METHOD") == "POST":
                n = int(environ.get("CONTENT_LENGTH") or 0)
                req = json.loads(environ["wsgi.input"].read(n) or b"{}")
                if "fail" in req:
                    f = req["fail"]
                    doc["killed"] = self.plane(f["region"]).fail(f.get("application", "homeflow"))
            with self.lock:
                planes = dict(self.planes)
            doc["recoveries"] = {r: {a.name: a.recoveries for a in p.apps.values()} for r, p in planes.items()}
        except ApiError as e:
            status, doc = "404 Not Found", {"__type": e.code, "message": e.message}
        body = json.dumps(doc).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def close(self) -> None:
        for p in self.planes.values():
            p.close()

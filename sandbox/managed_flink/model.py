"""The applications of one region, as Managed Flink's API sees them: their versions, status,
snapshots and operations, and the API's rules (which status allows which call, the version id
every change must name). Pure: the service (service.py) does the side effects these decide.

Rules modelled on the service's API reference:
- CreateApplication -> READY, version 1. UpdateApplication and RollbackApplication must name the
  current version id (ConcurrentModificationException otherwise) and add a version.
- StartApplication from READY only. Restore: RESTORE_FROM_LATEST_SNAPSHOT (the newest READY
  snapshot; none -> start without state), RESTORE_FROM_CUSTOM_SNAPSHOT (SnapshotName must exist),
  SKIP_RESTORE_FROM_SNAPSHOT.
- StopApplication from RUNNING; with Force also from STARTING, UPDATING, ROLLING_BACK, AUTOSCALING.
  Without Force and with snapshots enabled it takes a snapshot first.
- UpdateApplication in READY (config only) or RUNNING (snapshot, stop, restart the new version
  with the run configuration given, by default from the latest snapshot: status UPDATING).
- CreateApplicationSnapshot in RUNNING with snapshots enabled.
- RollbackApplication in RUNNING, UPDATING or AUTOSCALING, to the previous version that ran,
  restoring the latest snapshot; refused without one.
- Automatic recovery: when a RUNNING application's job fails or its instances die, the service
  restarts it from its latest *checkpoint*, with no call ("the same semantics as failure-free
  execution", the service's fault-tolerance page). The service does this without an API
  operation; the stand-in records it as the operation `AutomaticRecovery` and shows STARTING
  until the job runs again, so a drill (or a person) can see and wait for it.
"""
from __future__ import annotations

import copy
import time
import uuid
from dataclasses import dataclass, field

LATEST, CUSTOM, SKIP = "RESTORE_FROM_LATEST_SNAPSHOT", "RESTORE_FROM_CUSTOM_SNAPSHOT", "SKIP_RESTORE_FROM_SNAPSHOT"
RECOVERY = "AutomaticRecovery"


class ApiError(Exception):
    """An error the API returns: HTTP 400 with {"__type": code, "message": ...}."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Snapshot:
    name: str
    created: float
    version_id: int
    status: str = "CREATING"  # CREATING -> READY | FAILED; DELETING
    location: str | None = None  # the savepoint (not part of the API)

    def details(self, runtime: str) -> dict:
        return {"SnapshotName": self.name, "SnapshotStatus": self.status, "ApplicationVersionId": self.version_id,
                "SnapshotCreationTimestamp": self.created, "RuntimeEnvironment": runtime}


@dataclass
class Operation:
    id: str
    name: str  # StartApplication, StopApplication, UpdateApplication, RollbackApplication, ...
    started: float
    ended: float | None = None
    status: str = "IN_PROGRESS"  # IN_PROGRESS | SUCCESSFUL | FAILED | CANCELLED
    error: str | None = None
    version_change: tuple[int, int] | None = None

    def summary(self) -> dict:
        out = {"Operation": self.name, "OperationId": self.id, "StartTime": self.started,
               "OperationStatus": self.status}
        if self.ended is not None:
            out["EndTime"] = self.ended
        return out

    def details(self) -> dict:
        out = {k: v for k, v in self.summary().items() if k != "OperationId"}
        if self.version_change:
            out["ApplicationVersionChangeDetails"] = {"ApplicationVersionUpdatedFrom": self.version_change[0],
                                                      "ApplicationVersionUpdatedTo": self.version_change[1]}
        if self.error:
            out["OperationFailureDetails"] = {"ErrorInfo": {"ErrorString": self.error}}
        return out


@dataclass
class Application:
    name: str
    arn: str
    runtime: str
    role: str
    description: str
    versions: dict[int, dict]  # version id -> ApplicationConfiguration (the request's shape)
    version_id: int = 1
    status: str = "READY"
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    ran: list[int] = field(default_factory=list)  # version ids in the order they reached RUNNING
    snapshots: list[Snapshot] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    restore: dict = field(default_factory=lambda: {"ApplicationRestoreType": LATEST})
    # FlinkRunConfiguration.AllowNonRestoredState: kept, like the restore setting, from the last
    # start or update that set it, for every later restart.
    allow_non_restored: bool = False
    rolled_back: tuple[int, int] | None = None
    job_id: str | None = None  # the Flink job running it (not part of the API)
    recoveries: int = 0  # automatic recoveries so far (not part of the API)

    @property
    def config(self) -> dict:
        return self.versions[self.version_id]

    def snapshots_enabled(self) -> bool:
        return bool(self.config.get("ApplicationSnapshotConfiguration", {}).get("SnapshotsEnabled"))

    def snapshot(self, name: str) -> Snapshot:
        for s in self.snapshots:
            if s.name == name:
                return s
        raise ApiError("ResourceNotFoundException", f"snapshot {name} of application {self.name} does not exist")

    def latest_snapshot(self) -> Snapshot | None:
        ready = [s for s in self.snapshots if s.status == "READY"]
        return max(ready, key=lambda s: s.created) if ready else None

    def begin(self, name: str, version_change: tuple[int, int] | None = None) -> Operation:
        op = Operation(uuid.uuid4().hex[:16], name, time.time(), version_change=version_change)
        self.operations.append(op)
        return op

    # ---------------------------------------------------------------- calls

    def start(self, run_configuration: dict | None) -> tuple[Operation, Snapshot | None]:
        self._require({"READY"}, "StartApplication")
        restore = dict((run_configuration or {}).get("ApplicationRestoreConfiguration") or self.restore)
        snap = self.resolve_restore(restore)
        self.restore = restore
        self._flink_run(run_configuration)
        self.status = "STARTING"
        return self.begin("StartApplication"), snap

    def _flink_run(self, run_configuration: dict | None) -> None:
        flink = (run_configuration or {}).get("FlinkRunConfiguration")
        if flink is not None:
            self.allow_non_restored = bool(flink.get("AllowNonRestoredState"))

    def resolve_restore(self, restore: dict) -> Snapshot | None:
        kind = restore.get("ApplicationRestoreType", LATEST)
        if kind == SKIP:
            return None
        if kind == LATEST:
            return self.latest_snapshot()
        if kind == CUSTOM:
            name = restore.get("SnapshotName")
            if not name:
                raise ApiError("InvalidArgumentException", f"{CUSTOM} needs a SnapshotName")
            snap = self.snapshot(name)
            if snap.status != "READY":
                raise ApiError("InvalidArgumentException", f"snapshot {name} is {snap.status}, not READY")
            return snap
        raise ApiError("InvalidArgumentException", f"unknown ApplicationRestoreType {kind}")

    def stop(self, force: bool) -> tuple[Operation, bool]:
        """Returns the operation and whether a snapshot is taken on the way down."""
        allowed = {"RUNNING", "STARTING", "UPDATING", "ROLLING_BACK", "AUTOSCALING"} if force else {"RUNNING"}
        self._require(allowed, "StopApplication" + (" with Force" if force else ""))
        self.status = "FORCE_STOPPING" if force else "STOPPING"
        return self.begin("StopApplication"), (not force and self.snapshots_enabled())

    def update(self, current_version: int, config_update: dict | None, run_update: dict | None
               ) -> tuple[Operation, bool]:
        """Adds a version. Returns the operation and whether the job must be restarted (RUNNING)."""
        self._version(current_version)
        self._require({"READY", "RUNNING"}, "UpdateApplication")
        new = merge_update(self.config, config_update or {})
        self.versions[self.version_id + 1] = new
        change = (self.version_id, self.version_id + 1)
        self.version_id += 1
        self.updated = time.time()
        self.rolled_back = None
        if run_update and run_update.get("ApplicationRestoreConfiguration"):
            self.restore = dict(run_update["ApplicationRestoreConfiguration"])
        self._flink_run(run_update)
        restart = self.status == "RUNNING"
        if restart:
            self.resolve_restore(self.restore)  # a bad snapshot name fails the call, not the restart
            self.status = "UPDATING"
        return self.begin("UpdateApplication", change), restart

    def rollback(self, current_version: int) -> tuple[Operation, int]:
        """Adds a version with the configuration of the previous version that ran; returns the
        operation and that version's id."""
        self._version(current_version)
        self._require({"RUNNING", "UPDATING", "AUTOSCALING"}, "RollbackApplication")
        if self.latest_snapshot() is None:
            raise ApiError("InvalidRequestException", f"application {self.name} has no snapshot to roll back with")
        earlier = [v for v in self.ran if v != self.version_id]
        if not earlier:
            raise ApiError("InvalidRequestException", f"application {self.name} has no previous running version")
        target = earlier[-1]
        self.versions[self.version_id + 1] = copy.deepcopy(self.versions[target])
        self.rolled_back = (self.version_id, target)
        change = (self.version_id, self.version_id + 1)
        self.version_id += 1
        self.updated = time.time()
        self.restore = {"ApplicationRestoreType": LATEST}
        self.status = "ROLLING_BACK"
        return self.begin("RollbackApplication", change), target

    def recover(self) -> Operation:
        """The service's own restart of a RUNNING application whose job failed (its latest
        checkpoint is restored by the service's side, not here)."""
        self._require({"RUNNING"}, RECOVERY)
        self.status = "STARTING"
        self.recoveries += 1
        return self.begin(RECOVERY)

    def add_snapshot(self, name: str) -> Snapshot:
        self._require({"RUNNING"}, "CreateApplicationSnapshot")
        if not self.snapshots_enabled():
            raise ApiError("InvalidRequestException", f"snapshots are disabled for application {self.name}")
        if any(s.name == name for s in self.snapshots):
            raise ApiError("ResourceInUseException", f"snapshot {name} already exists")
        snap = Snapshot(name, time.time(), self.version_id)
        self.snapshots.append(snap)
        return snap

    def auto_snapshot(self, version_id: int) -> Snapshot:
        """The snapshot the service takes on a stop, update or rollback, of the version that ran."""
        snap = Snapshot(f"auto-{int(time.time() * 1000)}-v{version_id}", time.time(), version_id)
        self.snapshots.append(snap)
        return snap

    def delete_snapshot(self, name: str, created: float) -> Snapshot:
        snap = self.snapshot(name)
        if abs(snap.created - created) > 0.001:
            raise ApiError("InvalidArgumentException",
                           f"SnapshotCreationTimestamp does not match snapshot {name}'s ({snap.created})")
        if snap.status == "CREATING":
            raise ApiError("ResourceInUseException", f"snapshot {name} is being created")
        snap.status = "DELETING"
        return snap

    def _require(self, allowed: set[str], call: str) -> None:
        if self.status not in allowed:
            raise ApiError("ResourceInUseException",
                           f"{call} is not allowed while application {self.name} is {self.status} "
                           f"(allowed: {', '.join(sorted(allowed))})")

    def _version(self, current: int) -> None:
        if current != self.version_id:
            raise ApiError("ConcurrentModificationException",
                           f"CurrentApplicationVersionId {current} is not the current version "
                           f"{self.version_id} of application {self.name}")

    # ---------------------------------------------------------------- the API's views

    def detail(self) -> dict:
        out = {"ApplicationARN": self.arn, "ApplicationDescription": self.description,
               "ApplicationName": self.name, "RuntimeEnvironment": self.runtime,
               "ServiceExecutionRole": self.role, "ApplicationStatus": self.status,
               "ApplicationVersionId": self.version_id, "CreateTimestamp": self.created,
               "LastUpdateTimestamp": self.updated, "ApplicationMode": "STREAMING",
               "ApplicationConfigurationDescription": describe_config(self.config, self.restore)}
        if self.rolled_back:
            out["ApplicationVersionRolledBackFrom"], out["ApplicationVersionRolledBackTo"] = self.rolled_back
        return out

    def summary(self) -> dict:
        return {"ApplicationName": self.name, "ApplicationARN": self.arn, "ApplicationStatus": self.status,
                "ApplicationVersionId": self.version_id, "RuntimeEnvironment": self.runtime,
                "ApplicationMode": "STREAMING"}


def new_application(req: dict, region: str, account: str) -> Application:
    name = req["ApplicationName"]
    if not req.get("RuntimeEnvironment", "").startswith("FLINK-"):
        raise ApiError("InvalidArgumentException", f"RuntimeEnvironment {req.get('RuntimeEnvironment')} is not "
                       "a Flink runtime (this stand-in runs Flink applications only)")
    config = copy.deepcopy(req.get("ApplicationConfiguration") or {})
    code = config.get("ApplicationCodeConfiguration", {})
    if code.get("CodeContentType") != "ZIPFILE" or "S3ContentLocation" not in code.get("CodeContent", {}):
        raise ApiError("InvalidArgumentException", "ApplicationCodeConfiguration must be a ZIPFILE in S3 "
                       "(CodeContent.S3ContentLocation): a Python application's zip")
    return Application(name, f"arn:aws:kinesisanalytics:{region}:{account}:application/{name}",
                       req["RuntimeEnvironment"], req["ServiceExecutionRole"], req.get("ApplicationDescription", ""),
                       {1: config})


# An update's keys are the configuration's with "Update" appended, except these.
_UPDATE_KEYS = {"EnvironmentPropertyUpdates": "EnvironmentProperties"}


def merge_update(config: dict, update: dict) -> dict:
    """The configuration after an ApplicationConfigurationUpdate: every `XUpdate` key replaces or
    merges into `X` (lists, e.g. the property groups, are replaced whole, as the service does)."""
    out = copy.deepcopy(config)
    for key, value in update.items():
        target = _UPDATE_KEYS.get(key, key[:-len("Update")] if key.endswith("Update") else key)
        if isinstance(value, dict):
            out[target] = merge_update(out.get(target, {}) if isinstance(out.get(target), dict) else {}, value)
        else:
            out[target] = copy.deepcopy(value)
    return out


def describe_config(config: dict, restore: dict) -> dict:
    """ApplicationConfigurationDescription from the request-shaped configuration."""
    out: dict = {}
    code = config.get("ApplicationCodeConfiguration", {})
    if code:
        s3 = code.get("CodeContent", {}).get("S3ContentLocation", {})
        out["ApplicationCodeConfigurationDescription"] = {
            "CodeContentType": code.get("CodeContentType"),
            "CodeContentDescription": {"S3ApplicationCodeLocationDescription": dict(s3)}}
    props = config.get("EnvironmentProperties", {}).get("PropertyGroups")
    if props is not None:
        out["EnvironmentPropertyDescriptions"] = {"PropertyGroupDescriptions": copy.deepcopy(props)}
    flink = config.get("FlinkApplicationConfiguration", {})
    if flink:
        d = {f"{k}Description": copy.deepcopy(v) for k, v in flink.items()}
        par = d.get("ParallelismConfigurationDescription")
        if par is not None:
            par["CurrentParallelism"] = par.get("Parallelism", 1)
        out["FlinkApplicationConfigurationDescription"] = d
    snaps = config.get("ApplicationSnapshotConfiguration")
    if snaps is not None:
        out["ApplicationSnapshotConfigurationDescription"] = dict(snaps)
    out["RunConfigurationDescription"] = {"ApplicationRestoreConfigurationDescription": dict(restore)}
    return out


def property_groups(config: dict) -> dict[str, dict[str, str]]:
    return {g["PropertyGroupId"]: dict(g.get("PropertyMap", {}))
            for g in config.get("EnvironmentProperties", {}).get("PropertyGroups", [])}


def code_location(config: dict) -> tuple[str, str, str | None]:
    """(bucket, key, object version) of the application's zip."""
    s3 = config["ApplicationCodeConfiguration"]["CodeContent"]["S3ContentLocation"]
    return s3["BucketARN"].split(":::", 1)[1], s3["FileKey"], s3.get("ObjectVersion")

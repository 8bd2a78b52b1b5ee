"""Flink's REST API for drills: find the running job, stop it with a savepoint."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request


class FlinkRestError(RuntimeError):
    pass


def call(port: int, path: str, body: dict | None = None, method: str | None = None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 method=method or ("POST" if body is not None else "GET"),
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")
    except (urllib.error.URLError, OSError) as e:  # refused, reset, timed out: nobody answers
        raise FlinkRestError(f"Flink REST API on 127.0.0.1:{port} {path}: {e}") from None


def running_job(port: int) -> str:
    jobs = [j["id"] for j in call(port, "/jobs")["jobs"] if j["status"] == "RUNNING"]
    if len(jobs) != 1:
        raise FlinkRestError(f"expected one RUNNING job on port {port}, found {len(jobs)}")
    return jobs[0]


def cancel(port: int, job: str) -> None:
    """Cancel without a savepoint (a crash, as far as state goes: the next start restores the
    latest retained checkpoint)."""
    call(port, f"/jobs/{job}?mode=cancel", method="PATCH")


def stop_with_savepoint(port: int, target_dir: str, timeout: float = 180, job: str | None = None) -> str:
    """Stop the running job with a savepoint (no drain: event time is not advanced, so a restore
    continues exactly where it stopped). Returns the savepoint's location."""
    job = job or running_job(port)
    trigger = call(port, f"/jobs/{job}/stop", {"targetDirectory": target_dir, "drain": False})["request-id"]
    # A job on its own minicluster ends its process once the savepoint completed and the job
    # finished, which can be before a poll sees COMPLETED. The savepoint is then on disk with its
    # _metadata (written only at completion).
    return _await_savepoint(port, job, trigger, timeout, "stop-with-savepoint",
                            lambda: _completed_savepoint(target_dir, job))


def savepoint(port: int, job: str, target_dir: str, timeout: float = 180) -> str:
    """A savepoint of a running job that keeps running (a Managed Flink snapshot). Returns its
    location."""
    trigger = call(port, f"/jobs/{job}/savepoints", {"target-directory": target_dir, "cancel-job": False})
    return _await_savepoint(port, job, trigger["request-id"], timeout, "savepoint")


def _await_savepoint(port: int, job: str, trigger: str, timeout: float, what: str, when_gone=None) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = call(port, f"/jobs/{job}/savepoints/{trigger}")
        except FlinkRestError:
            found = when_gone() if when_gone else None
            if found is None:
                raise
            return found
        if r["status"]["id"] == "COMPLETED":
            op = r.get("operation", {})
            if "location" in op:
                return op["location"]
            raise FlinkRestError(f"{what} of {job} failed: {op.get('failure-cause', op)}")
        time.sleep(0.5)
    raise FlinkRestError(f"{what} of {job} did not complete in {timeout:.0f}s")


def _completed_savepoint(target_dir: str, job: str) -> str | None:
    """The newest completed savepoint of `job` under a local target directory, in Flink's form."""
    from pathlib import Path
    from urllib.parse import urlparse
    u = urlparse(target_dir)
    if u.scheme not in ("", "file"):
        return None
    done = sorted(Path(u.path).glob(f"savepoint-{job[:6]}-*/_metadata"), key=lambda p: p.stat().st_mtime)
    return f"file:{done[-1].parent}" if done else None


def completed_checkpoints(port: int, job: str | None = None) -> dict[int, tuple[int, int]]:
    """Checkpoint id -> (triggered, completed) epoch ms, for the completed checkpoints in the
    running job's (or `job`'s) recent history (Flink keeps the last `web.checkpoints.history`, 10)."""
    job = job or running_job(port)
    return {c["id"]: (c["trigger_timestamp"], c["latest_ack_timestamp"])
            for c in call(port, f"/jobs/{job}/checkpoints")["history"] if c["status"] == "COMPLETED"}


def checkpoint_tasks(port: int, job: str, checkpoint_id: int) -> dict[str, dict[str, int]]:
    """Where one checkpoint spent its time, per operator chain (task name): `ack` = its last
    subtask's acknowledgement - the trigger, and the slowest subtask's `start_delay` (trigger ->
    the first barrier reached it), `alignment`, `sync` and `async` durations (ms)."""
    names = {v["id"]: v["name"] for v in call(port, f"/jobs/{job}")["vertices"]}
    detail = call(port, f"/jobs/{job}/checkpoints/details/{checkpoint_id}")
    out: dict[str, dict[str, int]] = {}
    for vid, t in detail["tasks"].items():
        sub = call(port, f"/jobs/{job}/checkpoints/details/{checkpoint_id}/subtasks/{vid}")["summary"]
        out[names.get(vid, vid)] = {
            "ack": t["latest_ack_timestamp"] - detail["trigger_timestamp"],
            "start_delay": sub["start_delay"]["max"],
            "alignment": sub["alignment"]["duration"]["max"],
            "sync": sub["checkpoint_duration"]["sync"]["max"],
            "async": sub["checkpoint_duration"]["async"]["max"]}
    return out


def checkpoint_report(port: int, job: str | None = None) -> list[str]:
    """What a job's checkpoints are doing, for a log when commits stop: the counts, the newest
    completed one, and for each checkpoint in progress the tasks that have not acknowledged it
    (acknowledged / subtasks) with their back-pressure: the stalled operator chain by name."""
    job = job or running_job(port)
    cps = call(port, f"/jobs/{job}/checkpoints")
    c = cps["counts"]
    done = (cps.get("latest") or {}).get("completed") or {}
    out = [f"job {job}: {c['completed']} completed, {c['in_progress']} in progress, {c['failed']} failed "
           f"checkpoints; newest completed: {done.get('id')}"]
    names = {v["id"]: v["name"] for v in call(port, f"/jobs/{job}")["vertices"]}
    now_ms = int(time.time() * 1000)
    for cp in cps["history"]:
        if cp["status"] != "IN_PROGRESS":
            continue
        detail = call(port, f"/jobs/{job}/checkpoints/details/{cp['id']}")
        out.append(f"  checkpoint {cp['id']}: in progress for {(now_ms - cp['trigger_timestamp']) / 1000:.0f} s")
        for vid, t in detail["tasks"].items():
            if t["num_acknowledged_subtasks"] < t["num_subtasks"]:
                try:
                    bp = call(port, f"/jobs/{job}/vertices/{vid}/backpressure").get("backpressureLevel", "?")
                except FlinkRestError:
                    bp = "?"
                out.append(f"    not acknowledged by {names.get(vid, vid)}: {t['num_acknowledged_subtasks']}/"
                           f"{t['num_subtasks']} subtasks, back-pressure {bp}")
    return out

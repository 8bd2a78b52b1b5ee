"""Run one drill end to end: its own sandbox (emulator, region gate, replication with lag), the
regional jobs on a backend, sequenced traffic, the scenario, then the audit of the lake and the
report. Used by `homeflow drill` and by the end-to-end tests."""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from connectors import lake
from connectors.stream_reader import read_stream
from drills import audit as audit_mod
from drills import report as report_mod
from drills import plan as drill_plan
from drills import scenarios
from drills.backends import ClusterBackend, ManagedFlinkBackend, MiniclusterBackend
from drills.traffic import Traffic
from drills.world import Deployment
from sandbox import flink_rest
from sandbox.jobrunner import await_canaries, wait_until
from sandbox.local_cluster import Sandbox

UNICODE_KEYS = ("ключ", "鍵", "clé", "🔑")
BACKENDS = ("minicluster", "cluster", "managed-flink")
# The drills a Managed Flink application can go through with the API's calls alone (the replay
# drill starts a region without state mid-drill, the reshard drill needs kinesis-mock).
MANAGED_FLINK_SCENARIOS = ("move-keys", "region-loss", "upgrade")


def drill_keys(n: int, prefix: str = "") -> list[str]:
    """Business keys for a drill; every tenth is a non-ASCII one."""
    return [prefix + (f"{UNICODE_KEYS[(i // 10) % len(UNICODE_KEYS)]}-{i:03d}" if i % 10 == 9 else f"acct-{i:03d}")
            for i in range(n)]


@dataclass
class DrillOptions:
    scenario: str
    out: Path
    backend: str = "minicluster"  # | cluster | managed-flink
    zip: Path | None = None  # managed-flink: the application's zip (homeflow package)
    # managed-flink: how a killed application comes back. "checkpoint": an injected instance
    # failure and the service's automatic recovery from the latest checkpoint; "snapshot": a
    # forced stop and a start from the latest snapshot (all a real account allows: no call fails
    # an instance).
    recovery: str = "checkpoint"
    target: str = "sandbox"  # | deployment: the applications and streams `properties` names (managed-flink)
    properties: Path | None = None
    application: str = "homeflow"
    handoff: str = "ordered"  # | none (the control)
    regions: tuple[str, str] = ("us-east-1", "eu-west-1")
    port: int = 4577
    rest_port: int = 18120  # this one and the next: one Flink REST port per region
    keys: int = 40
    rate: float = 100.0  # events/s per producing region
    flips: int = 5
    warmup_s: float = 6.0
    ddb_lag: float = 1.0
    s3_lag: float = 2.0
    keep: bool = False
    # | home (the replay drill's control: moved keys' events commit twice) | none (the control of a
    # restart from a snapshot older than the last commit: what was committed since commits again)
    dedup_seed: str = "lake"
    retry_share: float = 0.0  # events sent again, unchanged, into the other region's ingest stream
    extra: dict = field(default_factory=dict)
    job: dict = field(default_factory=dict)  # more homeflow.job properties for the sandbox's jobs


def run(opts: DrillOptions, say: Callable[[str], None] = print,
        after: Callable[[Sandbox, object, scenarios.Drill], dict] | None = None) -> dict:
    """`after`, if given, runs once the report is written, on the drill's live sandbox and jobs
    (a control phase that must not be in the audit); what it returns is the report's "after"."""
    validate(opts)
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    run_id = f"{opts.scenario}-{uuid.uuid4().hex[:8]}"
    a, b = opts.regions
    on_deployment = opts.target == "deployment"
    if on_deployment:
        sb = Deployment(opts.properties)
        say(f"[1/6] deployment {sb.settings.aws.endpoint or 'on AWS'} ({opts.properties}): {a} and {b}; "
            f"run id {run_id}")
    else:
        say(f"[1/6] sandbox on 127.0.0.1:{opts.port} (DynamoDB lag {opts.ddb_lag}s, S3 lag {opts.s3_lag}s), "
            f"hand-off {opts.handoff}")
        sb = Sandbox(out / "world", opts.port, list(opts.regions), ddb_lag=opts.ddb_lag, s3_lag=opts.s3_lag,
                     kinesis="kinesis-mock" if opts.scenario == "reshard" else "moto",
                     # The audit dates every row by the append that committed it: no snapshot may expire.
                     lake={"expire.older.than.ms": "0"},
                     **{"handoff": opts.handoff, "table.wait.ms": "20000", "handoff.timeout.ms": "20000",
                        "dedup.seed": opts.dedup_seed, **opts.job}).up()
    backend = None
    traffic = None
    stop_acks = threading.Event()
    try:
        if on_deployment:
            # Its applications run already and stay as they are: nothing is deployed or started.
            backend = ManagedFlinkBackend(sb, None, recovery="snapshot", say=say, app_name=opts.application)
            say(f"[2/6] applications: " + ", ".join(f"{r} {backend.require_running(r)}" for r in opts.regions))
        elif opts.backend == "cluster":
            say(f"[2/6] starting {a} and {b} on the {opts.backend}")
            backend = ClusterBackend(sb, {a: opts.rest_port, b: opts.rest_port + 1}, out / "cluster")
        elif opts.backend == "managed-flink":
            say(f"[2/6] starting {a} and {b} on the {opts.backend}")
            backend = ManagedFlinkBackend(sb, opts.zip, recovery=opts.recovery, say=say)
            say(f"      deploying {opts.zip.name} to {a} and {b} (homeflow deploy apply)")
            backend.deploy(list(opts.regions))
        else:
            say(f"[2/6] starting {a} and {b} on the {opts.backend}")
            backend = MiniclusterBackend(sb, {a: opts.rest_port, b: opts.rest_port + 1}, out / "logs")
        if not on_deployment:
            # Both jobs start side by side: one after the other cost 25 s more here (2 cores).
            for r in opts.regions:
                backend.launch(r, restore="none")
            for r in opts.regions:
                backend.wait_started(r)
            await_canaries(sb.settings, sb.table, list(opts.regions), [], 240)
        # On a deployment the drill's keys are its own (prefixed with the run id): real keys are
        # never moved, and its traffic stops by itself after the plan's bound.
        keys = drill_keys(opts.keys, prefix=f"{run_id}-" if on_deployment else "")
        traffic = Traffic(sb.settings, list(opts.regions), keys, opts.rate, run_id, retry_share=opts.retry_share,
                          max_s=drill_plan.MAX_TRAFFIC_S[opts.scenario] if on_deployment else None).start()
        d = scenarios.Drill(opts.scenario, sb, backend, list(opts.regions), traffic, run_id, say)
        d.watch_acks(stop_acks)
        say(f"[3/6] traffic: {opts.rate:.0f} events/s per region over {len(keys)} keys; warming up")
        t_start = d.mark("traffic-start")
        d.dwell(opts.warmup_s)
        say(f"[4/6] scenario {opts.scenario}")
        if opts.scenario == "move-keys":
            figures = scenarios.move_keys(d, flips=opts.flips, **opts.extra)
        elif opts.scenario == "region-loss":
            if isinstance(backend, ManagedFlinkBackend):
                # The operator's latest snapshot before the failure: what a start after a forced
                # stop restores (recovery "snapshot"); the service's own recovery ignores it.
                t = time.time()
                backend.snapshot(a, f"before-failure-{run_id}")
                d.mark("snapshot", region=a, took_s=round(time.time() - t, 1))
                d.dwell(opts.warmup_s)
            figures = scenarios.region_loss(d, **opts.extra)
        elif opts.scenario == "reshard":
            figures = scenarios.reshard(d, **opts.extra)
        elif opts.scenario == "replay":
            figures = scenarios.replay(d, flips=opts.flips, **opts.extra)
        else:
            extra = dict(opts.extra)
            if on_deployment:  # to twice its parallelism and back, whatever it runs at
                p0 = backend.parallelism(a)
                extra.setdefault("parallelisms", (2 * p0, p0))
            figures = scenarios.upgrade(d, **extra)
        if isinstance(backend, ManagedFlinkBackend):
            figures["recoveries"] = backend.recoveries
        traffic.stop()
        d.mark("traffic-stop")
        say(f"[5/6] waiting until the lake holds all {len(traffic.accepted())} accepted events")
        wanted = {e.event_id for e in traffic.accepted()}

        def landed():
            backend.check_alive(list(opts.regions))
            return wanted <= sb.committed_ids(*opts.regions)
        try:
            wait_until(landed, 300, 3.0, what="every accepted event committed")
        except TimeoutError as e:
            say(f"      {e}: auditing what is there")
            for region in opts.regions:  # which operator stalled, if a checkpoint did
                try:
                    for line in flink_rest.checkpoint_report(backend.rest_port(region), backend.job_id(region)):
                        say(f"      {region}: {line}")
                except Exception as err:  # noqa: BLE001 - a diagnosis must not hide the audit
                    say(f"      {region}: no checkpoint report ({err})")
        time.sleep(3)  # a few more checkpoints: late duplicates would land by now
        stop_acks.set()
        say("[6/6] audit and report")
        report, forwards = build_report(opts, sb, d, figures, run_id, t_start)
        j, h = report_mod.write(report, out, forwards)
        for line in report_mod.verdict_lines(report):
            say(line)
        say(f"report: {h}\n        {j}")
        if after is not None:
            report["after"] = after(sb, backend, d)
        return report
    finally:
        stop_acks.set()
        if traffic is not None:
            traffic.stop()
        if backend is not None and not opts.keep:
            backend.close()
        if not opts.keep:
            sb.down()


def validate(opts: DrillOptions) -> None:
    """Bad options fail before anything starts, naming the option."""
    if opts.scenario not in scenarios.SCENARIOS:
        raise ValueError(f"unknown scenario {opts.scenario!r}; one of {', '.join(scenarios.SCENARIOS)}")
    if opts.backend not in BACKENDS:
        raise ValueError(f"unknown backend {opts.backend!r}; one of {', '.join(BACKENDS)}")
    if opts.recovery not in ("checkpoint", "snapshot"):
        raise ValueError(f"recovery must be checkpoint or snapshot, not {opts.recovery!r}")
    if opts.target not in ("sandbox", "deployment"):
        raise ValueError(f"target must be sandbox or deployment, not {opts.target!r}")
    if opts.target == "deployment":
        if opts.backend != "managed-flink" or opts.scenario not in MANAGED_FLINK_SCENARIOS:
            raise ValueError(f"a deployment runs {', '.join(MANAGED_FLINK_SCENARIOS)} with --backend managed-flink")
        if opts.properties is None or not Path(opts.properties).is_file():
            raise ValueError(f"a deployment is named by its properties file; got {opts.properties}")
        if opts.recovery != "snapshot":
            raise ValueError("a deployment offers no failure injection: its kill is a forced stop "
                             "(recovery snapshot)")
        return
    if opts.backend == "managed-flink":
        if opts.scenario not in MANAGED_FLINK_SCENARIOS:
            raise ValueError(f"the {opts.scenario} drill does not run on managed-flink (it runs "
                             f"{', '.join(MANAGED_FLINK_SCENARIOS)})")
        if opts.zip is None or not Path(opts.zip).is_file():
            raise ValueError(f"managed-flink needs the application zip (homeflow package); got {opts.zip}")
    elif opts.recovery != "checkpoint":
        raise ValueError("recovery snapshot is a managed-flink option (the other backends restore checkpoints)")


def build_report(opts: DrillOptions, sb: Sandbox, d: scenarios.Drill, figures: dict, run_id: str,
                 t_start: float) -> tuple[dict, dict[str, list[int]]]:
    regions = list(opts.regions)
    produced = d.traffic.accepted()
    a = audit_mod.audit(sb.settings, regions, produced, run_id)
    lanes = audit_mod.lane_check(a.rows, sb.settings.job.order_skew_ms)
    strict = audit_mod.lane_check(a.rows, 0)  # marks justified only within the clocks' skew
    duck = audit_mod.duckdb_counts(sb.settings, regions)
    py_counts = {r: lake.read_rows(sb.settings, r, ("event_id",)).num_rows for r in regions}  # pyiceberg scan
    ended = int(time.time() * 1000)
    commits: dict[str, list] = {}
    by_commit: dict[tuple[str, int], list] = {}
    for row in a.rows:
        by_commit.setdefault((row.home, row.commit_ms), []).append(row)
    for (home, c_ms), rows in sorted(by_commit.items()):
        commits.setdefault(home, []).append([c_ms, len(rows), sum(1 for r in rows if r.unordered)])
    forwards = {}
    for r in regions:
        recs = read_stream(sb.settings, r, sb.settings.streams.forward)
        forwards[r] = [int(x["arrived"].timestamp() * 1000) for x in recs
                       if x.get("arrived") and int(x["arrived"].timestamp() * 1000) >= int(t_start * 1000)]
    rep = {
        "scenario": opts.scenario, "backend": opts.backend, "handoff": opts.handoff, "run_id": run_id,
        "recovery": opts.recovery,
        "regions": regions, "keys": opts.keys, "rate": opts.rate, "ddb_lag_s": opts.ddb_lag, "s3_lag_s": opts.s3_lag,
        "started_ms": int(t_start * 1000), "ended_ms": ended, "duration_s": round(ended / 1000 - t_start, 1),
        "marked_by_key": _marked_by_key(a),
        "dead_lettered": audit_mod.dead_letters(sb.settings, regions, run_id),
        "audit": {**a.summary(), "unreported_sample": a.unreported[:20], "lost_sample": a.lost[:20],
                  "duplicated_sample": list(a.duplicated.items())[:20]},
        # The same rows by entry lane (udfs/lanes.py): marks that no later entry justifies.
        "lanes": {"inversions": lanes.inversions, "unmarked": len(lanes.unmarked), "marked": lanes.marked,
                  "unjustified": len(lanes.unjustified), "no_entry": lanes.no_entry,
                  "justified_only_within_skew": len(strict.unjustified) - len(lanes.unjustified),
                  "unjustified_sample": [(r.key, r.entry, r.unordered) for r in lanes.unjustified[:20]]},
        "independent_reader": {r: {"duckdb_rows": duck[r][0], "duckdb_distinct": duck[r][1],
                                   "pyiceberg_rows": py_counts[r]} for r in regions},
        "traffic_refused": d.traffic.refused, "traffic_retried": d.traffic.retried,
        "timeline": d.timeline, "acks": d.acks, "commits": commits, "scenario_figures": figures,
    }
    rep.update(_scenario_figures(opts.scenario, figures, a, d))
    rep["verdict"] = _verdict(opts, rep)
    rep["passed"] = all(v["ok"] for v in rep["verdict"])
    return rep, forwards


def _marked_by_key(a: audit_mod.Audit) -> dict[str, dict[str, int]]:
    """Rows the lake marks as not provably in order, per key and reason (what a reader filters)."""
    out: dict[str, dict[str, int]] = {}
    for r in a.rows:
        if r.unordered:
            out.setdefault(r.key, {}).setdefault(r.unordered, 0)
            out[r.key][r.unordered] += 1
    return dict(sorted(out.items()))


def _scenario_figures(scenario: str, f: dict, a: audit_mod.Audit, d: scenarios.Drill) -> dict:
    out: dict = {}
    rows = list(audit_mod.first_commits(a.rows).values())
    if scenario == "replay":
        # The planned moves (flips, drain, back) before the region was set DOWN: nothing reordered.
        # By routing time, not epoch: a record a DOWN region forwards may be homed under the epoch
        # before (one epoch ahead, and home under both tables).
        planned = [r for r in a.rows if r.routed_at < f["t_down_ms"]]
        au = audit_mod.audit_rows(planned, [])
        out["planned_phase"] = {"rows": len(planned), "inversions": au.late,
                                "marked": sum(1 for r in planned if r.unordered)}
        # Pauses and holds of the flips alone: draining moves every key of the region.
        rows = [r for r in rows if r.routed_at < f["changes"][0]["t_ms"]]
        out["bad_dead_letters"] = len(scenarios.bad_dead_letters(d))
    if scenario in ("move-keys", "replay"):
        moving = set(f["moving_keys"])
        bounds = [x["t_ms"] for x in f["flips"]] + [10**15]
        worst: dict[tuple[str, int], int] = {}
        for r in rows:
            if r.key in moving and r.held_ms > 0:
                i = max((j for j, t in enumerate(bounds[:-1]) if t <= r.routed_at), default=None)
                if i is not None:
                    worst[(r.key, i)] = max(worst.get((r.key, i), 0), r.held_ms)
        pauses = sorted(worst.values())
        out["pauses_ms"] = pauses
        out["non_moving_max_held_ms"] = max((r.held_ms for r in rows if r.key not in moving), default=0)
        out["moved_after_s"] = [x["moved_after_s"] for x in f["flips"]]
    elif scenario == "region-loss":
        moved = set(f["keys_moved"])
        t_fail, t_return = f["t_fail_ms"], f["t_return_ms"]
        firsts = [r.commit_ms for r in rows if r.key in moved and r.home == f["survivor"] and r.commit_ms > t_fail]
        out["rto_s"] = round((min(firsts) - t_fail) / 1000, 2) if firsts else None
        accepted_before = {e.event_id for e in d.traffic.accepted() if e.at_ms <= t_fail}
        at_risk = [r for r in rows if r.event_id in accepted_before and r.commit_ms > t_fail]
        out["rpo_events"] = sum(1 for r in at_risk if r.commit_ms > t_return)
        out["uncommitted_at_failure"] = len(at_risk)
        failback = next((e["t_ms"] for e in d.timeline if e["kind"] == "epoch"
                         and e.get("states", {}).get(f["lost_region"]) == "ACTIVE"), None)
        worst: dict[str, int] = {}
        for r in rows:
            if failback and r.key in moved and r.routed_at >= failback and r.held_ms > 0:
                worst[r.key] = max(worst.get(r.key, 0), r.held_ms)
        out["pauses_ms"] = sorted(worst.values())
        out["non_moving_max_held_ms"] = max((r.held_ms for r in rows if r.key not in moved and r.routed_at >= (failback or 0)),
                                            default=0)
    else:
        out["pauses_ms"] = []
        out["non_moving_max_held_ms"] = max((r.held_ms for r in rows), default=0)
    if scenario == "reshard":
        # Evidence that the jobs read the children: committed rows per (region, stream, op) whose
        # source shard is one of the operation's children.
        out["rows_from_children"] = [
            {**op, "rows": sum(1 for r in rows if r.home == op["region"] and r.shard in op["children"]
                               and f"/{op['stream']}/" in f"/{r.source}")}
            for op in f["reshards"]]
    p = out.get("pauses_ms") or []
    out["pause_p50_ms"] = audit_mod.percentile(p, 50)
    out["pause_p99_ms"] = audit_mod.percentile(p, 99)
    out["pause_max_ms"] = max(p) if p else None
    return out


def _verdict(opts: DrillOptions, rep: dict) -> list[dict]:
    au = rep["audit"]
    v = []

    def check(name, value, expected, ok):
        v.append({"check": name, "value": value, "expected": expected, "ok": bool(ok)})
    check("events produced", au["produced"], "> 0", au["produced"] > 0)
    check("drill events dead-lettered", len(rep["dead_lettered"]), 0, not rep["dead_lettered"])
    check("rows no producer sent", au["unexpected_rows"], 0, au["unexpected_rows"] == 0)
    for r, c in rep["independent_reader"].items():
        check(f"DuckDB agrees ({r})", f"{c['duckdb_rows']}/{c['duckdb_distinct']}", c["pyiceberg_rows"],
              c["duckdb_rows"] == c["pyiceberg_rows"] == c["duckdb_distinct"])
    if opts.dedup_seed == "none":
        # The control of a restart from an older state (a snapshot after a forced stop): without
        # the lake seed at start, what the region committed after that snapshot is read again
        # with the snapshot's dedup state and committed again.
        check("events lost or duplicated (control)", f"{au['lost']} lost, {au['duplicated']} duplicated", "> 0",
              au["lost"] + au["duplicated"] > 0)
        return v
    check("events committed", au["committed"], au["produced"], au["committed"] == au["produced"])
    check("events lost", au["lost"], 0, au["lost"] == 0)
    if opts.dedup_seed != "home":
        check("events duplicated", au["duplicated"], 0, au["duplicated"] == 0)
    if opts.handoff == "none":
        # The control: without the protocol, moves reorder keys (the check is able to fail).
        check("per-key inversions (control)", au["inversions"], "> 0", au["inversions"] > 0)
        return v
    if opts.scenario == "replay":
        f, pp = rep["scenario_figures"], rep["planned_phase"]
        check("bad records dead-lettered once", rep["bad_dead_letters"], f["bad_records"],
              rep["bad_dead_letters"] == f["bad_records"])
        check("planned moves: per-key inversions", pp["inversions"], 0, pp["inversions"] == 0)
        check("planned moves: rows marked", pp["marked"], 0, pp["marked"] == 0)
        check("planned moves: flips (each way)", len(f["flips"]) // 2, opts.flips,
              len(f["flips"]) >= 2 * opts.flips)
        check("keys that did not move: longest hold ms", rep["non_moving_max_held_ms"], "< 1000",
              rep["non_moving_max_held_ms"] < 1000)
    if opts.dedup_seed == "home":
        # The replay's control: a seed of the own table only commits moved keys' events again.
        check("events duplicated (control)", au["duplicated"], "> 0", au["duplicated"] > 0)
        return v
    check("per-key inversions unreported", au["inversions_unreported"], 0, au["inversions_unreported"] == 0)
    ln = rep["lanes"]
    check("entry-lane inversions unmarked", ln["unmarked"], 0, ln["unmarked"] == 0)
    check("rows marked with no later entry committed first", ln["unjustified"], 0, ln["unjustified"] == 0)
    if opts.scenario in ("move-keys", "upgrade"):
        check("per-key inversions", au["inversions"], 0, au["inversions"] == 0)
        check("rows marked late", au["stranded"], 0, au["stranded"] == 0)
    if opts.scenario == "reshard":
        check("per-key inversions", au["inversions"], 0, au["inversions"] == 0)
        for op in rep["rows_from_children"]:
            check(f"rows read from the children of the {op['op']} ({op['region']} {op['stream']})", op["rows"], "> 0",
                  op["rows"] > 0)
    if opts.scenario == "move-keys":
        check("flips (each way)", len(rep["scenario_figures"]["flips"]) // 2, opts.flips,
              len(rep["scenario_figures"]["flips"]) >= 2 * opts.flips)
        check("keys that did not move: longest hold ms", rep["non_moving_max_held_ms"], "< 1000",
              rep["non_moving_max_held_ms"] < 1000)
    if opts.scenario == "region-loss":
        f = rep["scenario_figures"]
        check("keys moved = keys of the lost region", len(f["keys_moved"]), len(f["keys_expected"]),
              f["keys_moved"] == f["keys_expected"])
        check("surviving regions' keys moved", len(f["survivor_keys_moved"]), 0, not f["survivor_keys_moved"])
        n = f["regions_before"]
        check("moved share", f["moved_share"], f"~1/{n}", abs(f["moved_share"] - 1 / n) < 0.25)
        check("RTO s", rep["rto_s"], "reported", rep["rto_s"] is not None)
        check("RPO events (lost had it not returned)", rep["rpo_events"], "reported", rep["rpo_events"] is not None)
    return v


def summary_json(report: dict) -> str:
    keep = {k: report[k] for k in ("scenario", "backend", "handoff", "passed", "duration_s", "audit", "pause_p50_ms",
                                   "pause_p99_ms", "pause_max_ms", "non_moving_max_held_ms") if k in report}
    for k in ("rto_s", "rpo_events", "uncommitted_at_failure", "moved_after_s"):
        if k in report:
            keep[k] = report[k]
    return json.dumps(keep, default=str)

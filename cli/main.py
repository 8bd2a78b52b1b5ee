"""homeflow: run, feed and inspect the multi-region ingestion job locally.

Every subcommand reads the same properties file as the job (default: the local sandbox's).
"""
from __future__ import annotations

import argparse
import sys

from conf.settings import ConfigError, load
from sandbox.paths import LOCAL_PROPERTIES


def _settings(args):
    try:
        return load(args.properties, {"homeflow.job/region": args.region} if getattr(args, "region", None) else None)
    except ConfigError:
        raise  # main() prints it as one line and exits 2


def cmd_sandbox(args) -> int:
    from pathlib import Path
    from sandbox import services
    s = _settings(args)
    if args.action == "up":
        made = services.up(s, Path(args.properties), replicate=not args.no_replication,
                           ddb_lag=args.ddb_lag, s3_lag=args.s3_lag, kinesis=args.kinesis)
        for region, items in made.items():
            print(f"{region}: " + (", ".join(items) if items else "all resources present"))
        print(f"sandbox up: {s.aws.endpoint} serving {', '.join(s.job.regions)}")
    elif args.action == "down":
        stopped = services.stop(s)
        print("stopped " + ", ".join(stopped) if stopped else "nothing of ours was running")
    elif args.action in ("lose", "restore"):
        if not args.region:
            raise SystemExit(f"error: sandbox {args.action} needs --region R")
        down = (services.lose if args.action == "lose" else services.restore)(s, args.region)
        print("unreachable regions: " + (", ".join(down) if down else "none"))
    else:
        services.print_status(s)
    return 0


def cmd_produce(args) -> int:
    from connectors.producer import produce
    s = _settings(args)
    r = produce(s, args.region, args.events, args.keys, args.seed)
    print(f"{args.region}: {r.sent} events in {r.seconds:.2f}s ({r.sent / max(r.seconds, 1e-9):.0f}/s), "
          f"{r.retried} retried")
    return 0


def cmd_query(args) -> int:
    from cli.query import summary
    s = _settings(args)
    regions = [args.region] if args.region else list(s.job.regions)
    if args.reader:
        from connectors import read_pointer
        print(f"{'home':12} {'rows':>8} {'snapshot':>21}   (as a reader in {args.reader} sees it)")
        for home in regions:
            rows, snap = read_pointer.read_rows(s, home, args.reader)
            via = "own table" if home == args.reader else "read pointer + replica bucket"
            print(f"{home:12} {rows.num_rows:>8} {str(snap):>21}   {via}")
        return 0
    if args.engine == "duckdb":
        from connectors.duckdb_reader import count_rows
        print(f"{'home':12} {'rows':>8} {'distinct event_ids':>19}   (DuckDB iceberg_scan on the DynamoDB pointer)")
        for r in regions:
            n, d = count_rows(s, r)
            print(f"{r:12} {n:>8} {d:>19}")
        return 0
    if args.drill:
        from cli.query import drill_rows
        print(f"{'table':34} {'home':12} {'rows':>8}   (drill {args.drill}; delete with)")
        for r in drill_rows(s, regions, args.drill):
            print(f"{r['table']:34} {r['home']:12} {r['rows']:>8}   {r['delete']}")
        return 0
    rows = summary(s, regions)
    print(f"{'table':34} {'home':12} {'rows':>8} {'keys':>6} {'snapshots':>9}")
    for r in rows:
        print(f"{r['table']:34} {r['home']:12} {r['rows']:>8} {r['keys']:>6} {r['snapshots']:>9}")
    return 0


def cmd_publish(args) -> int:
    import time
    from connectors import read_pointer
    s = _settings(args)
    homes = [h for h in s.job.regions if h != args.reader]
    while True:
        for home in homes:
            if read_pointer.publish(s, home, args.reader):
                p = read_pointer.read_pointer(s, home, args.reader)
                print(f"{args.reader}: {home} read pointer -> snapshot {p.snapshot_id}", flush=True)
        if args.once:
            return 0
        time.sleep(args.interval)


def cmd_routes(args) -> int:
    from cli import routes
    return routes.run(args, _settings(args))


def cmd_route(args) -> int:
    from cli import routes
    return routes.route_key(args, _settings(args))


def cmd_lake(args) -> int:
    from connectors import lake
    s = _settings(args)
    bad = False
    for region in ([args.region] if args.region else s.job.regions):
        if args.action == "init":
            t = lake.ensure_table(s, region)
            print(f"{region}: {t.identifier} at {t.metadata_location}")
            d = lake.ensure_dead_letter_table(s, region)
            print(f"{region}: {d.identifier} at {d.metadata_location}")
        elif args.action == "stats":
            from connectors.maintenance import stats
            t = lake.load_table(s, region)
            print(f"{region}: " + (stats(t).line() if t is not None else "no table (run `homeflow lake init`)"))
        else:
            from sandbox.paths import JAR
            from connectors.maintenance import resume_checks
            checks = resume_checks(s, region, JAR, args.job)
            if not checks:
                print(f"{region}: no Flink commits")
            for c in checks:
                recorded = (f"last committed checkpoint {c.recorded}" if c.recorded is not None
                            else "no snapshot of it left")
                print(f"{region}: Flink job {c.flink_job_id} operator {c.operator_id or '?'}: {recorded}; "
                      f"a restore would find {c.found}: " + ("ok" if c.ok else "WOULD COMMIT AGAIN"))
                bad = bad or not c.ok
    return 1 if bad else 0


def cmd_maintain(args) -> int:
    from cli.maintain import run
    return run(args, _settings(args))


def cmd_stop(args) -> int:
    from pathlib import Path
    from sandbox.flink_rest import FlinkRestError, stop_with_savepoint
    target = args.savepoint_dir if "://" in args.savepoint_dir else Path(args.savepoint_dir).resolve().as_uri()
    try:
        location = stop_with_savepoint(args.rest_port, target, args.timeout)
    except FlinkRestError as e:
        raise SystemExit(f"error: {e}")
    print(f"stopped with savepoint {location}\nrestore: python -m jobs.ingest ... --restore {location}")
    return 0


def cmd_package(args) -> int:
    from cli.package import build_zip
    path = build_zip(args.output)
    print(f"built {path}")
    return 0


def cmd_deploy(args) -> int:
    from pathlib import Path
    from connectors import aws, managed_flink
    s = _settings(args)
    region = args.region or s.job.region
    name = args.application
    kda = aws.client("kinesisanalyticsv2", region, s.aws)
    if args.action in ("plan", "apply"):
        zip_path = Path(args.zip) if args.zip else None
        if zip_path is None:
            from cli.package import build_zip
            print("packaging the application zip (homeflow package) ...", flush=True)
            zip_path = build_zip("dist/homeflow-managed-flink.zip")
        elif not zip_path.exists():
            raise SystemExit(f"error: --zip {zip_path}: no such file")
        extra = {}
        for kv in args.parameter or []:
            k, sep, v = kv.partition("=")
            if not sep or not k:
                raise SystemExit(f"error: --parameter {kv}: expected KEY=VALUE")
            extra[k] = v
        if args.action == "plan":
            for line in managed_flink.plan(s, region, zip_path, extra).lines(region):
                print(line)
        else:
            managed_flink.apply(s, region, zip_path, out=lambda m: print(m, flush=True), timeout=args.timeout,
                                extra=extra, allow_non_restored=args.allow_non_restored_state)
    elif args.action == "app":
        if args.verb == "start":
            managed_flink.start(kda, name, args.restore, out=lambda m: print(m, flush=True), timeout=args.timeout,
                                allow_non_restored=args.allow_non_restored_state)
        elif args.verb == "stop":
            managed_flink.stop(kda, name, args.force, out=lambda m: print(m, flush=True), timeout=args.timeout)
        else:
            for line in managed_flink.status_lines(kda, name):
                print(line)
    elif args.action == "snapshots":
        if args.verb == "create":
            import time
            snap = managed_flink.create_snapshot(kda, name, args.name or f"manual-{int(time.time())}")
            print(f"snapshot {snap['SnapshotName']}: {snap['SnapshotStatus']} (version {snap['ApplicationVersionId']})")
        elif args.verb == "delete":
            if not args.name:
                raise SystemExit("error: snapshots delete needs the snapshot's name")
            managed_flink.delete_snapshot(kda, name, args.name)
            print(f"snapshot {args.name}: deleted")
        else:
            for line in managed_flink.snapshot_lines(managed_flink.snapshots(kda, name)):
                print(line)
    else:  # rollback
        managed_flink.rollback(kda, name, out=lambda m: print(m, flush=True), timeout=args.timeout)
    return 0


def cmd_cluster(args) -> int:
    from pathlib import Path
    from sandbox import flink_cluster
    spec = flink_cluster.ClusterSpec(rest_port=args.rest_port, taskmanagers=args.taskmanagers, slots=args.slots)
    d = Path(args.dir)
    if args.action == "up":
        s = _settings(args)
        print(f"starting a Flink cluster on 127.0.0.1:{spec.rest_port} ({spec.taskmanagers} TaskManager(s), "
              f"{spec.slots} slots each); logs in {d / 'log'}", flush=True)
        ov = flink_cluster.up(spec, d, flink_cluster.aws_env(s))
        print(f"cluster up: Flink {ov.get('flink-version')}, {ov.get('taskmanagers')} TaskManager(s), "
              f"{ov.get('slots-total')} slots; web UI http://127.0.0.1:{spec.rest_port}")
        print("submit a region's job: homeflow cluster submit --region REGION")
    elif args.action == "down":
        stopped = flink_cluster.down(spec, d)
        print("stopped " + ", ".join(stopped) if stopped else "no cluster of ours was running")
    elif args.action == "submit":
        if not args.region:
            raise SystemExit("error: cluster submit needs --region R")
        if not flink_cluster.running(spec):
            raise SystemExit(f"error: no Flink cluster answers on 127.0.0.1:{spec.rest_port}; run `homeflow cluster up`")
        from jobs import checkpoints
        s = _settings(args)
        path = checkpoints.resolve_restore(args.restore, checkpoints.region_dir(s.job.checkpoint_dir, args.region))
        print(f"submitting {args.region}" + (f", restoring {path}" if path else ", without state"), flush=True)
        job = flink_cluster.submit(spec, args.region, Path(args.properties).resolve(), path, args.parallelism,
                                   d=d, env=flink_cluster.aws_env(s),
                                   allow_non_restored=bool(path and args.allow_non_restored_state))
        print(f"{args.region}: Flink job {job}")
    else:
        if not flink_cluster.running(spec):
            print(f"no Flink cluster answers on 127.0.0.1:{spec.rest_port}")
            return 1
        for j in flink_cluster.jobs(spec):
            print(f"{j['id']}  {j['state']:10} {j['name']}")
    return 0


def cmd_drill(args) -> int:
    from pathlib import Path
    from drills.run import DrillOptions, run
    from drills.run import MANAGED_FLINK_SCENARIOS, validate
    a, b = [r.strip() for r in args.regions.split(",")]
    if args.target == "deployment":
        return _drill_plan(args, (a, b))
    out = Path(args.out or f".sandbox/drills/{args.scenario}")
    opts = DrillOptions(scenario=args.scenario, out=out, backend=args.backend,
                        handoff="none" if args.no_handoff else "ordered", regions=(a, b), port=args.port,
                        rest_port=args.rest_port, keys=args.keys, rate=args.rate, flips=args.flips,
                        ddb_lag=args.ddb_lag, s3_lag=args.s3_lag, keep=args.keep, dedup_seed=args.dedup_seed,
                        retry_share=args.retries, recovery=args.recovery,
                        zip=Path(args.zip) if args.zip else None)
    if args.backend == "managed-flink" and opts.zip is None and args.scenario in MANAGED_FLINK_SCENARIOS:
        from cli.package import build_zip
        print(f"building the application zip ({out / 'app.zip'})", flush=True)
        opts.zip = build_zip(out.resolve() / "app.zip")
    try:
        validate(opts)
    except ValueError as e:
        print(f"homeflow drill: {e}", file=sys.stderr)
        return 2
    report = run(opts, say=lambda m: print(m, flush=True))
    return 0 if report["passed"] else 1


def _drill_plan(args, regions: tuple[str, str]) -> int:
    """A drill on a deployment the drill did not create (the --properties file's): the plan, read
    with read-only calls; nothing changes without --yes."""
    from drills import plan as drill_plan
    if args.backend != "managed-flink" or args.scenario not in drill_plan.CALLS:
        print(f"homeflow drill: --target deployment runs {', '.join(drill_plan.CALLS)} with --backend managed-flink",
              file=sys.stderr)
        return 2
    settings = _settings(args)
    p = drill_plan.Plan(args.scenario, regions, args.application, args.keys, args.rate, args.flips)
    statuses, streams = drill_plan.gather(settings, p)
    lines = p.lines(settings, statuses, streams)
    if not args.yes:
        print("\n".join(lines))
        return 0
    print("\n".join(lines[:-1]) + "\n  going ahead (--yes)", flush=True)
    from pathlib import Path
    from drills.run import DrillOptions, run
    opts = DrillOptions(scenario=args.scenario, out=Path(args.out or f".sandbox/drills/{args.scenario}-deployment"),
                        backend="managed-flink", recovery="snapshot", target="deployment",
                        properties=Path(args.properties), application=args.application, regions=regions,
                        keys=args.keys, rate=args.rate, flips=args.flips)
    report = run(opts, say=lambda m: print(m, flush=True))
    return 0 if report["passed"] else 1


def cmd_docs(args) -> int:
    import os
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    mkdocs = [sys.executable, "-m", "mkdocs"]
    os.environ["NO_MKDOCS_2_WARNING"] = "true"  # the theme's banner about MkDocs 2.0, not about this site
    if args.serve:
        print(f"docs on http://127.0.0.1:{args.port}/ (Ctrl-C stops)", flush=True)
        return subprocess.call([*mkdocs, "serve", "--dev-addr", f"127.0.0.1:{args.port}"], cwd=root)
    r = subprocess.run([*mkdocs, "build", "--strict", "--site-dir", str(root / "site")], cwd=root,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"mkdocs build failed:\n{r.stderr[-2000:]}")
    print(f"built {root / 'site' / 'index.html'} (open it in a browser; nothing is fetched from the network)")
    return 0


def cmd_demo(args) -> int:
    from cli.demo import run
    return run(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="homeflow", description=__doc__)
    p.add_argument("--properties", default=str(LOCAL_PROPERTIES), help="properties file (default: %(default)s)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("sandbox", help="start/stop/inspect the local AWS sandbox; lose/restore a region")
    sp.add_argument("action", choices=["up", "down", "status", "lose", "restore"],
                    help="up: start the emulator and replication stand-ins and deploy infra/'s stacks through the "
                         "emulator's CloudFormation; lose: make --region unreachable (every request signed for it "
                         "gets 503); restore: undo")
    sp.add_argument("--region", help="lose/restore: the region")
    sp.add_argument("--ddb-lag", type=float, default=1.0,
                    help="up: seconds a DynamoDB global-table write takes to reach other regions (default: %(default)s)")
    sp.add_argument("--s3-lag", type=float, default=2.0,
                    help="up: seconds S3 cross-region replication takes (default: %(default)s)")
    sp.add_argument("--no-replication", action="store_true", help="up: do not start the replication stand-ins")
    sp.add_argument("--kinesis", choices=["moto", "kinesis-mock"],
                    help="up: which emulator serves Kinesis behind the endpoint; kinesis-mock (port + 50) reshards "
                         "faithfully (SplitShard, MergeShards, UpdateShardCount) but is slow, moto does not reshard "
                         "(default: moto for a new sandbox; a running one keeps its own)")
    sp.set_defaults(func=cmd_sandbox)

    sp = sub.add_parser("produce", help="write envelope records to a region's ingest stream")
    sp.add_argument("--region", required=True, help="the region whose ingest stream to write")
    sp.add_argument("--events", type=int, default=1000, help="how many events (default: %(default)s)")
    sp.add_argument("--keys", type=int, default=100, help="distinct business keys (default: %(default)s)")
    sp.add_argument("--seed", type=int, default=1,
                    help="random seed: the same seed writes the same event_ids (default: %(default)s)")
    sp.set_defaults(func=cmd_produce)

    sp = sub.add_parser("query", help="count lake rows per home-region table (pyiceberg)")
    sp.add_argument("--region", help="only this home region's table")
    sp.add_argument("--engine", choices=["pyiceberg", "duckdb"], default="pyiceberg",
                    help="reader: pyiceberg through the DynamoDB catalog, or DuckDB's own Iceberg scan")
    sp.add_argument("--reader", metavar="REGION",
                    help="read as a reader in REGION: other homes' tables through REGION's read pointers")
    sp.add_argument("--drill", metavar="RUN_ID",
                    help="only a drill's rows (event_ids starting with its run id, e.g. region-loss-1a2b3c4d), "
                         "with the statement that deletes them")
    sp.set_defaults(func=cmd_query)

    sp = sub.add_parser("publish", help="advance a reader region's read pointers as replication completes")
    sp.add_argument("--reader", required=True, metavar="REGION", help="the reader region whose pointers to advance")
    sp.add_argument("--interval", type=float, default=1.0, help="seconds between rounds (default: %(default)s)")
    sp.add_argument("--once", action="store_true", help="one round, then exit")
    sp.set_defaults(func=cmd_publish)

    sp = sub.add_parser("routes", help="show or change the routing table (written in one region); follow a "
                                       "change until it has moved")
    sp.add_argument("action", choices=["show", "status", "set", "remap", "move", "drain"],
                    help="status: which epoch each region's job routes under and whether the last change has "
                         "moved; remap: change region states / key pins; move: pin --keys to --to; drain: move "
                         "every key off --region (planned)")
    sp.add_argument("--region", help="show: this region's replica only; drain: the region to drain")
    sp.add_argument("--file", help="set: JSON document to store (its epoch must rise)")
    sp.add_argument("--state", action="append", default=[], metavar="REGION=STATE",
                    help="remap: set a region ACTIVE, DRAINING or DOWN (repeatable)")
    sp.add_argument("--override", action="append", default=[], metavar="KEY=REGION",
                    help="remap: pin a key to a region; KEY= removes the pin (repeatable)")
    sp.add_argument("--keys", help="move: comma-separated business keys")
    sp.add_argument("--to", help="move: their new home region")
    sp.add_argument("--write-region", help="the region to write the change in (default: homeflow.job/region, "
                                           "the control region; name a surviving one when it is lost)")
    sp.add_argument("--no-wait", action="store_true", help="do not wait until the change has moved")
    sp.add_argument("--force", action="store_true", help="change even while the previous change is still moving")
    sp.add_argument("--timeout", type=float, default=120, help="seconds to wait for the change to move")
    sp.add_argument("--settle-ms", type=int, default=3000,
                    help="moved = every job acknowledged, holds nothing, and saw no record routed under an older "
                         "epoch for this long (default: %(default)s)")
    sp.set_defaults(func=cmd_routes)

    sp = sub.add_parser("route", help="print the home region and epoch of a business key")
    sp.add_argument("key", help="the business key")
    sp.add_argument("--region", help="read the routing table from this region (default: the configured one)")
    sp.set_defaults(func=cmd_route)

    sp = sub.add_parser("lake", help="init: create the Iceberg tables (home and dead-letter archive) if missing; "
                                     "stats: files, snapshots, "
                                     "small-file ratio; resume: what a restored Flink job would find committed")
    sp.add_argument("action", choices=["init", "stats", "resume"], help="what to do (above)")
    sp.add_argument("--region", help="only this home region's table (default: every one)")
    sp.add_argument("--job", action="append", default=[], metavar="FLINK_JOB_ID",
                    help="resume: also check this job (the directory name above a checkpoint's chk-N)")
    sp.set_defaults(func=cmd_lake)

    sp = sub.add_parser("maintain", help="compact small files, expire snapshots (keeping what a restored Flink "
                                         "job needs), remove orphan files")
    sp.add_argument("--region", help="only this home region's table (default: every region's)")
    sp.add_argument("--no-compact", dest="compact", action="store_false", help="skip compaction")
    sp.add_argument("--target-file-mb", type=int, default=128, help="compaction target file size (default: %(default)s)")
    sp.add_argument("--expire-older-than", default="1d", metavar="DURATION",
                    help="expire snapshots older than this, e.g. 90s, 10m, 1h, 3d (default: %(default)s)")
    sp.add_argument("--retain-last", type=int, default=10, help="always keep this many newest snapshots (default: %(default)s)")
    sp.add_argument("--orphan-age", default="3d", metavar="DURATION",
                    help="remove unreferenced files older than this; must exceed the longest a job may be down "
                         "and later restored from a checkpoint (default: %(default)s)")
    sp.add_argument("--allow-short-orphan-age", action="store_true",
                    help="accept --orphan-age under 1h (tests; never while a job may restore an old checkpoint)")
    sp.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    sp.set_defaults(func=cmd_maintain)

    sp = sub.add_parser("stop", help="stop a local job with a savepoint (failover drills); prints its path")
    sp.add_argument("--rest-port", type=int, required=True, help="the job's --rest-port")
    sp.add_argument("--savepoint-dir", required=True, help="directory or URI for the savepoint")
    sp.add_argument("--timeout", type=float, default=180,
                    help="seconds to wait for the savepoint (default: %(default)s)")
    sp.set_defaults(func=cmd_stop)

    sp = sub.add_parser("package", help="build the Managed Flink application zip")
    sp.add_argument("--output", default="dist/homeflow-managed-flink.zip", help="the zip to write (default: %(default)s)")
    sp.set_defaults(func=cmd_package)

    sp = sub.add_parser("deploy", help="deploy a region to Managed Flink (on the sandbox: its stand-in), "
                                       "start/stop it, snapshots, rollback",
                        description="plan | apply | app start|stop|status | snapshots list|create|delete | rollback. "
                                    "apply: package, upload the zip under its content hash, create or update the "
                                    "region's stack (infra/region.yaml) and the application, and wait.")
    dsub = sp.add_subparsers(dest="action", required=True)

    def common(q, wait=True):
        q.add_argument("--region", help="the region to deploy (default: the properties file's homeflow.job/region)")
        q.add_argument("--application", default="homeflow", help="application name (default: %(default)s)")
        if wait:
            q.add_argument("--timeout", type=float, default=600, help="seconds to wait for a transition")
        q.set_defaults(func=cmd_deploy)
    for verb, text in (("plan", "what apply would change: code object, stack parameters, application"),
                       ("apply", "package, upload, create/update the stack and the application, wait")):
        q = dsub.add_parser(verb, help=text)
        q.add_argument("--zip", help="deploy this zip instead of building one (homeflow package)")
        q.add_argument("--parameter", action="append", metavar="KEY=VALUE",
                       help="a stack parameter beyond those derived from the properties, e.g. ReplicationEnabled=true "
                            "(repeatable)")
        if verb == "apply":
            q.add_argument("--allow-non-restored-state", action="store_true",
                           help="a running application restarts from its snapshot even if that holds state of "
                                "operators the new code does not have (AllowNonRestoredState)")
        common(q)
    q = dsub.add_parser("app", help="start | stop | status of the application")
    q.add_argument("verb", choices=["start", "stop", "status"], help="what to do with the application")
    q.add_argument("--restore", default="latest", metavar="latest|none|SNAPSHOT",
                   help="start: from the latest snapshot (default; none yet: without state), without state, "
                        "or from the named snapshot")
    q.add_argument("--force", action="store_true", help="stop: without a snapshot (the next start restores an "
                                                        "older one)")
    q.add_argument("--allow-non-restored-state", action="store_true",
                   help="start: restore even if the snapshot holds state of operators the code does not have "
                        "(AllowNonRestoredState)")
    common(q)
    q = dsub.add_parser("snapshots", help="list | create [--name N] | delete --name N")
    q.add_argument("verb", choices=["list", "create", "delete"], help="what to do with snapshots")
    q.add_argument("--name", help="the snapshot's name (create: default manual-<epoch s>)")
    common(q, wait=False)
    q = dsub.add_parser("rollback", help="back to the previous version that ran, from the latest snapshot")
    common(q)

    sp = sub.add_parser("cluster", help="a local standalone Flink cluster (JobManager + TaskManagers on loopback) "
                                        "from the PyFlink package; submit regional jobs to it as `flink run` does")
    sp.add_argument("action", choices=["up", "down", "status", "submit"],
                    help="up/down/status of the cluster; submit: a regional job to it")
    sp.add_argument("--rest-port", type=int, default=8081, help="the JobManager's REST port (default: %(default)s)")
    sp.add_argument("--taskmanagers", type=int, default=1, help="up: TaskManagers to start (default: %(default)s)")
    sp.add_argument("--slots", type=int, default=4, help="up: slots per TaskManager (default: %(default)s)")
    sp.add_argument("--dir", default=".sandbox/cluster", help="configuration, logs and pid files (default: %(default)s)")
    sp.add_argument("--region", help="submit: the region whose job to submit")
    sp.add_argument("--restore", default="latest", metavar="latest|none|PATH",
                    help="submit: restore the region's latest retained checkpoint or savepoint (default), "
                         "start without state, or restore PATH")
    sp.add_argument("--parallelism", type=int, help="submit: job parallelism (default: the properties file's)")
    sp.add_argument("--allow-non-restored-state", action="store_true",
                    help="submit: restore even if the snapshot holds state of operators the job no longer has "
                         "(flink run --allowNonRestoredState)")
    sp.set_defaults(func=cmd_cluster)

    sp = sub.add_parser("drill", help="failover drill on its own sandbox under sequenced traffic; writes "
                                      "report.json and report.html and prints a verdict (exit 1 if it fails)")
    sp.add_argument("scenario", choices=["move-keys", "region-loss", "upgrade", "reshard", "replay"],
                    help="move-keys: planned moves back and forth; region-loss: kill + unreachable, remap, "
                         "return, failback; upgrade: stop with savepoint, restart with parallelism 1->2->1; "
                         "reshard: split, then merge, a shard of every ingest and forward stream (on kinesis-mock); "
                         "replay: drain, ACTIVE, DOWN, ACTIVE, then a start without state of the first region")
    sp.add_argument("--backend", choices=["minicluster", "cluster", "managed-flink"], default="minicluster",
                    help="minicluster: one job process per region; cluster: a local standalone Flink cluster; "
                         "managed-flink: Managed Flink applications driven through the kinesisanalyticsv2 API "
                         "(the sandbox's stand-in; move-keys, region-loss, upgrade)")
    sp.add_argument("--zip", help="managed-flink: the application zip (default: built with homeflow package)")
    sp.add_argument("--recovery", choices=["checkpoint", "snapshot"], default="checkpoint",
                    help="managed-flink: a killed application comes back by the service's automatic recovery "
                         "from its latest checkpoint (an injected instance failure), or by a forced stop and a "
                         "start from its latest snapshot (all a real account allows)")
    sp.add_argument("--target", choices=["sandbox", "deployment"], default="sandbox",
                    help="sandbox: the drill's own fresh sandbox; deployment: the running applications and streams "
                         "the --properties file names (managed-flink; a kill is a forced stop, the return a start "
                         "from the latest snapshot): prints the drill's plan and changes nothing without --yes")
    sp.add_argument("--application", default="homeflow",
                    help="--target deployment: the application name in each region (default: %(default)s)")
    sp.add_argument("--yes", action="store_true", help="--target deployment: go ahead after the plan")
    sp.add_argument("--no-handoff", action="store_true",
                    help="the control: run the jobs without the ordered hand-off (its verdict expects per-key inversions: shows the check can fail)")
    sp.add_argument("--dedup-seed", choices=["lake", "home", "none"], default="lake",
                    help="controls (their verdicts expect duplicates: they show the check can fail): 'home' "
                         "seeds a start from the region's own table only (replay); 'none' seeds nothing, so a "
                         "start from an older snapshot (region-loss --recovery snapshot) commits again what was "
                         "committed since")
    sp.add_argument("--regions", default="us-east-1,eu-west-1", help="the two regions (first: the one lost/moved)")
    sp.add_argument("--out", help="report directory (default: .sandbox/drills/SCENARIO)")
    sp.add_argument("--port", type=int, default=4577, help="the drill's emulator port (default: %(default)s)")
    sp.add_argument("--rest-port", type=int, default=18120,
                    help="Flink REST port (this and the next: one per region) (default: %(default)s)")
    sp.add_argument("--keys", type=int, default=40, help="business keys in the drill's traffic (default: %(default)s)")
    sp.add_argument("--rate", type=float, default=100.0, help="events/s per producing region (default: %(default)s)")
    sp.add_argument("--flips", type=int, default=5, help="move-keys: moves each way (default: %(default)s)")
    sp.add_argument("--retries", type=float, default=0.0,
                    help="share of events a producer sends again, unchanged, into the other region (default: "
                         "%(default)s; replay's CI test uses 0.05)")
    sp.add_argument("--ddb-lag", type=float, default=1.0, help="DynamoDB replication lag, s (default: %(default)s)")
    sp.add_argument("--s3-lag", type=float, default=2.0, help="S3 replication lag, s (default: %(default)s)")
    sp.add_argument("--keep", action="store_true", help="leave the drill's sandbox and jobs running afterwards")
    sp.set_defaults(func=cmd_drill)

    from cli import dead_letters
    dead_letters.add_parser(sub)

    sp = sub.add_parser("docs", help="build the documentation site into site/ (open site/index.html), or serve "
                                     "it on loopback with --serve")
    sp.add_argument("--serve", action="store_true", help="serve on 127.0.0.1 and rebuild on every change")
    sp.add_argument("--port", type=int, default=8000, help="--serve: the port (default: %(default)s)")
    sp.set_defaults(func=cmd_docs)

    sp = sub.add_parser("demo", help="sandbox up, two regional jobs, produce, wait for commits, summary, down")
    sp.add_argument("--regions", default="us-east-1,eu-west-1", help="the regions to run (default: %(default)s)")
    sp.add_argument("--events", type=int, default=2000, help="events per region (default: %(default)s)")
    sp.add_argument("--keys", type=int, default=200, help="distinct business keys (default: %(default)s)")
    sp.add_argument("--timeout", type=float, default=300,
                    help="seconds to wait for every event to be committed (default: %(default)s)")
    sp.add_argument("--keep", action="store_true", help="leave the sandbox running afterwards")
    sp.set_defaults(func=cmd_demo)
    return p


EXIT_USAGE_CODE = 2


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as e:  # the commands' own checks: a message, exit 2 like argparse's
        if not isinstance(e.code, str):
            raise
        print(f"homeflow {args.command}: {e.code.removeprefix('error: ')}", file=sys.stderr)
        return EXIT_USAGE_CODE
    except Exception as e:  # noqa: BLE001 - a user-facing boundary: one line, or the traceback with --debug
        from cli.errors import describe
        line = None if args.debug else describe(e, _endpoint(args))
        if line is None:
            raise
        print(f"homeflow {args.command}: {line}", file=sys.stderr)
        return EXIT_USAGE_CODE


def _endpoint(args) -> str | None:
    try:
        return load(args.properties).aws.endpoint
    except Exception:  # noqa: BLE001 - only a hint for the message
        return None


if __name__ == "__main__":
    sys.exit(main())

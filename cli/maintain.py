"""`homeflow maintain`: compaction, snapshot expiry and orphan removal, per home-region table."""
from __future__ import annotations

import time

from sandbox.paths import JAR
from conf.settings import Settings
from connectors import lake, maintenance
from udfs.retention import parse_duration

MIN_ORPHAN_AGE_S = 3600


def run(args, settings: Settings) -> int:
    try:
        older_than = parse_duration(args.expire_older_than)
        orphan_age = parse_duration(args.orphan_age)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    if args.retain_last < 1:
        raise SystemExit("error: --retain-last must be at least 1")
    if args.target_file_mb < 1:
        raise SystemExit("error: --target-file-mb must be at least 1")
    if orphan_age < MIN_ORPHAN_AGE_S and not args.allow_short_orphan_age:
        raise SystemExit(f"error: --orphan-age {args.orphan_age} is under 1h: a running job's uncommitted files "
                         "and a stopped job's checkpointed files would look orphaned; pass "
                         "--allow-short-orphan-age if no job can need them")
    regions = [args.region] if args.region else list(settings.job.regions)
    unknown = [r for r in regions if r not in settings.job.regions]
    if unknown:
        raise SystemExit(f"error: --region {unknown[0]} is not one of homeflow.job/regions {list(settings.job.regions)}")
    dry = " (dry run)" if args.dry_run else ""
    for home in regions:
        table = lake.load_table(settings, home)
        if table is None:
            print(f"{home}: no table (run `homeflow lake init`), skipped")
            continue
        print(f"{home}: before: {maintenance.stats(table).line()}", flush=True)
        if args.compact and args.dry_run:
            print(f"{home}: compaction (dry run): not planned; it runs only for real (Iceberg's rewrite action)")
        if args.compact and not args.dry_run:
            t0 = time.monotonic()
            c = maintenance.compact(settings, home, args.target_file_mb * 1024 * 1024, JAR)
            print(f"{home}: compaction: {c.rewritten_files} files rewritten into {c.added_files} "
                  f"({time.monotonic() - t0:.1f}s)", flush=True)
        e = maintenance.expire(settings, home, older_than, args.retain_last, dry_run=args.dry_run)
        for job, sid in e.plan.flink_resume_snapshot.items():
            print(f"{home}: keeping the chain down to snapshot {sid}, the last commit of Flink job {job}")
        print(f"{home}: expiry{dry}: {e.plan.summary()} snapshots"
              + (f", deleted {len(e.deleted_files)} files (attempt {e.attempts})" if e.committed else ""), flush=True)
        orphans = maintenance.remove_orphans(settings, home, orphan_age, dry_run=args.dry_run)
        print(f"{home}: orphans{dry}: {len(orphans)} files older than {args.orphan_age} "
              + ("found" if args.dry_run else "removed"), flush=True)
        after = lake.load_table(settings, home)
        print(f"{home}: after: {maintenance.stats(after).line()}", flush=True)
    return 0

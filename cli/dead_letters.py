"""`homeflow dead-letters summary | show | export | redrive`: the dead-letter archive, read and
sent back. The logic is below the CLI (connectors/dead_letter_archive.py, udfs/redrive.py)."""
from __future__ import annotations

import re
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ACTIONS = ("summary", "show", "export", "redrive")
_AGO = re.compile(r"^(\d+)([mhd])$")


def when_ms(value: str | None, name: str) -> int | None:
    """`2h`, `30m`, `7d` (ago) or an ISO 8601 time (UTC unless it says otherwise)."""
    if value is None:
        return None
    m = _AGO.match(value.strip())
    if m:
        return int(time.time() * 1000) - int(m.group(1)) * {"m": 60_000, "h": 3_600_000, "d": 86_400_000}[m.group(2)]
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        raise SystemExit(f"{name}: {value!r} is neither like 2h / 30m / 7d nor an ISO time like 2026-12-04T10:00") \
            from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return int(t.timestamp() * 1000)


def add_parser(sub) -> None:
    sp = sub.add_parser("dead-letters", help="the dead-letter archive: counts, records, export to a file a person "
                                             "can fix, and redrive into the ingest stream")
    sp.add_argument("action", choices=ACTIONS,
                    help="summary: counts by hour and reason; show: the records; export: write them to --out as "
                         "JSON Lines; redrive: send them (or --file) again into their region's ingest stream")
    sp.add_argument("--region", help="only this region's archive (default: every region's)")
    sp.add_argument("--reason", help="only this reason (e.g. malformed-json)")
    sp.add_argument("--key", help="only this business key")
    sp.add_argument("--since", help="from this time: 2h, 30m, 7d (ago) or an ISO time (UTC)")
    sp.add_argument("--until", help="before this time (same forms as --since)")
    sp.add_argument("--limit", type=int, default=50, help="show: at most this many records (default: %(default)s)")
    sp.add_argument("--out", help="export: the JSON Lines file to write")
    sp.add_argument("--file", help="redrive: send the records of this file (as export writes it, fixed by a person) "
                                   "instead of a selection from the archive")
    sp.add_argument("--dry-run", action="store_true", help="redrive: say what would be sent, send nothing")
    sp.set_defaults(func=run)


def _selected(args, settings) -> list[dict]:
    from connectors import dead_letter_archive as archive
    sel = archive.Selection(args.reason, args.key, when_ms(args.since, "--since"), when_ms(args.until, "--until"))
    rows = []
    for region in ([args.region] if args.region else settings.job.regions):
        rows += archive.read(settings, region, sel)
    return sorted(rows, key=lambda r: r["at"])


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def run(args) -> int:
    from conf.settings import load
    from connectors import dead_letter_archive as archive
    settings = load(args.properties)
    if args.region and args.region not in settings.job.regions:
        raise SystemExit(f"--region: {args.region} is not in homeflow.job/regions")
    if args.action == "export" and not args.out:
        raise SystemExit("export: --out FILE is required")
    if args.file and args.action != "redrive":
        raise SystemExit("--file: only for redrive")
    if args.action == "redrive":
        return _redrive(args, settings)
    rows = _selected(args, settings)
    if args.action == "summary":
        print(f"{'hour (UTC)':18} {'reason':24} {'count':>7}")
        for hour, reason, n in archive.summary(rows):
            print(f"{hour:18} {reason:24} {n:>7}")
        print(f"{len(rows)} dead letters")
    elif args.action == "show":
        for r in rows[:args.limit]:
            raw = r["raw"] if len(r["raw"]) <= 120 else r["raw"][:117] + "..."
            print(f"{_time(r['at'])}  {r['region']}  {r['reason']}  key={r['key']}  event_id={r['event_id']}  "
                  f"source={r['source']}\n    {r['detail']}\n    raw ({r['raw_encoding']}): {raw}")
        print(f"{min(len(rows), args.limit)} of {len(rows)} dead letters shown")
    else:
        n = archive.export(rows, Path(args.out))
        print(f"wrote {n} dead letters to {args.out}: fix `raw` where needed, then "
              f"`homeflow dead-letters redrive --file {args.out}`")
    return 0


def _redrive(args, settings) -> int:
    from connectors.producer import put
    from connectors import dead_letter_archive as archive
    from udfs.redrive import decide
    try:
        records = archive.load_file(Path(args.file)) if args.file else _selected(args, settings)
    except (OSError, ValueError) as e:
        raise SystemExit(str(e)) from None
    from udfs.envelope import Rejection, parse
    from udfs.redrive import original
    ids = set()
    for r in records:
        env = parse(original(r), frozenset(settings.job.regions), settings.job.max_record_bytes)
        if not isinstance(env, Rejection):
            ids.add(env.event_id)
    done = archive.committed(settings, ids) if ids else set()
    decisions = decide(records, settings.job.regions, settings.job.max_record_bytes, done)
    counts = Counter(d.action for d in decisions)
    for d in decisions:
        if d.action != "send":
            print(f"{d.action:7} {d.region}  event_id={d.event_id}  key={d.key}: {d.why}")
    by_region: dict[str, list] = {}
    for d in decisions:
        if d.action == "send":
            by_region.setdefault(d.region, []).append((d.key, d.data))
    verb = "would send" if args.dry_run else "sent"
    if not args.dry_run:
        for region, recs in by_region.items():
            put(settings, region, recs)
    print(f"{verb} {counts['send']}, skipped {counts['skip']} (already committed or repeated), refused {counts['refuse']} "
          f"(still bad), of {len(decisions)}"
          + "".join(f"; {region}: {len(recs)}" for region, recs in sorted(by_region.items())))
    return 0

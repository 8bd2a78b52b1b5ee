"""`homeflow routes show|set|remap|move|drain|status` and `homeflow route KEY`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from conf.settings import Settings
from connectors import routing_control as rc
from connectors.routing_store import StaleEpochError
from udfs.routing_table import RoutingTable, RoutingTableError


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for it in items:
        if "=" not in it:
            raise SystemExit(f"error: --{what} expects A=B, got {it!r}")
        a, b = it.split("=", 1)
        out[a.strip()] = b.strip()
    return out


def _progress(st: rc.MoveProgress) -> None:
    line = "  ".join(f"{r}: {v or 'moved'}" for r, v in sorted(st.regions.items()))
    print(f"\r  epoch {st.epoch}  {line}".ljust(100), end="", flush=True, file=sys.stderr)


def _guard(args, settings: Settings, base: RoutingTable) -> None:
    """Refuse a change while the previous one is still moving (it would overlap hand-offs)."""
    if args.force:
        return
    lacking = {r: v for r, v in rc.moved(settings, base.epoch, rc.running_regions(base), args.settle_ms).items() if v}
    if lacking:
        raise SystemExit("error: epoch {} is still moving ({}); wait, or --force".format(
            base.epoch, "; ".join(f"{r}: {v}" for r, v in lacking.items())))


def _apply(args, settings: Settings, states: dict[str, str], overrides: dict[str, str | None]) -> int:
    base = rc.latest(settings)
    if base is None:
        raise SystemExit("error: no routing table stored yet; run `homeflow sandbox up` or `homeflow routes set`")
    _guard(args, settings, base)
    try:
        table = rc.changed(settings, states, overrides, base)
        region = rc.write(settings, table, args.write_region)
    except (RoutingTableError, StaleEpochError) as e:
        raise SystemExit(f"error: routing table rejected: {e}")
    moving = [r for r in settings.job.regions if table.regions.get(r) != base.regions.get(r)]
    print(f"routing table epoch {table.epoch} written in {region} (replicated to the other regions)"
          + (f"; regions changed: {', '.join(moving)}" if moving else ""))
    if args.no_wait:
        return 0
    try:
        st = rc.wait_moved(settings, table.epoch, rc.running_regions(table), args.timeout, args.settle_ms, _progress)
    except rc.NotMoved as e:
        print(file=sys.stderr)
        raise SystemExit(f"error: {e}")
    print(file=sys.stderr)
    print(f"epoch {table.epoch} moved in {st.moved_after_s:.1f}s")
    return 0


def run(args, settings: Settings) -> int:
    if args.action == "show":
        for region in ([args.region] if args.region else settings.job.regions):
            t = rc.read(settings, region)
            print(f"{region}: " + ("(none)" if t is None else json.dumps(t.to_doc(), indent=2)))
        return 0
    if args.action == "status":
        table = rc.latest(settings)
        print(f"newest routing table: epoch {table.epoch if table else '-'}")
        for r in settings.job.regions:
            try:
                acks = rc.current_acks(settings, r)
            except Exception as e:  # noqa: BLE001
                print(f"{r:12} unreachable ({type(e).__name__})")
                continue
            if not acks:
                print(f"{r:12} no job has acknowledged")
            for a in sorted(acks, key=lambda a: a.subtask):
                print(f"{r:12} subtask {a.subtask}/{a.parallelism}: epoch {a.epoch}, {a.busy_keys} keys in hand-off, "
                      f"last stale record {'never' if not a.stale_at_ms else f'{(a.at_ms - a.stale_at_ms) / 1000:.1f}s before'}")
        if table is not None:
            lacking = rc.moved(settings, table.epoch, rc.running_regions(table), args.settle_ms)
            print("moved" if not any(lacking.values()) else
                  "moving: " + "; ".join(f"{r}: {v}" for r, v in lacking.items() if v))
        return 0
    if args.action == "set":
        if not args.file:
            raise SystemExit("error: routes set needs --file DOC.json")
        try:
            table = RoutingTable.from_json(Path(args.file).read_text(), frozenset(settings.job.regions))
            region = rc.write(settings, table, args.write_region)
        except (RoutingTableError, StaleEpochError) as e:
            raise SystemExit(f"error: routing table rejected: {e}")
        print(f"routing table epoch {table.epoch} written in {region}")
        return 0
    if args.action == "move":
        if not args.keys or not args.to:
            raise SystemExit("error: routes move needs --keys K1,K2 and --to REGION")
        return _apply(args, settings, {}, {k.strip(): args.to for k in args.keys.split(",") if k.strip()})
    if args.action == "drain":
        if not args.region:
            raise SystemExit("error: routes drain needs --region R (its keys move to the other ACTIVE regions)")
        return _apply(args, settings, {args.region: "DRAINING"}, {})
    states = {r: s.upper() for r, s in _pairs(args.state, "state").items()}
    return _apply(args, settings, states, _pairs(args.override, "override"))


def route_key(args, settings: Settings) -> int:
    t = rc.read(settings, args.region or settings.job.region)
    if t is None:
        raise SystemExit("error: no routing table stored")
    print(f"{args.key} -> {t.home_of(args.key)} (epoch {t.epoch})")
    return 0

"""`homeflow routes show|set|remap` and `homeflow route KEY`."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from conf.settings import Settings
from connectors.routing_store import RoutingStore
from udfs.routing_table import RegionEntry, RoutingTable, RoutingTableError


def read(settings: Settings, region: str) -> RoutingTable | None:
    return RoutingStore(settings, region).read(frozenset(settings.job.regions))


def publish(settings: Settings, table: RoutingTable) -> None:
    """Write to every region's routing table (in AWS, one global-table write replicates)."""
    for region in settings.job.regions:
        RoutingStore(settings, region).write(table)


def latest(settings: Settings) -> RoutingTable | None:
    tables = [t for t in (read(settings, r) for r in settings.job.regions) if t is not None]
    return max(tables, key=lambda t: t.epoch, default=None)


def remap(settings: Settings, states: dict[str, str], overrides: dict[str, str | None]) -> RoutingTable:
    current = latest(settings)
    if current is None:
        raise SystemExit("no routing table stored yet; run `homeflow sandbox up` or `homeflow routes set`")
    regions = dict(current.regions)
    for r, st in states.items():
        if r not in regions:
            regions[r] = RegionEntry(1, st)
        regions[r] = replace(regions[r], state=st)
    ov = dict(current.overrides)
    for k, r in overrides.items():
        if r:
            ov[k] = r
        else:
            ov.pop(k, None)
    doc = replace(current, epoch=current.epoch + 1, regions=regions, overrides=ov).to_doc()
    table = RoutingTable.from_doc(doc, frozenset(settings.job.regions))  # validates
    publish(settings, table)
    return table


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for it in items:
        if "=" not in it:
            raise SystemExit(f"--{what} expects A=B, got {it!r}")
        a, b = it.split("=", 1)
        out[a.strip()] = b.strip()
    return out


def run(args, settings: Settings) -> int:
    if args.action == "show":
        for region in ([args.region] if args.region else settings.job.regions):
            t = read(settings, region)
            print(f"{region}: " + ("(none)" if t is None else json.dumps(t.to_doc(), indent=2)))
        return 0
    try:
        if args.action == "set":
            if not args.file:
                raise SystemExit("routes set needs --file DOC.json")
            table = RoutingTable.from_json(Path(args.file).read_text(), frozenset(settings.job.regions))
            publish(settings, table)
        else:
            states = {r: s.upper() for r, s in _pairs(args.state, "state").items()}
            table = remap(settings, states, _pairs(args.override, "override"))
    except RoutingTableError as e:
        raise SystemExit(f"error: routing table rejected: {e}")
    print(f"routing table epoch {table.epoch} stored in {', '.join(settings.job.regions)}")
    return 0


def route_key(args, settings: Settings) -> int:
    t = read(settings, args.region or settings.job.region)
    if t is None:
        raise SystemExit("no routing table stored")
    print(f"{args.key} -> {t.home_of(args.key)} (epoch {t.epoch})")
    return 0

"""The routing table: regions on a consistent-hash ring, explicit overrides, and an epoch.

It is stored in DynamoDB as one JSON document (one item, so one read sees one whole version) and
validated here. A table that fails validation is rejected with a reason; callers keep the last
good one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from udfs.ring import HashRing

STATES = ("ACTIVE", "DRAINING", "DOWN")
HOME_CACHE = 100_000  # keys whose home a table remembers (the ring's hash is the router's hot path)
MAX_WEIGHT = 100


class RoutingTableError(ValueError):
    """A routing-table document that must not be used; the message is the reason."""


@dataclass(frozen=True)
class RegionEntry:
    weight: int
    state: str = "ACTIVE"
    # The epoch at which this region last went DOWN (0: never). Kept after it returns: a record
    # forwarded to it under an older epoch and routed by it later was stranded by that loss.
    lost_at: int = 0


@dataclass(frozen=True)
class RoutingTable:
    epoch: int
    regions: Mapping[str, RegionEntry]
    overrides: Mapping[str, str] = field(default_factory=dict)
    vnodes_per_weight: int = 64

    def __post_init__(self) -> None:
        # Only ACTIVE regions own ring points; DRAINING/DOWN regions receive no new keys.
        active = [(r, e.weight) for r, e in sorted(self.regions.items()) if e.state == "ACTIVE"]
        if not active:
            raise RoutingTableError("no ACTIVE region with weight > 0")
        object.__setattr__(self, "_ring", HashRing(active, self.vnodes_per_weight))
        object.__setattr__(self, "_homes", {})

    def home_of(self, key: str) -> str:
        home = self._homes.get(key)  # type: ignore[attr-defined]
        if home is None:
            region = self.overrides.get(key)
            if region is not None and self.regions[region].state != "DOWN":
                home = region
            else:
                home = self._ring.owner(key)  # type: ignore[attr-defined]
            if len(self._homes) >= HOME_CACHE:  # type: ignore[attr-defined]
                self._homes.clear()  # type: ignore[attr-defined]
            self._homes[key] = home  # type: ignore[attr-defined]
        return home

    def to_doc(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "vnodes_per_weight": self.vnodes_per_weight,
            "regions": {r: {"weight": e.weight, "state": e.state, **({"lost_at": e.lost_at} if e.lost_at else {})}
                        for r, e in sorted(self.regions.items())},
            "overrides": dict(sorted(self.overrides.items())),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_doc(), sort_keys=True, separators=(",", ":"))

    @staticmethod
    def from_doc(doc: Any, known_regions: frozenset[str]) -> "RoutingTable":
        if not isinstance(doc, dict):
            raise RoutingTableError("routing table must be a JSON object")
        epoch = doc.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
            raise RoutingTableError("epoch must be an integer >= 1")
        vnodes = doc.get("vnodes_per_weight", 64)
        if not isinstance(vnodes, int) or isinstance(vnodes, bool) or not 1 <= vnodes <= 1024:
            raise RoutingTableError("vnodes_per_weight must be an integer in 1..1024")
        raw_regions = doc.get("regions")
        if not isinstance(raw_regions, dict) or not raw_regions:
            raise RoutingTableError("regions must be a non-empty object")
        regions: dict[str, RegionEntry] = {}
        for name, spec in raw_regions.items():
            if name not in known_regions:
                raise RoutingTableError(f"unknown region '{name}'")
            if not isinstance(spec, dict):
                raise RoutingTableError(f"region '{name}' must be an object")
            weight = spec.get("weight", 1)
            if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= MAX_WEIGHT:
                raise RoutingTableError(f"region '{name}': weight must be an integer in 0..{MAX_WEIGHT}")
            state = spec.get("state", "ACTIVE")
            if state not in STATES:
                raise RoutingTableError(f"region '{name}': state must be one of {', '.join(STATES)}")
            lost_at = spec.get("lost_at", 0)
            if not isinstance(lost_at, int) or isinstance(lost_at, bool) or not 0 <= lost_at <= epoch:
                raise RoutingTableError(f"region '{name}': lost_at must be an integer in 0..epoch")
            regions[name] = RegionEntry(weight, state, lost_at)
        overrides = doc.get("overrides", {})
        if not isinstance(overrides, dict):
            raise RoutingTableError("overrides must be an object of key -> region")
        for key, region in overrides.items():
            if region not in regions:
                raise RoutingTableError(f"override for key '{key}' names unknown region '{region}'")
        if not any(e.state == "ACTIVE" and e.weight > 0 for e in regions.values()):
            raise RoutingTableError("no ACTIVE region with weight > 0")
        return RoutingTable(epoch, regions, dict(overrides), vnodes)

    @staticmethod
    def from_json(text: str, known_regions: frozenset[str]) -> "RoutingTable":
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise RoutingTableError(f"unparsable routing table: {e}") from None
        return RoutingTable.from_doc(doc, known_regions)


def default_table(regions: list[str], epoch: int = 1) -> RoutingTable:
    return RoutingTable(epoch, {r: RegionEntry(1) for r in regions})


def accept(current: RoutingTable | None, candidate: RoutingTable) -> str | None:
    """Why `candidate` must not replace `current`, or None if it may."""
    if current is not None and candidate.epoch < current.epoch:
        return f"epoch going backwards: {candidate.epoch} < {current.epoch}"
    if current is not None and candidate.epoch == current.epoch and candidate != current:
        return f"different table with the same epoch {candidate.epoch}"
    return None


class TableHistory:
    """The newest routing tables a router has adopted (newest last), bounded by `size`.

    A key's new home walks it back to find where the key lived before (the old home it must
    hand off from); tables older than the history are assumed settled."""

    def __init__(self, tables: list[RoutingTable] | None = None, size: int = 16):
        self.size = size
        self.tables: list[RoutingTable] = list(tables or [])[-size:]

    @property
    def current(self) -> RoutingTable | None:
        return self.tables[-1] if self.tables else None

    def adopt(self, table: RoutingTable) -> None:
        if self.tables and self.tables[-1].epoch == table.epoch:
            self.tables[-1] = table
        else:
            self.tables.append(table)
            del self.tables[:-self.size]

    def newest_first(self):
        return reversed(self.tables)

    def to_json(self) -> str:
        return json.dumps([t.to_doc() for t in self.tables], sort_keys=True, separators=(",", ":"))

    @staticmethod
    def from_json(text: str, known_regions: frozenset[str], size: int = 16) -> "TableHistory":
        return TableHistory([RoutingTable.from_doc(d, known_regions) for d in json.loads(text)], size)

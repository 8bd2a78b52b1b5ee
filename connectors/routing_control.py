"""The routing control plane: change the routing table in ONE region, and follow a change until it
has moved (DESIGN.md guarantees 4-6).

The routing table is a DynamoDB global table. Its conditional write (`epoch < :e`) is checked in
the region written only, so two editors in two regions could both "win" and replication would
keep one: changes are made in one region at a time (the control region, homeflow.job/region,
or --write-region when that region is lost), and replication carries them everywhere.

A change moves keys in two phases. *Moving*: the new epoch is written; every regional job adopts
it and hands the moving keys over (udfs/handoff.py). *Moved*: every job that runs has
acknowledged the epoch (routing table items ack#<region>#<subtask>), holds no key for a hand-off,
and has not seen a record routed under an older epoch for a settle period (so nothing from before
the change is still on its way). The next change should start only then.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

from conf.settings import Settings
from connectors import aws
from connectors.routing_store import Ack, RoutingStore, read_acks
from udfs.routing_table import RegionEntry, RoutingTable, RoutingTableError

DEFAULT_SETTLE_MS = 3000


class NotMoved(RuntimeError):
    """The previous change has not finished moving."""


def read(settings: Settings, region: str) -> RoutingTable | None:
    return RoutingStore(settings, region).read(frozenset(settings.job.regions))


def latest(settings: Settings, regions: list[str] | None = None) -> RoutingTable | None:
    """The newest table any reachable region holds."""
    tables = []
    for r in regions or settings.job.regions:
        try:
            t = read(settings, r)
        except Exception:  # noqa: BLE001 - a lost region does not answer
            continue
        if t is not None:
            tables.append(t)
    return max(tables, key=lambda t: t.epoch, default=None)


def write(settings: Settings, table: RoutingTable, region: str | None = None) -> str:
    region = region or settings.job.region
    RoutingStore(settings, region).write(table)
    return region


def changed(settings: Settings, states: dict[str, str], overrides: dict[str, str | None],
            base: RoutingTable | None = None) -> RoutingTable:
    """The next table: `base` (default: the newest) with region states and key pins changed, a
    higher epoch, and `lost_at` set for regions that go DOWN."""
    current = base or latest(settings)
    if current is None:
        raise RoutingTableError("no routing table stored yet; run `homeflow sandbox up` or `homeflow routes set`")
    epoch = current.epoch + 1
    regions = dict(current.regions)
    for r, st in states.items():
        old = regions.get(r, RegionEntry(1))
        lost_at = epoch if st == "DOWN" and old.state != "DOWN" else old.lost_at
        regions[r] = replace(old, state=st, lost_at=lost_at)
    ov = dict(current.overrides)
    for k, r in overrides.items():
        if r:
            ov[k] = r
        else:
            ov.pop(k, None)
    return RoutingTable.from_doc(replace(current, epoch=epoch, regions=regions, overrides=ov).to_doc(),
                                 frozenset(settings.job.regions))


def remap(settings: Settings, states: dict[str, str], overrides: dict[str, str | None],
          region: str | None = None) -> RoutingTable:
    table = changed(settings, states, overrides)
    write(settings, table, region)
    return table


def wait_replicated(settings: Settings, epoch: int, regions: list[str] | None = None, timeout: float = 60) -> None:
    """Until every region's replica of the routing table has `epoch` or newer."""
    def behind(r: str) -> bool:
        try:
            t = read(settings, r)
        except RoutingTableError:  # a poison item there, until the replica is overwritten
            return True
        return t is None or t.epoch < epoch
    deadline = time.monotonic() + timeout
    pending = list(regions or settings.job.regions)
    while pending:
        pending = [r for r in pending if behind(r)]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"routing table epoch {epoch} did not reach {', '.join(pending)} in {timeout:.0f}s")
        time.sleep(0.2)


# ---------------------------------------------------------------- moved?

def current_acks(settings: Settings, region: str) -> list[Ack]:
    """The acks of `region`'s running subtasks, read from its own replica (written there)."""
    acks = [a for a in read_acks(aws.client("dynamodb", region, settings.aws), settings.job.routing_table)
            if a.region == region]
    if not acks:
        return []
    p = max(acks, key=lambda a: a.at_ms).parallelism  # after a rescale, older subtasks' items linger
    return [a for a in acks if a.subtask < p]


@dataclass
class MoveProgress:
    epoch: int
    started: float = field(default_factory=time.monotonic)
    regions: dict[str, str] = field(default_factory=dict)  # region -> what it still waits for, "" when done
    moved_after_s: float | None = None


def moved(settings: Settings, epoch: int, regions: list[str], settle_ms: int = DEFAULT_SETTLE_MS,
          now_ms: int | None = None) -> dict[str, str]:
    """What each region still lacks for `epoch` to count as moved ("" = nothing)."""
    now_ms = now_ms or int(time.time() * 1000)
    out = {}
    for r in regions:
        try:
            acks = current_acks(settings, r)
        except Exception as e:  # noqa: BLE001
            out[r] = f"unreachable ({type(e).__name__})"
            continue
        if not acks:
            out[r] = "no job has acknowledged any epoch"
        elif any(a.epoch < epoch for a in acks):
            out[r] = f"routes under epoch {min(a.epoch for a in acks)}"
        elif any(a.busy_keys for a in acks):
            out[r] = f"{sum(a.busy_keys for a in acks)} keys in hand-off"
        elif any(now_ms - a.stale_at_ms < settle_ms for a in acks):
            out[r] = "records from before the change still arriving"
        else:
            out[r] = ""
    return out


def running_regions(table: RoutingTable) -> list[str]:
    """Regions whose jobs take part in a change (a DOWN region's job is not expected to answer)."""
    return sorted(r for r, e in table.regions.items() if e.state != "DOWN")


def wait_moved(settings: Settings, epoch: int, regions: list[str], timeout: float = 120,
               settle_ms: int = DEFAULT_SETTLE_MS, progress: Callable[[MoveProgress], None] | None = None,
               poll_s: float = 0.5) -> MoveProgress:
    """Until every job in `regions` has moved to `epoch` (see module doc), continuously for
    `settle_ms`. Raises NotMoved on timeout, naming what each region still waits for."""
    st = MoveProgress(epoch)
    deadline = time.monotonic() + timeout
    ok_since = None
    while True:
        st.regions = moved(settings, epoch, regions, settle_ms)
        if progress:
            progress(st)
        if all(v == "" for v in st.regions.values()):
            ok_since = ok_since or time.monotonic()
            if time.monotonic() - ok_since >= settle_ms / 1000:
                st.moved_after_s = time.monotonic() - st.started
                return st
        else:
            ok_since = None
        if time.monotonic() > deadline:
            waiting = "; ".join(f"{r}: {v}" for r, v in st.regions.items() if v)
            raise NotMoved(f"epoch {epoch} has not moved after {timeout:.0f}s ({waiting})")
        time.sleep(poll_s)

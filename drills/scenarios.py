"""The drill scenarios. Each runs under continuous sequenced traffic (drills/traffic.py) against the
regional jobs of a backend (drills/backends.py), records a timeline, and returns its figures; the
driver (drills/run.py) audits the lake and writes the report.

* move-keys: planned moves of a set of keys between two regions, back and forth (`flips` each
  way), each written only after the previous one has moved (routing acks, see
  connectors/routing_control.py).
* region-loss: region A's job is killed (no savepoint) and A made unreachable; A goes DOWN in the
  routing table (written in the surviving region) and its producers move to B; A returns,
  restores its last checkpoint and drains its backlog (marked stranded) while still DOWN; then
  failback as a planned move.
* upgrade: A is stopped with a savepoint and restarted from it with parallelism 1 -> 2 -> 1.
* reshard: on kinesis-mock (the sandbox's Kinesis that reshards), the first open shard of every
  region's ingest and forward streams is split in two, then the two children are merged back
  into one, while both jobs read and write those streams.
* replay: first the planned moves of move-keys (`flips` each way); then A is drained, made
  ACTIVE, DOWN (its job running) and ACTIVE again, so A's keys are committed in both home tables
  in turn; bad records go into A's ingest stream; then A's job is killed and started without any
  state (a lost checkpoint, a new application): it reads its streams again from the start and
  must commit nothing any home committed, and dead-letter nothing twice
  (connectors/lake_seed.py). The planned moves' verdict (nothing reordered, nothing marked)
  applies to the rows routed before A was set DOWN.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from connectors import routing_control as rc
from drills.backends import Backend
from drills.traffic import Traffic
from sandbox.jobrunner import wait_until
from drills.world import World
from sandbox.local_cluster import Sandbox

SCENARIOS = ("move-keys", "region-loss", "upgrade", "reshard", "replay")
# Bad input for the replay drill: each must be dead-lettered exactly once across the restart.
BAD_RECORDS = (b"{not json", b'{"event_id": "bad-no-key", "ts": 1}', b'{"key": "k", "ts": 1}')


@dataclass
class Drill:
    scenario: str
    sb: Sandbox | World
    backend: Backend
    regions: list[str]  # [A, B]: the two regions with jobs
    traffic: Traffic
    run_id: str
    say: Callable[[str], None] = print
    timeline: list[dict] = field(default_factory=list)
    acks: list[dict] = field(default_factory=list)
    t0: float = field(default_factory=time.time)

    def mark(self, kind: str, **detail) -> float:
        t = time.time()
        self.timeline.append({"t_ms": int(t * 1000), "kind": kind, **detail})
        return t

    # -- control plane, as an operator would use it

    def write(self, states: dict[str, str], overrides: dict[str, str | None], write_region: str) -> int:
        table = rc.changed(self.sb.settings, states, overrides, rc.latest(self.sb.settings, self.reachable()))
        rc.write(self.sb.settings, table, write_region)
        self.mark("epoch", epoch=table.epoch, region=write_region,
                  states={r: e.state for r, e in table.regions.items()},
                  moved_to={k: v for k, v in overrides.items() if v})
        return table.epoch

    def wait_moved(self, epoch: int, timeout: float = 120) -> float:
        table = rc.latest(self.sb.settings, self.reachable())
        regions = [r for r in rc.running_regions(table) if r in self.regions]
        st = rc.wait_moved(self.sb.settings, epoch, regions, timeout)
        self.mark("moved", epoch=epoch, after_s=round(st.moved_after_s, 2))
        return st.moved_after_s

    def reachable(self) -> list[str]:
        down = set(self.sb.down_regions())
        return [r for r in self.sb.settings.job.regions if r not in down]

    def dwell(self, seconds: float) -> None:
        """Let traffic run; fail fast if a job died."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.backend.check_alive(self.regions)
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))

    def watch_acks(self, stop: threading.Event) -> threading.Thread:
        """Record, twice a second, which epoch each region's job routes under (for the timeline)."""
        def run():
            seen: dict[str, tuple] = {}
            while not stop.is_set():
                for r in self.regions:
                    try:
                        acks = rc.current_acks(self.sb.settings, r)
                    except Exception:  # noqa: BLE001 - a lost region does not answer
                        continue
                    if acks:
                        st = (min(a.epoch for a in acks), sum(a.busy_keys for a in acks))
                        if seen.get(r) != st:
                            seen[r] = st
                            self.acks.append({"t_ms": int(time.time() * 1000), "region": r, "epoch": st[0],
                                              "busy_keys": st[1]})
                stop.wait(0.5)
        t = threading.Thread(target=run, daemon=True, name="drill-acks")
        t.start()
        return t


def move_keys(d: Drill, flips: int = 5, moving: int = 8, dwell_s: float = 4.0) -> dict:
    a, b = d.regions
    table = rc.latest(d.sb.settings)
    keys = [k for k in d.traffic.keys if table.home_of(k) == a][:moving]
    if len(keys) < moving:
        raise RuntimeError(f"only {len(keys)} drill keys are homed in {a}; use more keys")
    flips_done = []
    for i in range(2 * flips):
        to, frm = (b, a) if i % 2 == 0 else (a, b)
        d.say(f"  flip {i + 1}/{2 * flips}: {len(keys)} keys {frm} -> {to}")
        t = time.time()
        epoch = d.write({}, {k: to for k in keys}, write_region=a)
        moved_s = d.wait_moved(epoch)
        flips_done.append({"flip": i + 1, "from": frm, "to": to, "epoch": epoch, "t_ms": int(t * 1000),
                           "moved_after_s": round(moved_s, 2)})
        d.dwell(dwell_s)
    return {"moving_keys": keys, "flips": flips_done}


def region_loss(d: Drill, outage_s: float = 15.0, dwell_s: float = 8.0) -> dict:
    lost, survivor = d.regions
    s = d.sb.settings
    before = rc.latest(s)
    kill_says, return_says = getattr(d.backend, "loss_words", ("job killed (no savepoint)",
                                                               "its job restores its last checkpoint"))
    d.say(f"  {lost}: {kill_says}, region unreachable")
    t_fail = d.mark("failure", region=lost)
    d.backend.kill(lost)
    d.sb.lose(lost)
    d.traffic.move(lost, survivor)
    d.mark("producers-moved", region=lost, to=survivor)
    epoch = d.write({lost: "DOWN"}, {}, write_region=survivor)  # the control plane fails over too
    after = rc.latest(s, [survivor])
    d.wait_moved(epoch)
    d.dwell(outage_s)
    d.say(f"  {lost}: back; {return_says} and drains its backlog (still DOWN)")
    d.sb.restore(lost)
    t_return = d.mark("return", region=lost)
    # Its job starts once its replica of the routing table says it is DOWN (so it routes its
    # backlog away, marked stranded); global-table replication catches up when the region returns.
    rc.wait_replicated(s, epoch, [lost])
    d.backend.start(lost, restore="latest")
    d.mark("restored", region=lost)
    # Drained: every event accepted so far is committed somewhere (the returned region forwards
    # its backlog, marked stranded, to the keys' homes).
    accepted = {e.event_id for e in d.traffic.accepted()}
    def drained():
        d.backend.check_alive(d.regions)
        return accepted <= d.sb.committed_ids(*d.regions)
    wait_until(drained, 300, 3.0, what=f"{lost}'s backlog committed")
    t_drained = d.mark("drained", region=lost)
    d.say(f"  failback: {lost} ACTIVE again (a planned move)")
    epoch = d.write({lost: "ACTIVE"}, {}, write_region=survivor)
    d.wait_moved(epoch)
    d.traffic.restore(lost)
    d.mark("producers-back", region=lost)
    d.dwell(dwell_s)
    keys = d.traffic.keys
    moved = [k for k in keys if before.home_of(k) != after.home_of(k)]
    expected = [k for k in keys if before.home_of(k) == lost]
    return {"lost_region": lost, "survivor": survivor, "t_fail_ms": int(t_fail * 1000),
            "t_return_ms": int(t_return * 1000), "t_drained_ms": int(t_drained * 1000),
            "keys_moved": sorted(moved), "keys_expected": sorted(expected),
            "survivor_keys_moved": sorted(set(moved) - set(expected)),
            "moved_share": round(len(moved) / len(keys), 3), "regions_before": len(rc.running_regions(before))}


def upgrade(d: Drill, dwell_s: float = 8.0, parallelisms: tuple[int, ...] = (2, 1)) -> dict:
    a = d.regions[0]
    steps = []
    for p in parallelisms:
        d.say(f"  {a}: stop with savepoint, restart from it with parallelism {p}")
        t = time.time()
        sp = d.backend.stop_with_savepoint(a)
        t_stopped = d.mark("savepoint", region=a, path=sp)
        d.backend.start(a, restore=sp, parallelism=p)
        t_running = d.mark("restarted", region=a, parallelism=p)
        steps.append({"parallelism": p, "savepoint": sp, "stop_s": round(t_stopped - t, 1),
                      "restart_s": round(t_running - t_stopped, 1)})
        d.dwell(dwell_s)
    return {"region": a, "steps": steps}


def reshard(d: Drill, dwell_s: float = 8.0) -> dict:
    """Split, then merge back, a shard of each region's ingest and forward streams under traffic.
    A split closes the parent and opens two children over its hash range; a merge closes two
    adjacent shards and opens one child with both as parents. A key's records before the
    operation are in a parent, after it in a child: reading a child before its parent is
    drained would reorder the key."""
    from connectors import aws
    from sandbox import kinesis_mock
    settings = d.sb.settings
    if kinesis_mock.backend(settings) != "kinesis-mock":
        raise RuntimeError("the reshard drill needs the sandbox's Kinesis to be kinesis-mock (moto does not reshard)")
    streams = (settings.streams.ingest, settings.streams.forward)
    ops: list[dict] = []
    split_children: dict[tuple[str, str], list[str]] = {}
    for region in d.regions:
        kin = aws.client("kinesis", region, settings.aws)
        for stream in streams:
            parent, children = kinesis_mock.split_first_shard(kin, stream)
            d.mark("reshard", region=region, stream=stream, op="split", shard=parent)
            split_children[(region, stream)] = children
            ops.append({"region": region, "stream": stream, "op": "split", "parents": [parent], "children": children})
            d.say(f"  {region} {stream}: split {parent} into {', '.join(children)}")
    d.dwell(dwell_s)
    for region in d.regions:
        kin = aws.client("kinesis", region, settings.aws)
        for stream in streams:
            a, b = split_children[(region, stream)]
            child = kinesis_mock.reshard(kin, stream, "merge_shards", ShardToMerge=a, AdjacentShardToMerge=b)
            d.mark("reshard", region=region, stream=stream, op="merge", shard=a)
            ops.append({"region": region, "stream": stream, "op": "merge", "parents": [a, b], "children": child})
            d.say(f"  {region} {stream}: merged {a} and {b} into {', '.join(child)}")
    d.dwell(dwell_s)
    return {"reshards": ops}


def replay(d: Drill, flips: int = 3, moving: int = 8, dwell_s: float = 1.5) -> dict:
    from connectors.producer import put
    a, _ = d.regions
    s = d.sb.settings
    figures = move_keys(d, flips=flips, moving=moving, dwell_s=dwell_s) if flips else {"moving_keys": [], "flips": []}
    changes = []
    for state in ("DRAINING", "ACTIVE", "DOWN", "ACTIVE"):
        d.say(f"  {a} {state}")
        t = time.time()
        epoch = d.write({a: state}, {}, write_region=a)
        changes.append({"state": state, "epoch": epoch, "t_ms": int(t * 1000),
                        "moved_after_s": round(d.wait_moved(epoch), 2)})
        d.dwell(dwell_s)
    bad = [(f"bad-{d.run_id}-{i}", b) for i, b in enumerate(BAD_RECORDS)]
    put(s, a, bad)
    wait_until(lambda: len(bad_dead_letters(d)) >= len(bad), 60, 1.0, what="the bad records dead-lettered")
    d.say(f"  {a}: job killed, started without state (it reads its streams again from the start)")
    d.mark("failure", region=a)
    d.backend.kill(a)
    d.backend.start(a, restore="none")
    d.mark("restarted-without-state", region=a)
    d.dwell(dwell_s)
    return {**figures, "region": a, "changes": changes, "bad_records": len(bad),
            "t_down_ms": next(c["t_ms"] for c in changes if c["state"] == "DOWN")}


def bad_dead_letters(d: Drill) -> list[str]:
    """Sources of the replay drill's bad records in the first region's dead-letter archive, one per
    archived dead letter (a record dead-lettered twice appears twice). The archive is the record:
    the stream is written ahead of the checkpoints, so a restore may send a dead letter to it again."""
    from connectors import lake
    from udfs.redrive import original
    table = lake.load_dead_letter_table(d.sb.settings, d.regions[0])
    if table is None or table.current_snapshot() is None:
        return []
    rows = table.scan(selected_fields=("source", "raw", "raw_encoding")).to_arrow().to_pylist()
    return [r["source"] or "" for r in rows if original(r) in BAD_RECORDS]

"""An in-memory model of several regional jobs running `udfs.handoff.KeyRouter`, for property
tests of the hand-off protocol over many random schedules.

What it models, and why each part matters to ordering:
* streams: per region an ingest and a forward stream of 2 shards each; a key always maps to one
  shard (Kinesis partition key), each shard is FIFO;
* the key-ordered Kinesis sink: per (sender, destination) a FIFO per key; the scheduler flushes
  any key's head at any time, so different keys overtake each other but a key never does;
* routing tables: the control publishes a version; each region adopts it after a random delay
  (replication lag + poll), so regions disagree for a while;
* checkpoints: lake rows are committed at a region's checkpoint; a crash throws away everything
  since the last one (router state, read positions, sink buffers, uncommitted rows) and replays;
* region loss: the region stops, its streams take no writes (producers move away, senders' sink
  buffers for it stall) until it returns and restores its last checkpoint;
* a start without state: a region loses its state and reads its streams again from the start,
  with the seed (event_ids some home committed, connectors/lake_seed.py) read from the lake;
* producer retries: a copy of an event, unchanged (same `origin`), written into another region's
  ingest stream: it enters through that region's lane.
"""
from __future__ import annotations

import copy
import random
from collections import defaultdict, deque
from dataclasses import dataclass, field

from udfs.committed import CommittedIds
from udfs.envelope import Envelope
from udfs.handoff import Dead, Forward, Held, Home, KeyRouter, KeyState
from udfs.router_policy import RouterPolicy
from udfs.ring import stable_hash
from udfs.routing_table import RegionEntry, RoutingTable, TableHistory

REGIONS = ("us-east-1", "eu-west-1", "ap-south-1")
SHARDS = 2


@dataclass
class RegionState:
    """Everything a regional job checkpoints."""
    keys: dict = field(default_factory=lambda: defaultdict(KeyState))
    committed: CommittedIds = field(default_factory=CommittedIds)  # the runtime's dedup (udfs/committed.py)
    tables: TableHistory = field(default_factory=TableHistory)
    pos: dict = field(default_factory=lambda: defaultdict(int))  # (stream, shard) -> next index
    sink: dict = field(default_factory=lambda: defaultdict(deque))  # (dst, key) -> FIFO of bytes
    pending: list = field(default_factory=list)  # lake rows not yet committed


@dataclass
class Row:
    event_id: str
    key: str
    lane: str  # entry lane: the region whose ingest stream this copy entered
    pos: int  # its position there (the key's shard; a sequence number)
    entered: int  # when it entered
    epoch: int
    routed_at: int
    late: str | None
    home: str
    commit: int = 0  # order of commits (set when committed)


class Sim:
    def __init__(self, seed: int, keys: int = 6, ordered: bool = True, regions=REGIONS[:2],
                 timeout_ms: int = 10**9, dup_rate: float = 0.0, max_hops: int = 3, lanes_by: str = "entry"):
        self.rng = random.Random(seed)
        self.regions = list(regions)
        self.ordered = ordered
        self.keys = [f"k{i}" for i in range(keys)]
        self.now = 1_000
        self.streams = {(r, s, sh): [] for r in self.regions for s in ("ingest", "forward") for sh in range(SHARDS)}
        self.arrived = {k: [] for k in self.streams}  # entry time of each stream record
        self.table = RoutingTable(1, {r: RegionEntry(1) for r in self.regions})
        self.published = [self.table]
        self.st = {r: RegionState() for r in self.regions}
        for r in self.regions:
            self.st[r].tables.adopt(self.table)
        self.ckpt = {r: copy.deepcopy(self.st[r]) for r in self.regions}
        self.down: set[str] = set()  # crashed/unreachable regions
        self.lake: list[Row] = []
        self.seq = defaultdict(int)
        self.produced: dict[str, tuple[str, str, int]] = {}
        self.dead: list[Dead] = []
        self.dead_sources = defaultdict(set)  # region -> sources it dead-lettered (its dead-letter stream)
        # What each job decides besides a key's fate: made at its start, not checkpointed.
        self.policy = {r: RouterPolicy(self.now, 200) for r in self.regions}
        for p in self.policy.values():
            p.table_read()
        self.pauses: list[int] = []
        self.counts = defaultdict(int)
        self.dup_rate = dup_rate
        self.commits = 0
        self.router_args = dict(max_hops=max_hops, max_record_bytes=10**6, ordered=ordered,
                                handoff_timeout_ms=timeout_ms, table_wait_ms=10**9, count=self._count,
                                pause=self.pauses.append, skew_ms=0, lanes_by=lanes_by)
        self.routers = {r: KeyRouter(r, self.regions, **self.router_args) for r in self.regions}

    def _count(self, name, n=1):
        self.counts[name] += n

    # ---------------------------------------------------------------- world

    def shard(self, key):
        return stable_hash(key) % SHARDS

    def _put(self, region: str, stream: str, key: str, raw: bytes):
        self.streams[(region, stream, self.shard(key))].append(raw)
        self.arrived[(region, stream, self.shard(key))].append(self.now)

    def produce(self, region: str, key: str):
        self.seq[(key, region)] += 1
        eid = f"{region}/{key}/{self.seq[(key, region)]}"
        env = Envelope(eid, key, self.now, region, payload={"seq": self.seq[(key, region)]})
        self.produced[eid] = (key, region, self.seq[(key, region)])
        self._put(region, "ingest", key, env.to_json().encode())
        if self.dup_rate and self.rng.random() < self.dup_rate:
            # The producer retries into another region, the record unchanged (its origin too).
            other = self.rng.choice([r for r in self.regions if r not in self.down])
            self._put(other, "ingest", key, env.to_json().encode())

    def publish(self, table: RoutingTable):
        self.table = table
        self.published.append(table)

    def deliver(self, region: str) -> bool:
        """The region's router reads the next record of a random non-empty shard."""
        st = self.st[region]
        ready = [(s, sh) for (r, s, sh) in self.streams if r == region
                 and st.pos[(s, sh)] < len(self.streams[(r, s, sh)])]
        if not ready:
            return False
        s, sh = self.rng.choice(ready)
        raw = self.streams[(region, s, sh)][st.pos[(s, sh)]]
        at = self.arrived[(region, s, sh)][st.pos[(s, sh)]]
        st.pos[(s, sh)] += 1
        key = Envelope_key(raw)
        item = Held(raw, f"{s}/{sh}/{st.pos[(s, sh)]}", self.now)
        if s == "ingest":
            item.entry, item.entered_ms = f"{region}/shardId-{sh}/{st.pos[(s, sh)]}", at
        self._apply(region, key, self.routers[region].on_item(st.keys[key], self.policy[region].tables(st.tables, self.now),
                                                              item, self.now))
        return True

    def pump(self, region: str):
        st = self.st[region]
        for key, ks in list(st.keys.items()):
            if ks.busy():
                self._apply(region, key, self.routers[region].pump(ks, self.policy[region].tables(st.tables, self.now),
                                                                   self.now))

    def _apply(self, region, key, outs):
        st = self.st[region]
        for o in st.committed.apply(key, outs, self.now):
            if isinstance(o, Home):
                lane, _, pos = o.entry.split("/")
                st.pending.append(Row(o.env.event_id, o.env.key, lane, int(pos), o.entered_ms, o.epoch,
                                      o.routed_at, o.late, region))
            elif isinstance(o, Forward):
                st.sink[(o.region, o.env.key)].append(o.env.to_json().encode())
            else:
                if self.policy[region].write_dead_letter(o.source):
                    self.dead.append(o)
                    self.dead_sources[region].add(o.source)

    def flush(self, region: str) -> bool:
        """The region's forward sink writes the head record of one random key queue."""
        st = self.st[region]
        ready = [k for k, q in st.sink.items() if q and k[0] not in self.down]
        if not ready:
            return False
        dst, key = self.rng.choice(ready)
        self._put(dst, "forward", key, st.sink[(dst, key)].popleft())
        return True

    def adopt(self, region: str) -> bool:
        """The region's routing feed polls: its router has a table read since its start."""
        st = self.st[region]
        self.policy[region].table_read()
        if st.tables.current.epoch >= self.table.epoch:
            return False
        # Regions may skip versions (polling), but adopt in epoch order.
        newer = [t for t in self.published if t.epoch > st.tables.current.epoch]
        st.tables.adopt(self.rng.choice(newer) if self.rng.random() < 0.3 else newer[0])
        return True

    def checkpoint(self, region: str):
        st = self.st[region]
        for r in st.pending:  # committed when the checkpoint completes
            self.commits += 1
            r.commit = self.commits
        self.lake += st.pending
        st.pending = []
        self.ckpt[region] = copy.deepcopy(st)

    def crash(self, region: str):
        self.down.add(region)

    def recover(self, region: str):
        self.st[region] = copy.deepcopy(self.ckpt[region])
        self.policy[region] = RouterPolicy(self.now, 200)  # its restored table waits for a fresh one
        self.down.discard(region)

    def start_without_state(self, region: str, seed: str = "lake"):
        """The region's job loses its state (no checkpoint to restore) and starts again: it reads
        its streams from the start, with the first table it polls, and seeds its dedup with what
        the lake holds: every home's rows ("lake") or only its own ("home", the control)."""
        ids = {r.event_id for r in self.lake if seed == "lake" or r.home == region}
        st = RegionState()
        st.tables.adopt(self.table)
        self.st[region] = st
        self.policy[region] = RouterPolicy(self.now, 200, self.dead_sources[region].copy().__contains__)
        self.ckpt[region] = copy.deepcopy(st)
        self.routers[region] = KeyRouter(region, self.regions, committed=ids.__contains__, **self.router_args)
        self.down.discard(region)

    # ---------------------------------------------------------------- driving

    def step(self, produce_in: list[str] | None = None):
        self.now += self.rng.randint(1, 20)
        live = [r for r in self.regions if r not in self.down]
        action = self.rng.random()
        r = self.rng.choice(live)
        # Producing at 12 % of steps leaves the routers (30 %) and sinks (25 %) room to keep up: a
        # world whose streams grow without bound never finishes a hand-off.
        if produce_in is not None and action < 0.12:
            self.produce(self.rng.choice(produce_in), self.rng.choice(self.keys))
        elif action < 0.25:
            pass  # time passes
        elif action < 0.55:
            self.deliver(r)
        elif action < 0.8:
            self.flush(r)
        elif action < 0.9:
            self.adopt(r)
        elif action < 0.97:
            self.pump(r)
        else:
            self.checkpoint(r)

    def idle(self) -> bool:
        """Nothing left to do: every stream read, every sink empty, nothing held, tables adopted."""
        for r in self.regions:
            if r in self.down:
                continue
            st = self.st[r]
            if st.tables.current.epoch < self.table.epoch or any(st.sink.values()) \
                    or any(ks.busy() for ks in st.keys.values()):
                return False
            if any(st.pos[(s, sh)] < len(self.streams[(rr, s, sh)]) for (rr, s, sh) in self.streams if rr == r):
                return False
        return True

    def settle(self, limit: int = 200_000):
        """Run without producing until idle (time passes, so hand-off deadlines may expire)."""
        for _ in range(limit):
            if self.idle():
                break
            r = self.rng.choice([r for r in self.regions if r not in self.down])
            self.now += self.rng.randint(1, 20)
            self.deliver(r) or self.flush(r) or self.adopt(r) or self.pump(r)
        else:
            raise AssertionError("simulation did not settle")
        for r in self.regions:
            if r not in self.down:
                self.checkpoint(r)

    def moved(self) -> bool:
        """What `homeflow routes` waits for before the next change: every live region adopted the
        newest table, holds nothing for any key, and no record forwarded under an older epoch is
        still on its way (the jobs tell this by when they last saw one; here it is looked up)."""
        import json
        e = self.table.epoch
        for r in self.regions:
            if r in self.down:
                continue
            st = self.st[r]
            if st.tables.current.epoch < e or any(ks.busy() for ks in st.keys.values()):
                return False
            for q in st.sink.values():
                if any(json.loads(raw).get("epoch", 0) < e for raw in q):
                    return False
            for (rr, s, sh), recs in self.streams.items():
                if rr == r and s == "forward" and any(json.loads(raw)["epoch"] < e
                                                      for raw in recs[st.pos[(s, sh)]:]):
                    return False
        return True

    # ---------------------------------------------------------------- verdicts

    def _by_lane(self):
        """A key's rows per entry lane, in commit order (each home table in commit order; a key's
        tables after one another by routing epoch)."""
        by = defaultdict(list)
        for r in self.lake:
            by[(r.key, r.lane)].append(r)
        for rs in by.values():
            rs.sort(key=lambda r: (r.epoch, r.commit))
        return by

    def unreported(self) -> list[tuple[str, str]]:
        """(key, lane) of rows committed after a later row of their lane and not marked."""
        out = []
        for k, rs in self._by_lane().items():
            high = 0
            for r in rs:
                if r.pos < high and not r.late:
                    out.append(k)
                high = max(high, r.pos)
        return out

    def unjustified_marks(self) -> list[Row]:
        """Rows marked although no row of their key that entered later was committed before them
        (in their lane: a higher position; in another lane: a later entry time)."""
        out = []
        by_key = defaultdict(list)
        for r in self.lake:
            by_key[r.key].append(r)
        for rs in by_key.values():
            rs.sort(key=lambda r: (r.epoch, r.commit))
            for i, r in enumerate(rs):
                if not r.late:
                    continue
                before = rs[:i]
                if not any((b.lane == r.lane and b.pos > r.pos) or (b.lane != r.lane and b.entered > r.entered)
                           for b in before):
                    out.append(r)
        return out

    def audit(self) -> dict:
        rows = [r for r in self.lake]
        ids = defaultdict(int)
        for r in rows:
            ids[r.event_id] += 1
        lost = [e for e in self.produced if e not in ids]
        dups = {e: n for e, n in ids.items() if n > 1}
        late_rows, reported = 0, 0
        for _, rs in self._by_lane().items():
            high = 0
            for r in rs:
                if r.pos < high:
                    late_rows += 1
                    reported += bool(r.late)
                high = max(high, r.pos)
        return {"produced": len(self.produced), "rows": len(rows), "lost": len(lost), "duplicates": len(dups),
                "inversions": late_rows, "reported": reported, "dead": len(self.dead),
                "marked_late": sum(1 for r in rows if r.late), "unjustified": len(self.unjustified_marks())}


def Envelope_key(raw: bytes) -> str:
    """The business key as the job's source schema reads it: "" when there is none to read."""
    import json
    try:
        key = json.loads(raw).get("key")
    except (ValueError, AttributeError):
        return ""
    return key if isinstance(key, str) else ""


def flip(sim: Sim, keys: list[str], to: str):
    """A planned move: pin `keys` to region `to` in a new epoch."""
    t = sim.table
    ov = dict(t.overrides)
    ov.update({k: to for k in keys})
    sim.publish(RoutingTable(t.epoch + 1, t.regions, ov))


def set_state(sim: Sim, region: str, state: str):
    t = sim.table
    e = t.epoch + 1
    old = t.regions[region]
    lost_at = e if state == "DOWN" else old.lost_at
    sim.publish(RoutingTable(e, {**t.regions, region: RegionEntry(old.weight, state, lost_at)}, t.overrides))

"""Per-key routing with an ordered hand-off when a key's home changes (DESIGN.md guarantee 6).

Plain Python: the Flink router (jobs/router.py) keeps a `KeyState` per business key and calls
`KeyRouter.on_item` / `KeyRouter.pump`; tests drive the same code through an in-memory
multi-region model (tests/unit/handoff_sim.py).

The dedup by event_id is a plain lookup kept by the runtime, not here (udfs/committed.py says
what it does; dev.homeflow.flink.CommittedEventDedup does it in the job): a `Home` is committed
unless this region already committed its event_id, a `Forward` may be dropped for the same
reason, an old home's answer to an acquire marker gets this region's recent event_ids of the key,
and `Remember` hands the event_ids another home committed over to it.

The protocol, for a key K whose home moves from P to H:

* **Lanes.** K's records reach a region through lanes: its own ingest stream, or the forward
  stream from one sender region (`via`). A lane is FIFO end to end (Kinesis shard order, the
  key-ordered sink, keyed state here), and held records leave in lane order.
* **A sender S stops sending K to P.** The first time S routes K to H after routing it to P, S
  sends a *marker* to P, addressed to H (same partition key, so it follows everything S sent P
  for K), and flags the record it sends H with `after = (marker id, via P)`. H holds S's lane
  until the marker arrives through P, i.e. until S's old path is drained.
* **H acquires K.** The first time H commits K after K moved there (found in the routing-table
  history), it sends its own *acquire* marker through P and holds every lane except P's (the old
  path, which P keeps in order and deduplicates) until the marker comes back. P answers with its
  recent event_ids of K (`seen`) and its per-entry-lane marks (`order`, udfs/lanes.py).
* **Waits survive further moves.** A wait ends when its marker arrives (markers travel to the
  region waiting, not to whoever is home by then) or when it times out; a key that moves on
  while held leaves in lane order afterwards.
* **Bounded.** Every wait has a deadline (`handoff_timeout_ms`); then the records go on, and what
  arrives later through the old path is committed marked `handoff-timeout:P`.
* **Tables disagree.** A record routed under an epoch newer than ours waits for our table
  (`table_wait_ms`, then the dead-letter stream), unless it is one epoch ahead and our table
  already makes us its home (the key cannot have moved between the two). A record sent to us
  under our own epoch that our table sends elsewhere is a conflict (two different tables with
  one epoch): dead-lettered. Re-forwarding happens only under a newer epoch, so forwarding
  cannot loop; `max_hops` is a backstop.
* **Lost regions.** When P is DOWN there is nobody to hand off from: H starts at once. Records P
  routes after it returns (its backlog, and what was sent to it before it was lost) are suspects
  `stranded:P`, committed at their home.
* **Nothing reordered silently, nothing in order marked.** Every home keeps, per key and *entry
  lane* (the ingest stream a record was first read from, udfs/lanes.py), the highest entry
  position it committed and the latest entry time. A record that entered its lane before one
  already committed is marked `reordered` (or with its suspect reason). A suspect (`stranded:P`,
  `handoff-timeout:P`: the protocol could not vouch for its order) is marked only where the home
  already committed a record of the key that entered later: in its lane by position, across lanes
  by entry time (within `skew_ms`, or with a time unknown: marked). While an acquisition that timed
  out has not been answered, the home lacks the old home's marks and marks every row
  `handoff-timeout:P`: it cannot know.
* **A replay commits nothing twice.** After a start without state, `committed` answers whether an
  event_id is in any home table already (the seed, connectors/lake_seed.py); such a record is
  dropped where it is read, before it is routed or holds anything.

`ordered=False` turns markers and acquisition off (the control that shows why they exist);
`lanes="origin"` keys marks by the producer's `origin` and marks every suspect (the behaviour
before entry lanes, the control that shows their marks mean something).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Callable, Iterable, NamedTuple

from udfs import lanes
from udfs.envelope import Envelope, Marker, Rejection, marker_envelope, parse
from udfs.kpl import position
from udfs.lanes import Entry
from udfs.routing_table import RoutingTable, TableHistory

MARKER_MEMORY_MS = 3_600_000  # how long a marker that came before its flagged record is remembered


@dataclass(slots=True)
class Held:
    raw: bytes
    source: str  # stream/shard/sequence as read
    arrived_ms: int  # when the router got it (waits and held_ms are measured from here)
    late: str | None = None  # released by a hand-off that timed out: order not vouched for
    # Read from this region's ingest stream: where it entered the system (udfs/lanes.py).
    entry: str | None = None  # region/shard/sequence
    entered_ms: int | None = None  # Kinesis's arrival time
    env: Envelope | Rejection | None = None  # parsed lazily, never stored

    def lane(self) -> str:
        """Records of one lane came through one FIFO path: own ingest ("") or one sender."""
        return (self.env.via or "") if isinstance(self.env, Envelope) else "?"


@dataclass
class Wait:
    id: str  # marker id awaited
    via: str  # the old home the marker comes back through
    epoch: int
    started_ms: int
    deadline_ms: int


@dataclass
class KeyState:
    last_home: str = ""  # where this region last routed the key ("" = never)
    homed: bool = False  # this region committed the key at least once (its `seen` is worth checking)
    owned_since: int = 0  # epoch since which this region owns the key, hand-off done (0 = not owned)
    checked: int = 0  # ownership verified through this epoch
    acquiring: Wait | None = None
    unverified: Wait | None = None  # an acquisition that expired: its marker would bring seen/order
    awaiting: dict[str, Wait] = field(default_factory=dict)  # lane (sender) -> its marker
    markers: dict[str, int] = field(default_factory=dict)  # marker id -> ms it arrived (-1: given up)
    late_via: dict[str, str] = field(default_factory=dict)  # old home -> why its stragglers are late
    order: dict[str, lanes.Mark] = field(default_factory=dict)  # entry lane -> its mark here (udfs/lanes.py)
    held: list[Held] = field(default_factory=list)

    def busy(self) -> bool:
        return bool(self.held or self.acquiring or self.awaiting)

    def encode(self) -> str:
        """The stored form of everything but `order` and `held` (kept apart by the router): a JSON
        list, the codec version first, then the fields in declaration order."""
        return json.dumps([STATE_VERSION, *(_ENCODE[f](getattr(self, f)) for f in STATE_FIELDS)],
                          separators=(",", ":"))

    def view(self) -> tuple:
        """A cheap value of the stored fields, to tell whether they changed (dicts as item tuples;
        Waits are replaced, never changed in place). Runs for every key a call touches."""
        return _VIEW(self)

    @staticmethod
    def decode(text: str | None) -> "KeyState":
        if not text:
            return KeyState()
        doc = json.loads(text)
        if not isinstance(doc, list) or not doc or doc[0] != STATE_VERSION or len(doc) != len(STATE_FIELDS) + 1:
            raise ValueError(f"key state of another layout (version {doc[0] if isinstance(doc, list) and doc else '?'}"
                             f", this code reads {STATE_VERSION}): {text[:80]}")
        return KeyState(**{f: _DECODE[f](v) for f, v in zip(STATE_FIELDS, doc[1:])})


def _wait_codec():
    def enc(w):
        return None if w is None else [w.id, w.via, w.epoch, w.started_ms, w.deadline_ms]

    def dec(x):
        return None if x is None else Wait(*x)
    return enc, dec


def _codecs() -> tuple[tuple[str, ...], dict, dict]:
    """Per field of KeyState, how it is stored, derived from its declared type: a Wait as a list,
    a dict of Waits as a dict of lists, everything else (str, int, bool, dicts of str/int) as is."""
    import typing
    hints = typing.get_type_hints(KeyState)
    names = tuple(f.name for f in fields(KeyState) if f.name not in ("order", "held"))
    enc_w, dec_w = _wait_codec()
    enc, dec = {}, {}
    for name in names:
        t = hints[name]
        args = typing.get_args(t)
        if t == Wait | None:
            enc[name], dec[name] = enc_w, dec_w
        elif typing.get_origin(t) is dict and args[1] is Wait:
            enc[name] = lambda d, e=enc_w: {k: e(w) for k, w in d.items()}
            dec[name] = lambda d, x=dec_w: {k: x(v) for k, v in d.items()}
        else:
            enc[name] = dec[name] = lambda v: v
    return names, enc, dec


def _view_of():
    """KeyState.view compiled from its stored fields (a generator over fields costs three times as
    much, and the router runs it for every key of every call)."""
    import typing
    hints = typing.get_type_hints(KeyState)
    parts = [f"tuple(s.{f}.items())" if typing.get_origin(hints[f]) is dict else f"s.{f}" for f in STATE_FIELDS]
    return eval(f"lambda s: ({', '.join(parts)},)")  # noqa: S307 - built from the dataclass's own field names


STATE_VERSION = 3  # 3: the batched router's layout (2026-12); a change of KeyState's fields bumps it
STATE_FIELDS, _ENCODE, _DECODE = _codecs()
_VIEW = _view_of()


# ------------------------------------------------------------------ outputs
# Named tuples: one of these is made for every record routed.


class Home(NamedTuple):
    env: Envelope
    epoch: int  # routing epoch under which this region accepted it as home
    routed_at: int
    held_ms: int
    late: str | None
    source: str  # stream/shard/sequence it was read from here
    entry: str | None = None  # region/shard/sequence where it entered the system
    entered_ms: int | None = None


class Forward(NamedTuple):
    region: str
    env: Envelope
    # Drop it if this region committed its event_id (the key was homed here), unless it carries
    # `after`: the new home must see that flag.
    unless_committed: bool = False
    # An old home's answer to an acquire marker: `seen` gets this region's recent event_ids of the key.
    with_seen: bool = False


class Dead(NamedTuple):
    reason: str
    detail: str
    raw: bytes | str
    source: str


class Remember(NamedTuple):
    """Event_ids another home committed for this key (its answer to an acquire marker): from now
    on this region's dedup counts them as committed here."""
    ids: tuple[str, ...]


Out = Home | Forward | Dead | Remember


class KeyRouter:
    def __init__(self, region: str, regions: Iterable[str], max_hops: int,
                 max_record_bytes: int, ordered: bool = True, handoff_timeout_ms: int = 30_000,
                 table_wait_ms: int = 30_000,
                 count: Callable[[str, int], None] | None = None,
                 pause: Callable[[int], None] | None = None,
                 committed: Callable[[str], bool] | None = None,
                 skew_ms: int = 100, lanes_by: str = "entry"):
        self.region = region
        self.known = frozenset(regions)
        self.max_hops = max_hops
        self.max_record_bytes = max_record_bytes
        self.ordered = ordered
        self.handoff_timeout_ms = handoff_timeout_ms
        self.table_wait_ms = table_wait_ms
        self.count = count or (lambda name, n=1: None)
        self.pause = pause or (lambda ms: None)
        self.committed = committed  # event_id -> in a home table before this start (the seed)
        self.skew_ms = skew_ms
        if lanes_by not in ("entry", "origin"):
            raise ValueError(f"lanes_by must be 'entry' or 'origin', got {lanes_by!r}")
        self.by_origin = lanes_by == "origin"

    # ------------------------------------------------------------------ entry points

    def on_item(self, ks: KeyState, tables: TableHistory, item: Held, now: int) -> list[Out]:
        """A record (or marker) of this key arrived."""
        if ks.held:  # behind what already waits; the pump keeps lane order
            ks.held.append(item)
            return self.pump(ks, tables, now)
        out: list[Out] = []
        if not self._process(ks, tables, item, now, out):
            ks.held.append(item)
            self.count("holds", 1)
        return out

    def pump(self, ks: KeyState, tables: TableHistory, now: int) -> list[Out]:
        """Expire deadlines, then release held records that may go, in lane order (timers and new
        tables call this; so does every record that queues behind held ones)."""
        out: list[Out] = []
        self._expire(ks, tables, now)
        progress = True
        while progress and ks.held:
            progress = False
            blocked: set[str] = set()
            keep: list[Held] = []
            for h in ks.held:
                self._parse(h)
                lane = h.lane()
                if lane in blocked and not self._for_me(h):
                    keep.append(h)
                elif self._process(ks, tables, h, now, out):
                    progress = True
                else:
                    blocked.add(lane)
                    keep.append(h)
            ks.held = keep
        return out

    def _for_me(self, h: Held) -> bool:
        """A marker addressed here may be read ahead of its lane: it only changes this key's
        state (what came before it on its path has arrived), it emits nothing to order."""
        return isinstance(h.env, Envelope) and h.env.marker is not None and h.env.marker.to == self.region

    def next_deadline(self, ks: KeyState) -> int | None:
        ds = [w.deadline_ms for w in ks.awaiting.values()]
        if ks.acquiring:
            ds.append(ks.acquiring.deadline_ms)
        ds += [h.arrived_ms + self.table_wait_ms for h in ks.held]
        return min(ds) if ds else None

    # ------------------------------------------------------------------ one record

    def _parse(self, h: Held) -> None:
        if h.env is None:
            h.env = parse(h.raw, self.known, self.max_record_bytes)

    def _process(self, ks: KeyState, tables: TableHistory, h: Held, now: int, out: list[Out]) -> bool:
        """Route one record; False means it must wait (the caller holds it)."""
        self._parse(h)
        env = h.env
        if isinstance(env, Rejection):
            self.count(f"dead_letter_{env.reason.replace('-', '_')}", 1)
            out.append(Dead(env.reason, env.detail, h.raw, h.source))
            return True
        if env.marker is None and self.committed is not None and self.committed(env.event_id):
            self.count("replay_dropped", 1)  # a replayed record some home committed before this start
            return True
        table = tables.current
        if table is None:  # nothing is routed before the first table
            return False
        home = table.home_of(env.key)
        if env.epoch > table.epoch and (env.marker is not None or env.epoch > table.epoch + 1
                                        or home != self.region):
            # Sent under a newer table than ours, and the key may have moved: wait for it.
            if now - h.arrived_ms < self.table_wait_ms:
                return False
            self.count("dead_letter_stale_routing_table", 1)
            out.append(Dead("stale-routing-table",
                            f"routed under epoch {env.epoch}; this region still has epoch {table.epoch} "
                            f"after {self.table_wait_ms} ms", env.to_json(), h.source))
            return True
        if env.hops > 0 and env.epoch < table.epoch:
            self.count("records_stale", 1)  # routed under an older table: a move is still draining
        if env.marker is not None:
            return self._marker(ks, table, env, h, now, out)
        lane = h.lane()
        if home == self.region and self.ordered:
            self._maybe_acquire(ks, env.key, tables, now, out)
        # Hand-off waits hold lanes whatever the current home is: they keep a lane's order. The
        # old home's lane goes on, except what it sent before it knew of the move (sent when
        # this region was the key's home before: stale, ordered only once the marker is back).
        if ks.acquiring is not None and (lane != ks.acquiring.via or env.epoch < ks.acquiring.epoch):
            return False
        if env.after is not None and not self._flag_cleared(ks, env, lane, now):
            return False
        if home == self.region:
            return self._home(ks, table, env, h, now, out)
        return self._forward(ks, table, env, h, home, now, out)

    def _flag_cleared(self, ks: KeyState, env: Envelope, lane: str, now: int) -> bool:
        mid, via = env.after
        if mid in ks.markers:  # kept (aged out later): a held record may ask again
            return True
        if lane not in ks.awaiting:
            ks.awaiting[lane] = Wait(mid, via, env.epoch, now, now + self.handoff_timeout_ms)
        return False

    def _entry(self, env: Envelope, h: Held) -> Entry | None:
        """Where the record entered: here if this router read it from its ingest stream (a redrive
        enters again), else as the router that did said."""
        if h.entry is not None:  # written by the job's own reader: well formed
            region, shard, seq = h.entry.split("/")
            e = Entry(region, shard, seq, h.entered_ms, position(seq))
        else:
            e = Entry.parse(env.entry, env.entered)
        if e is not None and self.by_origin:  # the control: one sequence space per declared origin
            return Entry(env.origin, "-", e.seq, e.at, e.pos)
        return e

    def _suspect(self, ks: KeyState, env: Envelope, h: Held, table: RoutingTable) -> str | None:
        """Why the protocol cannot vouch for this record's order, as far as this router knows."""
        if env.late or h.late:
            return env.late or h.late
        me = table.regions.get(self.region)
        if me is not None and me.state == "DOWN":
            return f"stranded:{self.region}"  # a lost region's backlog, routed after it returned
        if me is not None and env.hops > 0 and env.epoch < me.lost_at:
            return f"stranded:{self.region}"  # sent here before this region was lost
        if env.via and env.via in ks.late_via:
            return ks.late_via[env.via]
        return None

    def _late(self, ks: KeyState, env: Envelope, h: Held, e: Entry | None, table: RoutingTable) -> str | None:
        """At home: why this row may be out of its key's order (the lake's `unordered`), or None."""
        suspect = self._suspect(ks, env, h, table)
        if e is not None and lanes.behind(ks.order.get(e.region), e):
            return suspect or "reordered"  # a later record of its own lane was committed first
        if ks.unverified is not None and ks.last_home == self.region:
            return f"handoff-timeout:{ks.unverified.via}"  # the old home's marks never came: cannot know
        if suspect is not None and (self.by_origin or lanes.overtaken(ks.order, e, self.skew_ms)):
            return suspect
        return None

    def _maybe_acquire(self, ks: KeyState, key: str, tables: TableHistory, now: int, out: list[Out]) -> None:
        acq = self._needs_acquire(ks, key, tables)
        if acq is None:
            return
        table = tables.current
        old, e_acq = acq
        if table.regions[old].state == "DOWN":
            # Unplanned: nobody to hand off from. Its backlog is marked when it returns.
            ks.owned_since, ks.checked = e_acq, table.epoch
            self.count("handoff_unplanned", 1)
            return
        mid = f"{self.region}:{table.epoch}"
        ks.acquiring = Wait(mid, old, e_acq, now, now + self.handoff_timeout_ms)
        m = Marker(mid, self.region, old, self.region, acquire=True)
        out.append(Forward(old, marker_envelope(key, m, now, table.epoch).forwarded(table.epoch, via=self.region)))
        self.count("handoff_started", 1)

    def _home(self, ks, table: RoutingTable, env: Envelope, h: Held, now: int, out: list[Out]) -> bool:
        ks.homed, ks.last_home = True, self.region
        e = self._entry(env, h)
        late = self._late(ks, env, h, e, table)
        if e is not None:
            ks.order[e.region] = lanes.advance(ks.order.get(e.region), e)
        if late:
            self.count("records_late", 1)
        out.append(Home(env, table.epoch, now, now - h.arrived_ms, late, h.source,
                        h.entry or env.entry, h.entered_ms if h.entry else env.entered))
        return True

    def _forward(self, ks, table: RoutingTable, env: Envelope, h: Held, home: str, now: int,
                 out: list[Out]) -> bool:
        if env.hops > 0 and env.epoch == table.epoch:
            # The sender had our epoch and still sent it here: two different tables carry one
            # epoch (two editors wrote concurrently). Bouncing it would loop.
            self.count("dead_letter_routing_conflict", 1)
            out.append(Dead("routing-conflict", f"sent here at epoch {env.epoch}, but home is {home} "
                            f"at the same epoch here", env.to_json(), h.source))
            return True
        if env.hops >= self.max_hops:
            self.count("dead_letter_routing_conflict", 1)
            out.append(Dead("routing-conflict",
                            f"hop limit {self.max_hops} reached; home here is {home} at epoch {table.epoch}",
                            env.to_json(), h.source))
            return True
        ks.owned_since = ks.checked = 0
        after = None
        if self.ordered and ks.last_home not in ("", self.region, home) \
                and table.regions[ks.last_home].state != "DOWN":
            mid = f"{self.region}:{table.epoch}"
            m = Marker(mid, self.region, ks.last_home, home)
            out.append(Forward(ks.last_home, marker_envelope(env.key, m, now, table.epoch)
                               .forwarded(table.epoch, via=self.region)))
            after = (mid, ks.last_home)
            self.count("markers_sent", 1)
        ks.last_home = home
        self.count(f"records_forwarded_{home.replace('-', '_')}", 1)
        late = self._suspect(ks, env, h, table)
        # Committed here while the key was homed here? The runtime's dedup drops it then.
        out.append(Forward(home, env.forwarded(table.epoch, via=self.region, after=after, late=late,
                                               entry=h.entry, entered=h.entered_ms), unless_committed=ks.homed))
        return True

    def _marker(self, ks, table: RoutingTable, env: Envelope, h: Held, now: int, out: list[Out]) -> bool:
        m = env.marker
        if m.to != self.region:
            # On the old path: pass it on behind everything this region routed for the key.
            if env.hops >= self.max_hops or table.regions[m.to].state == "DOWN":
                self.count("markers_dropped", 1)  # its waiter times out, bounded
                return True
            order = lanes.marks_text(ks.order) if (m.acquire and ks.order) else None
            self.count("markers_forwarded", 1)
            out.append(Forward(m.to, env.forwarded(table.epoch, via=self.region, order=order),
                               with_seen=m.acquire and ks.homed))
            return True
        ks.markers[m.id] = now
        if env.via:
            ks.late_via.pop(env.via, None)  # that path is drained now
        if ks.acquiring is not None and ks.acquiring.id == m.id:
            self._take_over(ks, env, out)
            self._done(ks.acquiring, now)
            # Verified through the epoch it moved here; later epochs are checked on the next record.
            ks.owned_since = ks.checked = ks.acquiring.epoch
            ks.acquiring = None
            del ks.markers[m.id]
        elif ks.unverified is not None and ks.unverified.id == m.id:
            self._take_over(ks, env, out)  # late, but from now on duplicates and order are checked again
            ks.unverified = None
        for lane, w in list(ks.awaiting.items()):
            if w.id == m.id:
                self._done(w, now)
                del ks.awaiting[lane]
        for mid, at in list(ks.markers.items()):  # forget markers nobody will ask for
            if at >= 0 and now - at > MARKER_MEMORY_MS:
                del ks.markers[mid]
        return True

    def _take_over(self, ks: KeyState, env: Envelope, out: list[Out]) -> None:
        """Merge what the old home answered: its recent event_ids and its marks per entry lane."""
        if env.seen:
            out.append(Remember(env.seen))
        for lane, mark in (env.order or {}).items():
            merged = lanes.merge(ks.order.get(lane), mark)
            if merged is not None:
                ks.order[lane] = merged

    def _done(self, w: Wait, now: int) -> None:
        self.count("handoff_completed", 1)
        self.pause(now - w.started_ms)

    def _needs_acquire(self, ks: KeyState, key: str, tables: TableHistory) -> tuple[str, int] | None:
        """(old home, epoch the key moved here) if this region must take the key over first."""
        cur = tables.current
        if ks.acquiring is not None or ks.checked >= cur.epoch:
            return None
        old, e_acq = None, cur.epoch
        for t in tables.newest_first():
            if ks.owned_since and t.epoch <= ks.checked:
                break  # verified before: still ours since then
            h = t.home_of(key)
            if h != self.region:
                old = h
                break
            e_acq = t.epoch
        if old is None or old not in cur.regions:
            if not ks.owned_since:
                ks.owned_since = e_acq
            ks.checked = cur.epoch
            return None
        return old, e_acq

    def _expire(self, ks: KeyState, tables: TableHistory, now: int) -> None:
        """Give up waits past their deadline. What they held goes on marked late, and so does what
        later comes through the old path: nobody vouches for its order any more."""
        for lane, w in list(ks.awaiting.items()):
            if now >= w.deadline_ms:
                del ks.awaiting[lane]
                ks.markers[w.id] = -1  # given up: the flagged record may go
                reason = f"handoff-timeout:{w.via}"
                ks.late_via[w.via] = reason
                for h in ks.held:
                    self._parse(h)
                    if h.lane() == lane:
                        h.late = h.late or reason
                self.count("handoff_timeouts", 1)
                self.pause(now - w.started_ms)
        a = ks.acquiring
        if a is not None and now >= a.deadline_ms:
            ks.acquiring, ks.unverified = None, a
            ks.owned_since = ks.checked = a.epoch
            reason = f"handoff-timeout:{a.via}"
            ks.late_via[a.via] = reason
            for h in ks.held:
                self._parse(h)
                if h.lane() != a.via:
                    h.late = h.late or reason
            self.count("handoff_timeouts", 1)
            self.pause(now - a.started_ms)

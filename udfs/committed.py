"""The dedup by event_id, as the runtime applies it to the router's outputs (udfs/handoff.py).

In the job this is `dev.homeflow.flink.CommittedEventDedup`, a Java keyed operator right after the
Python router (the one piece of router state that is a plain lookup, so it stays out of the
per-record Python path). This module is the same rule in Python, for the simulator and unit tests
(tests/unit/handoff_sim.py), so that what they prove is the protocol as the job runs it:

* a `Home` is committed unless this region committed its event_id for the key; then it is recorded;
* a `Forward` marked `unless_committed` is dropped when the event_id is recorded, except one that
  carries `after` (the new home must see that flag; its own dedup holds the old homes' recent ids);
* a `Forward` marked `with_seen` (an old home answering an acquire marker) gets the key's most
  recent `MAX_SEEN_IDS` event_ids in its `seen`;
* `Remember` records event_ids another home committed (a hand-over).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from udfs.envelope import MAX_SEEN_IDS
from udfs.handoff import Forward, Home, Out, Remember


class CommittedIds:
    """Per business key: event_id -> when it was recorded."""

    def __init__(self):
        self.by_key: dict[str, dict[str, int]] = defaultdict(dict)

    def recent(self, key: str, n: int = MAX_SEEN_IDS) -> tuple[str, ...]:
        ids = self.by_key.get(key, {})
        return tuple(e for e, _ in sorted(ids.items(), key=lambda kv: kv[1])[-n:])

    def apply(self, key: str, outs: list[Out], now: int) -> list[Out]:
        """The outputs that leave, in order, after the dedup."""
        ids = self.by_key[key]
        kept: list[Out] = []
        for o in outs:
            if isinstance(o, Home):
                if o.env.event_id in ids:
                    continue
                ids[o.env.event_id] = now
            elif isinstance(o, Forward):
                if o.unless_committed and o.env.after is None and o.env.event_id in ids:
                    continue
                if o.with_seen:
                    o = o._replace(env=replace(o.env, seen=self.recent(key)), with_seen=False)
            elif isinstance(o, Remember):
                for e in o.ids:
                    ids.setdefault(e, now)
                continue
            kept.append(o)
        return kept

"""The homeflow job with its router replaced by less: what a Python keyed operator costs in PyFlink
before any routing (scripts/bench_capacity.py --floor). Not a product; a measuring stick.

    python scripts/capacity_floor_job.py --level emit|dedup|state3|batched --region R --properties P

Same graph, sources, key_by, connect to the routing feed, Java splitter and Iceberg sink as
jobs.ingest; for the first three levels the router is one per-record keyed broadcast function (as
the job's was before the batched router) that does only this:

* emit: parse the envelope (udfs.envelope.parse), emit its home row. No state.
* dedup: the same, plus the router's dedup (MapState contains + put of the event_id).
* state3: the same, plus the router's per-origin high-water put: the three keyed-state calls the
  router makes for a home record.
* batched: the job's own batched graph (Java batcher, unpacker, dedup, splitter), with a Python
  function per key-group batch that only parses each envelope (udfs.envelope.parse) and writes its
  home entry (udfs.batch_codec): no routing, no keyed state. What the batched design costs before
  any routing decision: the floor of the job as it stands.

Defined here (a script, pickled by value) so jobs/ holds only the product.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyflink.common import Types  # noqa: E402
from pyflink.datastream.functions import KeyedBroadcastProcessFunction  # noqa: E402
from pyflink.datastream.state import MapStateDescriptor  # noqa: E402

LEVELS = ("emit", "dedup", "state3", "batched")


class FloorRouter(KeyedBroadcastProcessFunction):
    def __init__(self, settings_doc: dict, level: str):
        self.settings_doc, self.level = settings_doc, level

    def open(self, ctx):
        from conf.settings import settings_from_groups
        s = settings_from_groups(self.settings_doc)
        self.region, self.known, self.max_bytes = s.job.region, frozenset(s.job.regions), s.job.max_record_bytes
        self.seen = ctx.get_map_state(MapStateDescriptor("seen", Types.STRING(), Types.LONG()))
        self.order = ctx.get_map_state(MapStateDescriptor("order", Types.STRING(), Types.STRING()))

    def process_broadcast_element(self, value, ctx):
        return []

    def process_element(self, value, ctx):
        from jobs import rows
        from udfs.envelope import parse
        env = parse(bytes(value[3]), self.known, self.max_bytes)
        now = int(time.time() * 1000)
        if self.level != "emit":
            if self.seen.contains(env.event_id):
                return
            self.seen.put(env.event_id, now)
            if self.level == "state3":
                self.order.put(env.origin, f"{value[1]}/{value[2]}")
        yield rows.home_row(env, 0, self.region, rows.source_of(value), now, 0, None)


class FloorBatchRouter(KeyedBroadcastProcessFunction):
    def __init__(self, settings_doc: dict):
        self.settings_doc = settings_doc

    def open(self, ctx):
        from conf.settings import settings_from_groups
        s = settings_from_groups(self.settings_doc)
        self.region, self.known, self.max_bytes = s.job.region, frozenset(s.job.regions), s.job.max_record_bytes

    def process_broadcast_element(self, value, ctx):
        return []

    def process_element(self, batch, ctx):
        from udfs import batch_codec
        from udfs.envelope import Rejection, parse
        from udfs.handoff import Dead, Home
        now = int(time.time() * 1000)
        entries = []
        for rec in batch_codec.records(batch):
            env = parse(rec.raw, self.known, self.max_bytes)
            o = Dead(env.reason, env.detail, rec.raw, rec.source) if isinstance(env, Rejection) else \
                Home(env, 0, now, now - rec.read_ms, None, rec.source, rec.entry, rec.arrived)
            entries.append(batch_codec.entry(rec.key, o, self.region, now))
        if entries:
            yield batch_codec.encode(entries)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Every other option is jobs.ingest's.")
    p.add_argument("--level", choices=LEVELS, required=True)
    a, rest = p.parse_known_args()
    from jobs import graph, ingest, rows
    from connectors.kinesis import key_by_business_key
    from jobs.functions import ROUTING_STATE

    if a.level == "batched":  # the job's own graph.route, with the floor function in the router's place
        graph.BatchRouterFunction = FloorBatchRouter
        print("capacity floor job: router replaced by level 'batched'", flush=True)
        return ingest.main(rest)

    def route(records, tables, settings, doc):
        return (key_by_business_key(records).connect(tables.broadcast(ROUTING_STATE))
                .process(FloorRouter(doc, a.level), output_type=rows.ROUTED).uid("router").name("router"))
    graph.route = route
    print(f"capacity floor job: router replaced by level {a.level!r}", flush=True)
    return ingest.main(rest)


if __name__ == "__main__":
    sys.exit(main())

"""The local demo: sandbox up, one job per region on its own minicluster, events into every
region's ingest stream, wait until each event is committed in its home table, print a summary,
shut everything down."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from conf.settings import Settings, load
from connectors import routing_control
from sandbox import services as sandbox
from sandbox.jobrunner import JobProcess, await_canaries, start_job, wait_until
from connectors import lake
from connectors.producer import decode, events, put, read_stream


def _visible(settings: Settings, regions: list[str]) -> dict[str, dict[str, int]]:
    """event_id -> ts, per home table."""
    out = {}
    for r in regions:
        t = lake.read_rows(settings, r, ("event_id", "ts"))
        out[r] = dict(zip(t["event_id"].to_pylist(), t["ts"].to_pylist()))
    return out


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def run(args) -> int:
    settings = load(args.properties)
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    unknown = set(regions) - set(settings.job.regions)
    if unknown:
        raise SystemExit(f"--regions: {', '.join(sorted(unknown))} not in homeflow.job/regions")
    jobs: list[JobProcess] = []
    t_start = time.monotonic()
    try:
        print("[1/6] sandbox up", flush=True)
        sandbox.up(settings, Path(args.properties))
        routing_control.wait_replicated(settings, 1)
        states = {r: ("ACTIVE" if r in regions else "DOWN") for r in settings.job.regions}
        table = routing_control.remap(settings, states, {})
        routing_control.wait_replicated(settings, table.epoch)
        print(f"      routing epoch {table.epoch}: " + ", ".join(f"{r}={s}" for r, s in states.items()), flush=True)
        before = _visible(settings, regions)

        print(f"[2/6] starting {len(regions)} jobs (logs in .sandbox/logs/)", flush=True)
        for r in regions:
            jobs.append(start_job(r, Path(args.properties)))

        print("[3/6] waiting for every job to commit a canary event", flush=True)
        await_canaries(settings, table, regions, jobs, args.timeout)
        print(f"      jobs committing after {time.monotonic() - t_start:.0f}s", flush=True)

        print(f"[4/6] producing {args.events} events per region over {args.keys} keys", flush=True)
        seed = int(time.time())
        expected: dict[str, tuple[str, int]] = {}  # event_id -> (home, ts)
        produced_at = time.time()
        for r in regions:
            evs = list(events(r, args.events, args.keys, seed))
            res = put(settings, r, [(e.key, e.to_json().encode()) for e in evs])
            for e in evs:
                expected[e.event_id] = (table.home_of(e.key), e.ts)
            print(f"      {r}: {res.sent} events in {res.seconds:.2f}s", flush=True)

        print("[5/6] waiting until every event is committed in its home table", flush=True)
        first_seen: dict[str, float] = {}

        def all_seen() -> bool:
            now_ms = time.time() * 1000
            vis = _visible(settings, regions)
            for home, ids in vis.items():
                for eid in ids:
                    if eid in expected and eid not in first_seen:
                        first_seen[eid] = now_ms
            print(f"      committed {len(first_seen)}/{len(expected)}", flush=True)
            return len(first_seen) == len(expected)

        wait_until(all_seen, args.timeout, 2.0, jobs, "all events committed")
        done_at = time.time()
        vis = _visible(settings, regions)

        print("[6/6] summary", flush=True)
        rows_added = {r: len(vis[r]) - len(before[r]) for r in regions}
        misplaced = sum(1 for eid, (home, _) in expected.items() if eid not in vis.get(home, {}))
        dupes = sum(1 for r in regions for eid in vis[r] if eid in expected and expected[eid][0] != r)
        lags = [first_seen[eid] - ts for eid, (_, ts) in expected.items()]
        print(f"\n{'region':12} {'events in':>10} {'home here':>10} {'rows added':>11} {'dead letters':>13}  forwarded to")
        for r in regions:
            fwd = Counter()
            for dst in regions:
                if dst != r:
                    fwd[dst] = sum(1 for d in decode(read_stream(settings, dst, settings.streams.forward))
                                   if d.get("origin") == r and d["event_id"] in expected)
            dl = len(read_stream(settings, r, settings.streams.dead_letter))
            home_here = sum(1 for home, _ in expected.values() if home == r)
            print(f"{r:12} {args.events:>10} {home_here:>10} {rows_added[r]:>11} {dl:>13}  "
                  + ", ".join(f"{d}: {n}" for d, n in sorted(fwd.items())))
        total = len(expected)
        span = done_at - produced_at
        print(f"\nevents: {total}, each in its home table exactly once: "
              f"{'yes' if misplaced == 0 and dupes == 0 else f'NO ({misplaced} missing, {dupes} misplaced)'}")
        print(f"end-to-end lag (produce -> visible to a reader, polled every 2 s): "
              f"p50 {pct(lags, 50) / 1000:.1f}s  p95 {pct(lags, 95) / 1000:.1f}s  max {max(lags) / 1000:.1f}s "
              f"(checkpoint interval {settings.job.checkpoint_interval_ms / 1000:.1f}s)")
        print(f"throughput: {total / span:.0f} events/s from first produce to last commit "
              f"({span:.1f}s); total demo time {time.monotonic() - t_start:.0f}s")
        return 0 if misplaced == 0 and dupes == 0 else 1
    finally:
        for j in jobs:
            j.stop()
        if not args.keep:
            stopped = sandbox.stop(settings)
            print("sandbox down" + (f" ({', '.join(stopped)})" if stopped else ""), flush=True)

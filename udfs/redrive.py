"""What to do with each dead letter a person asks to send again (`homeflow dead-letters redrive`).

A dead letter goes back into the ingest stream of its region only when it would now be accepted:
it parses as an envelope (the router applies the same check), and its event_id is not already
committed in some home table (then the job would drop it anyway: reported as skipped, so a
second redrive of the same file says it did nothing). Everything else is refused with the reason
the router would give.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Iterable

from udfs.envelope import Envelope, Rejection, parse


@dataclass(frozen=True)
class Decision:
    action: str  # send | skip | refuse
    why: str
    region: str
    key: str | None
    event_id: str | None
    data: bytes


def original(record: dict) -> bytes:
    """The bytes of an archived (or exported, possibly hand-fixed) dead letter."""
    if record.get("raw_encoding", "utf-8") == "base64":
        return base64.b64decode(record["raw"])
    return str(record["raw"]).encode("utf-8")


def decide(records: Iterable[dict], regions: Iterable[str], max_record_bytes: int,
           committed: set[str]) -> list[Decision]:
    """One decision per record, in order. Two records with one event_id are sent once."""
    known = frozenset(regions)
    sending: set[str] = set()
    out = []
    for rec in records:
        region = rec.get("region")
        data = original(rec)
        if region not in known:
            out.append(Decision("refuse", f"region {region!r} is not configured", str(region), None, None, data))
            continue
        env = parse(data, known, max_record_bytes)
        if isinstance(env, Rejection):
            out.append(Decision("refuse", f"{env.reason}: {env.detail}", region, None, None, data))
        elif env.marker is not None:
            out.append(Decision("refuse", "a hand-off marker: the router sends its own", region, env.key, None, data))
        elif env.event_id in committed:
            out.append(Decision("skip", "already committed", region, env.key, env.event_id, data))
        elif env.event_id in sending:
            out.append(Decision("skip", "sent above in this redrive", region, env.key, env.event_id, data))
        else:
            sending.add(env.event_id)
            if env.hops or env.via or env.after or env.entry or env.epoch:
                # a routing conflict's forwarded envelope: the event enters again as a producer wrote it
                data = Envelope(env.event_id, env.key, env.ts, env.origin, payload=env.payload).to_json().encode()
            out.append(Decision("send", "parses now", region, env.key, env.event_id, data))
    return out

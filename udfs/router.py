"""The home-region decision for one parsed record."""
from __future__ import annotations

from dataclasses import dataclass

from udfs.envelope import Envelope
from udfs.routing_table import RoutingTable

HOME = "home"
FORWARD = "forward"
REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # HOME | FORWARD | REJECT
    region: str = ""  # destination for FORWARD
    reason: str = ""  # for REJECT
    detail: str = ""


def decide(env: Envelope, table: RoutingTable, local_region: str, max_hops: int) -> Decision:
    home = table.home_of(env.key)
    if home == local_region:
        return Decision(HOME, local_region)
    # A forwarded record that we think belongs elsewhere: the sender routed it with `env.epoch`.
    # Re-forwarding is safe only if our table is strictly newer; otherwise two regions disagree
    # under the same (or our older) view, and bouncing it back could loop.
    if env.hops >= max_hops:
        return Decision(REJECT, reason="routing-conflict",
                        detail=f"hop limit {max_hops} reached; home here is {home} at epoch {table.epoch}")
    if env.hops > 0 and table.epoch <= env.epoch:
        return Decision(REJECT, reason="routing-conflict",
                        detail=f"sent here at epoch {env.epoch}, but home is {home} at epoch {table.epoch}")
    return Decision(FORWARD, home)

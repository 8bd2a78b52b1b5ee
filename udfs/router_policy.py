"""What a regional router decides besides one key's fate (udfs/handoff.py decides that): when it
may route at all after a start, which dead letters a start without state must not write again,
and the clock behind its acknowledgements. Plain Python, so the simulator (tests/unit/
handoff_sim.py) runs it as the job does.
"""
from __future__ import annotations

from typing import Callable

from udfs.routing_table import TableHistory

NO_TABLE = TableHistory()


class RouterPolicy:
    def __init__(self, opened_ms: int, routing_poll_ms: int,
                 dead_lettered: Callable[[str], bool] | None = None):
        """`dead_lettered(source)`: the record at that position is in this region's dead-letter
        stream already (the seed of a start without state, connectors/lake_seed.py)."""
        self.opened_ms = opened_ms
        # After any start the table restored from a checkpoint may be old (a region returning from
        # a loss would route its backlog as if nothing had moved): route only with a table read
        # since this start, or after this long with the restored one (DynamoDB gone).
        self.fresh_wait_ms = max(5_000, 5 * routing_poll_ms)
        self.fresh = False
        self.dead_lettered = dead_lettered
        self.stale_at = 0  # when a record routed under an older epoch was last seen (a move draining)

    def table_read(self) -> None:
        self.fresh = True

    def tables(self, history: TableHistory, now: int) -> TableHistory:
        """The tables to route with now: none until a fresh one came (or the wait is over)."""
        if self.fresh or now - self.opened_ms >= self.fresh_wait_ms:
            return history
        return NO_TABLE

    def write_dead_letter(self, source: str) -> bool:
        """False for a record dead-lettered before this start (a replay reads it again)."""
        return self.dead_lettered is None or not self.dead_lettered(source)

    def counted(self, name: str, now: int) -> None:
        """The router's counters pass through here: a stale record restarts the settle clock."""
        if name == "records_stale":
            self.stale_at = now

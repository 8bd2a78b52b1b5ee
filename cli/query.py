"""Lake summaries through the DynamoDB catalog (pyiceberg)."""
from __future__ import annotations

import pyarrow.compute as pc

from conf.settings import Settings
from connectors import lake


def summary(settings: Settings, home_regions: list[str]) -> list[dict]:
    out = []
    for region in home_regions:
        table = lake.load_table(settings, region)
        rows = lake.read_rows(settings, region, ("event_id", "key"))
        out.append({
            "table": ".".join(lake.identifier(settings, region)),
            "home": region,
            "rows": rows.num_rows,
            "keys": len(pc.unique(rows["key"])) if rows.num_rows else 0,
            "distinct_event_ids": len(pc.unique(rows["event_id"])) if rows.num_rows else 0,
            "snapshots": len(table.metadata.snapshots) if table is not None else 0,
        })
    return out


def drill_rows(settings: Settings, home_regions: list[str], run_id: str) -> list[dict]:
    """A drill's rows per home table (its event_ids start with its run id), and the statement
    that deletes them with any Iceberg engine that deletes rows (Athena, Spark SQL, Flink SQL)."""
    out = []
    for region in home_regions:
        rows = lake.read_rows(settings, region, ("event_id",))
        n = (pc.sum(pc.starts_with(rows["event_id"], f"{run_id}-")).as_py() or 0) if rows.num_rows else 0
        table = ".".join(lake.identifier(settings, region))
        out.append({"table": table, "home": region, "rows": n,
                    "delete": f"DELETE FROM {table} WHERE event_id LIKE '{run_id}-%'"})
    return out

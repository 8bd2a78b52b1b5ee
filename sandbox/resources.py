"""Provision what the regional jobs need in every sandbox region: the stacks of infra/ (streams,
buckets, tables; sandbox/stacks.py), then the data a deployment starts with: the routing table's
first version and each home's Iceberg table. Idempotent."""
from __future__ import annotations

from conf.settings import Settings
from connectors import lake
from connectors.routing_store import RoutingStore
from sandbox import kinesis_mock, stacks
from udfs.routing_table import default_table


def create_resources(settings: Settings) -> dict[str, list[str]]:
    made = stacks.provision(settings)
    for region, lines in kinesis_mock.mirror_streams(settings).items():  # no-op unless kinesis-mock
        made[region] += lines
    stacks.verify(settings)
    for region in settings.job.regions:
        out = made[region]
        store = RoutingStore(settings, region)
        # The routing table is a global table: its first version is written in one region (the
        # control region, homeflow.job/region) and replicated, as every later change is.
        if region == settings.job.region and store.read_raw() is None:
            store.write(default_table(list(settings.job.regions)))
            out.append(f"routing table {settings.job.routing_table} (epoch 1)")
        t = lake.load_table(settings, region)
        if t is None:
            lake.ensure_table(settings, region)
            out.append(f"iceberg table {'.'.join(lake.identifier(settings, region))}")
        elif lake.missing_columns(t):
            cols = lake.missing_columns(t)
            lake.evolve(t)
            out.append(f"iceberg table columns {', '.join(cols)}")
        if lake.load_dead_letter_table(settings, region) is None:
            lake.ensure_dead_letter_table(settings, region)
            out.append(f"iceberg table {'.'.join(lake.dead_letter_identifier(settings, region))}")
    return made

"""A local multi-region setup on one port: the sandbox, the routing table, regional jobs. Used by
the tests and the benchmarks (the demo predates it and keeps its own narration)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from cli import routes, sandbox
from cli.jobrunner import start_job, wait_until
from cli.paths import LOCAL_PROPERTIES
from cli.produce import put
from conf.settings import load
from connectors import lake
from udfs.envelope import Envelope


def write_properties(path: Path, port: int, **job_overrides: str) -> Path:
    doc = json.loads(LOCAL_PROPERTIES.read_text())
    for g in doc:
        if g["PropertyGroupId"] == "homeflow.aws":
            g["PropertyMap"]["endpoint"] = f"http://127.0.0.1:{port}"
        if g["PropertyGroupId"] == "homeflow.job":
            g["PropertyMap"].update({"checkpoint.interval.ms": "1000", **job_overrides})
    path.write_text(json.dumps(doc, indent=2))
    return path


class Sandbox:
    def __init__(self, root: Path, port: int, active: list[str]):
        self.root = root
        self.properties = write_properties(root / "application_properties.json", port)
        self.settings = load(self.properties)
        self.state = root / "sandbox"
        self.active = active
        self.jobs = []

    def up(self):
        sandbox.start(self.settings, self.state)
        sandbox.create_resources(self.settings)
        states = {r: ("ACTIVE" if r in self.active else "DOWN") for r in self.settings.job.regions}
        self.table = routes.remap(self.settings, states, {})
        return self

    def start_jobs(self, regions, rest_ports: dict[str, int] | None = None):
        for r in regions:
            extra = ["--rest-port", str(rest_ports[r])] if rest_ports and r in rest_ports else []
            self.jobs.append(start_job(r, self.properties, self.root / "logs", extra_args=extra))
        # A canary per region, homed there, proves the job reads, routes and commits.
        canaries = {}
        for r in regions:
            key = next(f"canary-{i}" for i in range(10_000) if self.table.home_of(f"canary-{i}") == r)
            eid = f"canary-{r}-{time.time_ns()}"
            canaries[r] = eid
            e = Envelope(eid, key, int(time.time() * 1000), r, payload={"canary": True})
            put(self.settings, r, [(key, e.to_json().encode())])
        wait_until(lambda: all(canaries[r] in self.lake_ids(r) for r in regions), 240, 1.0, self.jobs,
                   "canary commits")

    def clients_ddb(self, region):
        from connectors import aws
        return aws.client("dynamodb", region, self.settings.aws)

    def lake_ids(self, region) -> list[str]:
        return lake.read_rows(self.settings, region, ("event_id",))["event_id"].to_pylist()

    def down(self):
        for j in self.jobs:
            j.stop()
        sandbox.stop(self.settings, self.state)

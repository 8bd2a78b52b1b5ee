"""A local multi-region setup on one port: the sandbox, the routing table, regional jobs. Used by
the tests and the benchmarks (the demo predates it and keeps its own narration)."""
from __future__ import annotations

import json
from pathlib import Path

from cli import routes, sandbox
from cli.jobrunner import await_canaries, start_job
from cli.paths import LOCAL_PROPERTIES
from conf.settings import load
from connectors import lake


def write_properties(path: Path, port: int, **job_overrides: str) -> Path:
    doc = json.loads(LOCAL_PROPERTIES.read_text())
    for g in doc:
        if g["PropertyGroupId"] == "homeflow.aws":
            g["PropertyMap"]["endpoint"] = f"http://127.0.0.1:{port}"
        if g["PropertyGroupId"] == "homeflow.job":
            g["PropertyMap"].update({"checkpoint.interval.ms": "1000", "lake.stats.interval.ms": "2000", **job_overrides})
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
        await_canaries(self.settings, self.table, regions, self.jobs, 240)

    def clients_ddb(self, region):
        from connectors import aws
        return aws.client("dynamodb", region, self.settings.aws)

    def lake_ids(self, region) -> list[str]:
        return lake.read_rows(self.settings, region, ("event_id",))["event_id"].to_pylist()

    def down(self):
        for j in self.jobs:
            j.stop()
        sandbox.stop(self.settings, self.state)

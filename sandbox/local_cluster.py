"""A local multi-region setup on one port: the sandbox (emulator, region gate, replicators), the
routing table, regional jobs. Used by the tests, the benchmarks and the drills."""
from __future__ import annotations

import json
from pathlib import Path

from conf.settings import load
from connectors import lake, routing_control
from connectors.lake import CommittedIds
from sandbox import services
from sandbox.jobrunner import await_canaries, start_job
from sandbox.paths import LOCAL_PROPERTIES
from udfs.routing_table import RoutingTable


def write_properties(path: Path, port: int, checkpoint_dir: Path | None = None, lake: dict[str, str] | None = None,
                     **job_overrides: str) -> Path:
    """The local properties, pointed at a sandbox on `port`, with fast checkpoints and, unless
    given, checkpoints kept next to `path` (never the developer's .sandbox/). `lake` overrides keys
    of homeflow.lake, `job_overrides` keys of homeflow.job."""
    doc = json.loads(LOCAL_PROPERTIES.read_text())
    ckpt = checkpoint_dir or path.parent / "checkpoints"
    for g in doc:
        if g["PropertyGroupId"] == "homeflow.aws":
            g["PropertyMap"]["endpoint"] = f"http://127.0.0.1:{port}"
        if g["PropertyGroupId"] == "homeflow.job":
            g["PropertyMap"].update({"checkpoint.interval.ms": "1000", "lake.stats.interval.ms": "2000",
                                     "checkpoint.dir": str(ckpt), **job_overrides})
        if g["PropertyGroupId"] == "homeflow.lake":
            g["PropertyMap"].update(lake or {})
    path.write_text(json.dumps(doc, indent=2))
    return path


def with_job_overrides(properties: Path, path: Path, **job_overrides: str) -> Path:
    """A copy of `properties` at `path` with keys of homeflow.job changed (a control's settings)."""
    doc = json.loads(properties.read_text())
    for g in doc:
        if g["PropertyGroupId"] == "homeflow.job":
            g["PropertyMap"].update(job_overrides)
    path.write_text(json.dumps(doc, indent=2))
    return path


def with_key(properties: Path, path: Path, key: str) -> Path:
    """A copy of `properties` at `path` signing with access key `key` (its calls told apart in the
    emulator's call record)."""
    doc = json.loads(properties.read_text())
    for g in doc:
        if g["PropertyGroupId"] == "homeflow.aws":
            g["PropertyMap"].update({"access.key.id": key, "secret.access.key": "job"})
    path.write_text(json.dumps(doc, indent=2))
    return path


class Sandbox:
    def __init__(self, root: Path, port: int, active: list[str], replicate: bool = True,
                 ddb_lag: float = services.DEFAULT_DDB_LAG_S, s3_lag: float = services.DEFAULT_S3_LAG_S,
                 job_key: str | None = None, lake: dict[str, str] | None = None, kinesis: str | None = None,
                 **job_overrides: str):
        self.root = root = root.resolve()
        root.mkdir(parents=True, exist_ok=True)
        self.properties = write_properties(root / "application_properties.json", port, lake=lake, **job_overrides)
        self.settings = load(self.properties)
        # job_key: each region's job signs with its own access key (f"{job_key}-{region}"), as a
        # deployed job signs with its region's role and an operator with their own credentials, so
        # the emulator's call record (sandbox.api_calls) tells them apart.
        self.job_key = job_key
        self.state = root / "sandbox"
        self.active = active
        self.replicate, self.ddb_lag, self.s3_lag = replicate, ddb_lag, s3_lag
        self.kinesis = kinesis  # "kinesis-mock": Kinesis that reshards (sandbox/kinesis_mock.py)
        self.jobs = []
        self._committed = CommittedIds(self.settings)  # remembers the files it read (`lake` is a parameter here)

    def up(self):
        services.up(self.settings, self.properties, self.state, self.replicate, self.ddb_lag, self.s3_lag,
                    kinesis=self.kinesis)
        if self.replicate:  # the replicator copies the first table everywhere; wait for it
            routing_control.wait_replicated(self.settings, 1)
        states = {r: ("ACTIVE" if r in self.active else "DOWN") for r in self.settings.job.regions}
        self.table = self.set_table(routing_control.changed(self.settings, states, {}))
        return self

    def set_table(self, table: RoutingTable) -> RoutingTable:
        """Store a routing table as the control plane does (one region, replicated) and wait until
        every region's replica has it; without the replicator, write every region."""
        if self.replicate:
            routing_control.write(self.settings, table)
            routing_control.wait_replicated(self.settings, table.epoch)
        else:
            for r in self.settings.job.regions:
                routing_control.write(self.settings, table, r)
        return table

    def start_jobs(self, regions, rest_ports: dict[str, int] | None = None, extra_args: list[str] | None = None):
        for r in regions:
            extra = ["--rest-port", str(rest_ports[r])] if rest_ports and r in rest_ports else []
            props, env = self.properties, None
            if self.job_key:
                key = self.job_key_of(r)
                props = with_key(self.properties, self.root / f"job_properties-{r}.json", key)
                env = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": "job"}
            self.jobs.append(start_job(r, props, self.root / "logs", extra_args=extra + (extra_args or []),
                                       env_extra=env))
        await_canaries(self.settings, self.table, regions, self.jobs, 240)

    def job_key_of(self, region: str) -> str:
        return f"{self.job_key}-{region}"

    def clients_ddb(self, region):
        from connectors import aws
        return aws.client("dynamodb", region, self.settings.aws)

    def lake_ids(self, region) -> list[str]:
        return lake.read_rows(self.settings, region, ("event_id",))["event_id"].to_pylist()

    def committed_ids(self, *regions: str) -> set[str]:
        """The event_ids committed in the regions' home tables, read incrementally: for polling
        while waiting. Assertions use `lake_ids`, a whole scan."""
        return {i for r in regions for i in self._committed(r)}

    # A drill's world (drills/world.py): the region gate makes a region unreachable for real.
    def lose(self, region: str) -> None:
        services.lose(self.settings, region)

    def restore(self, region: str) -> None:
        services.restore(self.settings, region)

    def down_regions(self) -> list[str]:
        return services.down_regions(self.settings)

    def down(self):
        for j in self.jobs:
            j.stop()
        services.stop(self.settings, self.state)

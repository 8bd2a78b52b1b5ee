"""Where a drill runs: its own fresh sandbox (sandbox/local_cluster.Sandbox, which it creates and
removes) or a deployment it did not create (`Deployment`: the regions, streams, tables and
applications a properties file names, which it only uses).

A scenario needs of its world: the settings, the event_ids committed so far, and a way to lose a
region and bring it back. On the sandbox the region gate makes the region unreachable for real;
on a deployment no region can be cut off, so a loss is the drill's own view: the lost region's
application is force-stopped (drills/backends.py), its drill producers switch to the survivor,
and the control plane is written in the survivor, as it would be in a real loss.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from conf.settings import Settings, load
from connectors import routing_control
from connectors.lake import CommittedIds


class World(Protocol):
    settings: Settings
    properties: Path

    def committed_ids(self, *regions: str) -> set[str]: ...

    def lose(self, region: str) -> None: ...

    def restore(self, region: str) -> None: ...

    def down_regions(self) -> list[str]: ...

    def down(self) -> None: ...


class Deployment:
    def __init__(self, properties: Path):
        self.properties = properties
        self.settings = load(properties)
        self.table = routing_control.latest(self.settings)
        self.lost: set[str] = set()
        self._committed = CommittedIds(self.settings)

    def committed_ids(self, *regions: str) -> set[str]:
        return {i for r in regions for i in self._committed(r)}

    def lose(self, region: str) -> None:
        self.lost.add(region)

    def restore(self, region: str) -> None:
        self.lost.discard(region)

    def down_regions(self) -> list[str]:
        return sorted(self.lost)

    def down(self) -> None:
        """Nothing: the deployment is not the drill's to remove."""

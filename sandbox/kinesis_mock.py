"""kinesis-mock (npm `kinesis-local`, pinned in sandbox/npm) beside moto, for what moto's Kinesis
does not do faithfully: resharding. moto's SplitShard/MergeShards leave the parent open and give
children no parent link. kinesis-mock closes the parent, gives every child `ParentShardId`
(`AdjacentParentShardId` for a merge), and answers a closed shard's last GetRecords with
`ChildShards` and no next iterator, as Kinesis does.

The sandbox keeps one endpoint: with `kinesis="kinesis-mock"` the region gate (sandbox.moto_gate,
`--kinesis-upstream`) forwards every Kinesis API request to kinesis-mock and everything else to
moto, so jobs, producers and readers need no second endpoint and the region gate and the call
recorder still see every Kinesis call. The stacks are still provisioned through moto's
CloudFormation, which creates the streams in moto's Kinesis; `mirror_streams` then creates each
of them, with the same shard count, in kinesis-mock.

Ports: kinesis-mock listens on the sandbox's port + 50 (plain HTTP) and + 51 (TLS, unused).
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from conf.settings import Settings

NPM_DIR = Path(__file__).resolve().parent / "npm"
MAIN = NPM_DIR / "node_modules" / "kinesis-local" / "main.js"
PORT_OFFSET = 50
STATUS_PATH = "/homeflow/kinesis"  # the gate says which Kinesis serves (GET)
MOTO_HEADER = "X-Homeflow-Backend"  # `moto`: this Kinesis request stays with moto (mirroring)
BACKENDS = ("moto", "kinesis-mock")


def port(settings: Settings) -> int:
    return urlparse(settings.aws.endpoint).port + PORT_OFFSET


def url(settings: Settings) -> str:
    return f"http://127.0.0.1:{port(settings)}"


def service(settings: Settings):
    from sandbox.services import Service
    if not MAIN.exists():
        raise SystemExit(f"kinesis-mock is not installed ({MAIN} missing): run ./scripts/bootstrap.sh")
    env = {"KINESIS_MOCK_PLAIN_PORT": str(port(settings)), "KINESIS_MOCK_TLS_PORT": str(port(settings) + 1),
           "AWS_ACCOUNT_ID": settings.aws.account_id, "LOG_LEVEL": "WARN",
           # Kinesis takes seconds to create or reshard; the sandbox need not wait that long, but a
           # reshard still passes through UPDATING, as it does on AWS.
           "CREATE_STREAM_DURATION": "200ms", "SPLIT_SHARD_DURATION": "500ms",
           "MERGE_SHARDS_DURATION": "500ms", "UPDATE_SHARD_COUNT_DURATION": "500ms",
           "SHARD_LIMIT": "100"}
    # It reads its TLS material (server.json) from the working directory.
    return Service("kinesis-mock", ["node", str(MAIN)], "kinesis-local/main.js", cwd=MAIN.parent,
                   env=tuple(env.items()))


def healthy(settings: Settings) -> bool:
    from sandbox.services import answers
    return answers(f"{url(settings)}/healthcheck")


def backend(settings: Settings) -> str:
    """Which Kinesis the running sandbox serves: `kinesis-mock` or `moto`."""
    try:
        with urllib.request.urlopen(f"{settings.aws.endpoint}{STATUS_PATH}", timeout=5) as r:
            return json.loads(r.read()).get("backend", "moto")
    except urllib.error.HTTPError:
        return "moto"  # a gate without the kinesis-mock layer: moto's own 404


def open_shards(kin, stream: str) -> list[dict]:
    return [s for s in kin.list_shards(StreamName=stream)["Shards"]
            if not s["SequenceNumberRange"].get("EndingSequenceNumber")]


def split_first_shard(kin, stream: str) -> tuple[str, list[str]]:
    """Split the open shard with the lowest hash range in half: (parent, children)."""
    parent = min(open_shards(kin, stream), key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
    lo, hi = int(parent["HashKeyRange"]["StartingHashKey"]), int(parent["HashKeyRange"]["EndingHashKey"])
    return parent["ShardId"], reshard(kin, stream, "split_shard", ShardToSplit=parent["ShardId"],
                                      NewStartingHashKey=str((lo + hi) // 2))


def reshard(kin, stream: str, op: str, timeout_s: float = 60, **kw) -> list[str]:
    """Run `op` (split_shard, merge_shards), wait until the stream is ACTIVE again; the new shards."""
    from sandbox.jobrunner import wait_until
    before = {s["ShardId"] for s in kin.list_shards(StreamName=stream)["Shards"]}
    getattr(kin, op)(StreamName=stream, **kw)
    wait_until(lambda: kin.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
               == "ACTIVE", timeout_s, 0.2, what=f"{stream} ACTIVE after {op}")
    return sorted(s["ShardId"] for s in kin.list_shards(StreamName=stream)["Shards"] if s["ShardId"] not in before)


def _moto_kinesis(settings: Settings, region: str):
    from connectors import aws
    c = aws.client("kinesis", region, settings.aws)
    c.meta.events.register("before-sign.kinesis.*",
                           lambda request, **_: request.headers.__setitem__(MOTO_HEADER, "moto"))
    return c


def mirror_streams(settings: Settings, timeout_s: float = 30) -> dict[str, list[str]]:
    """Create in kinesis-mock every stream the stacks created in moto, with the same number of open
    shards; idempotent. A no-op when the sandbox serves moto's Kinesis."""
    if backend(settings) != "kinesis-mock":
        return {}
    from connectors import aws
    made: dict[str, list[str]] = {}
    for region in settings.job.regions:
        made[region] = []
        moto, mock = _moto_kinesis(settings, region), aws.client("kinesis", region, settings.aws)
        have = set(mock.list_streams()["StreamNames"])
        for name in moto.list_streams()["StreamNames"]:
            if name in have:
                continue
            shards = open_shards(moto, name)
            mock.create_stream(StreamName=name, ShardCount=len(shards))
            made[region].append(f"kinesis-mock stream {name} ({len(shards)} shards)")
        deadline = time.monotonic() + timeout_s
        for name in moto.list_streams()["StreamNames"]:
            while mock.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
                if time.monotonic() > deadline:
                    raise SystemExit(f"kinesis-mock: stream {name} in {region} not ACTIVE after {timeout_s}s")
                time.sleep(0.1)
    return made

"""What a drill would do to a deployment it did not create: the applications, streams and keys it
touches, its traffic and how long it lasts, the calls it makes, and how its events are told apart
and deleted afterwards. `homeflow drill --target deployment` prints this and changes nothing
without `--yes`; the only calls made to build it are reads (DescribeApplication,
DescribeStreamSummary).
"""
from __future__ import annotations

from dataclasses import dataclass

from conf.settings import Settings

# The calls each drill makes to the applications, in order (A: the first region, B: the second).
CALLS = {
    "move-keys": ["routing table: {flips} moves of {moving} keys A -> B and back (DynamoDB PutItem, epochs)"],
    "region-loss": ["CreateApplicationSnapshot A (the snapshot a start after a forced stop restores)",
                    "StopApplication A Force=true (the region's loss; its producers switch to B)",
                    "routing table: A DOWN, written in B (every key homed in A, real ones too, moves to B)",
                    "StartApplication A RESTORE_FROM_LATEST_SNAPSHOT (its backlog drains, marked stranded)",
                    "routing table: A ACTIVE (failback, a planned move)"],
    "upgrade": ["StopApplication A (the service snapshots it)",
                "UpdateApplication A to twice its parallelism, StartApplication A RESTORE_FROM_CUSTOM_SNAPSHOT",
                "StopApplication A, UpdateApplication A back to its parallelism, StartApplication A from that snapshot"],
}
# The drill's own duration bound, s: traffic stops by itself at this age whatever happens.
MAX_TRAFFIC_S = {"move-keys": 300, "region-loss": 600, "upgrade": 600}


@dataclass(frozen=True)
class Plan:
    scenario: str
    regions: tuple[str, str]
    application: str
    keys: int
    rate: float
    flips: int

    def lines(self, settings: Settings, statuses: dict[str, str], streams: dict[str, str]) -> list[str]:
        a, b = self.regions
        target = settings.aws.endpoint or f"AWS (account {settings.aws.account_id or 'of the credentials'})"
        secs = MAX_TRAFFIC_S[self.scenario]
        out = [f"plan: {self.scenario} drill on {target}",
               "  applications (only these are stopped, started or updated):"]
        out += [f"    {r}: {self.application} ({statuses.get(r, 'not found')})" for r in self.regions]
        out += ["  streams written (drill traffic only):"]
        out += [f"    {r}: {settings.streams.ingest} ({streams.get(r, 'not found')})" for r in self.regions]
        out += [f"  keys: {self.keys} business keys of its own, <run id>-acct-NNN (every tenth non-ASCII); real keys "
                "are moved only by a region's DOWN and ACTIVE",
                f"  traffic: {self.rate:.0f} events/s into each region's ingest stream, stopped after the scenario "
                f"and in any case after {secs} s ({int(self.rate * 2 * secs):,} events at most)",
                "  calls, A = " + a + ", B = " + b + ":"]
        out += ["    " + c.format(flips=self.flips, moving=8) for c in CALLS[self.scenario]]
        out += ["  marking: every event_id and every key starts with the run id (<scenario>-<8 hex>-), and the",
                "    payload carries \"drill\": <run id>; `homeflow query --drill <run id>` counts its rows per table",
                "  afterwards: delete them from each home table with any Iceberg engine that deletes rows",
                f"    (Athena, Spark SQL): DELETE FROM {settings.lake.table_prefix}_<region, - as _> "
                "WHERE event_id LIKE '<run id>-%'",
                "  nothing was changed: run again with --yes to go ahead"]
        return out


def gather(settings: Settings, plan: Plan) -> tuple[dict[str, str], dict[str, str]]:
    """Read-only look at what the plan names: each application's status and version, each
    ingest stream's status and shards."""
    from botocore.exceptions import ClientError

    from connectors import aws
    statuses, streams = {}, {}
    for r in plan.regions:
        try:
            d = aws.client("kinesisanalyticsv2", r, settings.aws).describe_application(
                ApplicationName=plan.application)["ApplicationDetail"]
            statuses[r] = f"{d['ApplicationStatus']}, version {d['ApplicationVersionId']}"
        except ClientError as e:
            statuses[r] = f"not readable: {e.response['Error']['Code']}"
        try:
            s = aws.client("kinesis", r, settings.aws).describe_stream_summary(
                StreamName=settings.streams.ingest)["StreamDescriptionSummary"]
            streams[r] = f"{s['StreamStatus']}, {s['OpenShardCount']} open shards"
        except ClientError as e:
            streams[r] = f"not readable: {e.response['Error']['Code']}"
    return statuses, streams

"""Sandbox up/down: idempotent, `down` stops only what `up` started; the region gate makes a region
unreachable and brings it back; the replicators copy routing-table writes and lake objects between
regions after their lag."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from conf.settings import load
from connectors import aws, routing_control
from connectors import stacks as cfn_stacks
from connectors.cfn_template import Template, load_template
from sandbox import services, stacks
from sandbox.api_calls import DEFAULT_ACCOUNT
from sandbox.jobrunner import wait_until
from sandbox.local_cluster import write_properties
from udfs.routing_table import default_table

pytestmark = pytest.mark.e2e


def test_up_is_idempotent_and_down_stops_only_its_own(tmp_path):
    props = write_properties(tmp_path / "p.json", 4592)
    settings = load(props)
    state = tmp_path / "state"
    emu = services.emulator(settings)
    try:
        first = services.up(settings, props, state, ddb_lag=0.5, s3_lag=0.5)
        assert all(first[r] for r in settings.job.regions), first
        pid = services.running_pid(emu, state)
        rep_pid = services.running_pid(services.replicator(settings, props, state, 0, 0), state)
        assert pid and rep_pid

        # Provisioned from infra/ through the emulator's CloudFormation. What the emulator accepts
        # without creating is exactly stacks.NOT_CREATED; everything else is a stack resource.
        region_doc = load_template(cfn_stacks.REGION_TEMPLATE)
        for region in settings.job.regions:
            cf = aws.client("cloudformation", region, settings.aws)
            params = {k: v.split(",") if k.endswith("Regions") else v
                      for k, v in cfn_stacks.region_parameters(settings, region).items()}
            bound = Template(region_doc, region, DEFAULT_ACCOUNT, params)
            wanted = {r["Type"] for r in region_doc["Resources"].values()
                      if "Condition" not in r or bound.condition(r["Condition"])}
            made = {r["ResourceType"] for r in cf.list_stack_resources(StackName=cfn_stacks.region_stack(region))
                    ["StackResourceSummaries"] if r["LogicalResourceId"]}
            assert made <= wanted and wanted - made == set(stacks.NOT_CREATED), (region, wanted - made)
            standin = cf.list_stack_resources(StackName=stacks.GLOBAL_STANDIN_STACK)["StackResourceSummaries"]
            assert sorted(r["PhysicalResourceId"] for r in standin) == sorted(
                [settings.job.routing_table, settings.lake.catalog_table, "homeflow-read-pointers"])

        # again: same processes, nothing new created
        assert services.up(settings, props, state) == {r: [] for r in settings.job.regions}
        assert services.running_pid(emu, state) == pid
        st = services.status(settings, state)
        assert st["services"]["moto"]["healthy"]
        assert set(st["regions"]["eu-west-1"]["streams"]) == {"homeflow-ingest", "homeflow-forward", "homeflow-dead-letter"}

        # ListShards honours ExclusiveStartShardId as AWS does (sandbox/moto_fidelity.py): a restored
        # Kinesis source must not be handed the shards it already reads.
        kin = aws.client("kinesis", "eu-west-1", settings.aws)
        every = [s["ShardId"] for s in kin.list_shards(StreamName="homeflow-ingest")["Shards"]]
        assert len(every) >= 2, every
        after = kin.list_shards(StreamName="homeflow-ingest", ExclusiveStartShardId=every[0])["Shards"]
        assert [s["ShardId"] for s in after] == every[1:]

        # Concurrent PutRecords into one shard keep every record (moto alone loses some: its
        # sequence numbers are max + 1 without a lock; sandbox/moto_fidelity.py serializes writes).
        kin.create_stream(StreamName="race", ShardCount=1)
        wait_until(lambda: kin.describe_stream_summary(StreamName="race")["StreamDescriptionSummary"]
                   ["StreamStatus"] == "ACTIVE", 30, 0.2, what="stream race")

        def put(t: int) -> int:
            c = aws.client("kinesis", "eu-west-1", settings.aws)
            return sum(50 - c.put_records(StreamName="race", Records=[
                {"PartitionKey": f"k{t}", "Data": f"{t}-{i}-{j}".encode()} for j in range(50)])["FailedRecordCount"]
                for i in range(30))
        with ThreadPoolExecutor(4) as pool:
            accepted = sum(pool.map(put, range(4)))
        shard = kin.list_shards(StreamName="race")["Shards"][0]["ShardId"]
        it = kin.get_shard_iterator(StreamName="race", ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        stored = set()
        while True:
            got = kin.get_records(ShardIterator=it, Limit=10_000)
            stored |= {r["Data"] for r in got["Records"]}
            it = got["NextShardIterator"]
            if not got["Records"]:
                break
        assert accepted == 6000 and len(stored) == accepted, (accepted, len(stored))

        # The routing table is written in one region and reaches the others after the lag.
        routing_control.wait_replicated(settings, 1, timeout=30)
        t = default_table(list(settings.job.regions), epoch=2)
        t0 = time.monotonic()
        routing_control.write(settings, t, "us-east-1")
        assert routing_control.read(settings, "eu-west-1").epoch == 1, "replication cannot be instant"
        routing_control.wait_replicated(settings, 2, timeout=30)
        assert time.monotonic() - t0 >= 0.5
        # S3: an object in us-east-1's lake bucket appears in eu-west-1's replica of it.
        aws.client("s3", "us-east-1", settings.aws).put_object(
            Bucket=settings.lake.bucket("us-east-1"), Key="probe/x", Body=b"x")
        replica = aws.client("s3", "eu-west-1", settings.aws)
        wait_until(lambda: "Contents" in replica.list_objects_v2(
            Bucket=f"{settings.lake.bucket('us-east-1')}-replica-eu-west-1", Prefix="probe/"), 30, 0.3,
            what="the S3 replica")

        # The region gate: us-east-1 unreachable, eu-west-1 unaffected; then back.
        assert services.lose(settings, "us-east-1") == ["us-east-1"]
        kin_us = aws.client("kinesis", "us-east-1", settings.aws)
        with pytest.raises(ClientError) as e:
            kin_us.list_streams()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert aws.client("kinesis", "eu-west-1", settings.aws).list_streams()["StreamNames"]
        assert services.restore(settings, "us-east-1") == []
        assert kin_us.list_streams()["StreamNames"]

        # A stream the job needs is missing: the CLI names it and the command that creates it.
        aws.client("kinesis", "eu-west-1", settings.aws).delete_stream(StreamName="homeflow-ingest")
        r = subprocess.run([sys.executable, "-m", "cli.main", "--properties", str(props), "produce",
                            "--region", "eu-west-1", "--events", "3"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "homeflow-ingest" in r.stderr and "homeflow sandbox up" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        # ... and `up` does not pass over it: the stacks are current, yet the stream is gone.
        with pytest.raises(SystemExit) as e:
            services.up(settings, props, state)
        assert "eu-west-1: Kinesis stream homeflow-ingest" in str(e.value) and "fresh sandbox" in str(e.value)

        stopped = services.stop(settings, state)
        assert stopped == [f"replicator (pid {rep_pid})", f"moto (pid {pid})"]
        assert services.stop(settings, state) == []
        assert not services.status(settings, state)["services"]["moto"]["healthy"]
    finally:
        services.stop(settings, state)

    # A pid file naming someone else's process (a recycled pid) must not get that process killed.
    other = subprocess.Popen(["sleep", "30"])
    try:
        state.mkdir(exist_ok=True)
        (state / "moto.pid").write_text(str(other.pid))
        assert services.stop(settings, state) == []
        assert other.poll() is None
    finally:
        other.kill()


def test_a_template_missing_what_the_job_needs_breaks_the_local_run(tmp_path):
    """infra/ is what the sandbox is built from: a regional template that names the forward stream
    differently and a global template without the read-pointer table both deploy (nothing is wrong
    for CloudFormation), and the sandbox refuses to start, naming each missing thing per region.
    The real templates, deployed over them, fix it."""
    props = write_properties(tmp_path / "p.json", 4588)
    settings = load(props)
    state = tmp_path / "state"
    region_t = tmp_path / "region.yaml"
    text = cfn_stacks.REGION_TEMPLATE.read_text()
    assert text.count("Name: homeflow-forward\n") == 1
    region_t.write_text(text.replace("Name: homeflow-forward\n", "Name: homeflow-fwd\n"))
    global_doc = load_template(cfn_stacks.GLOBAL_TEMPLATE)
    del global_doc["Resources"]["ReadPointerTable"]
    global_t = tmp_path / "global.json"
    global_t.write_text(json.dumps(global_doc))
    try:
        services.start(settings, state)
        made = stacks.provision(settings, region_t, global_t)
        assert all(len(made[r]) == 2 for r in settings.job.regions), made
        with pytest.raises(cfn_stacks.ProvisionError) as e:
            stacks.verify(settings)
        missing = [line.strip() for line in str(e.value).splitlines()[1:-1]]
        assert sorted(missing) == sorted(
            [f"{r}: Kinesis stream homeflow-forward" for r in settings.job.regions]
            + [f"{r}: DynamoDB table homeflow-read-pointers" for r in settings.job.regions]), str(e.value)
        # Deployed over them, the real templates add the table; the renamed stream is not replaced
        # (moto's stack update keeps a resource whose name changed, AWS would replace it), and
        # verify still names it.
        made = stacks.provision(settings)
        assert all(made[r] == [f"stack {stacks.GLOBAL_STANDIN_STACK} updated (3 tables)",
                               f"stack {cfn_stacks.region_stack(r)} updated"] for r in settings.job.regions), made
        assert sorted(stacks.missing(settings)) == sorted(
            f"{r}: Kinesis stream homeflow-forward" for r in settings.job.regions)
        # control: the real templates in a fresh sandbox leave nothing missing
        services.stop(settings, state)
        services.start(settings, state)
        stacks.provision(settings)
        assert stacks.missing(settings) == []
    finally:
        services.stop(settings, state)

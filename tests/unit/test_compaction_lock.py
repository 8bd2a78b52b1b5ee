"""The compaction's lock (dev.homeflow.flink.DynamoDbTriggerLockFactory, in the built jar, through
py4j) against DynamoDB as the emulator serves it over HTTP on loopback: the semantics Iceberg's
table maintenance relies on (those of its JdbcLockFactory). Two factories stand for the two
operators that use the lock (the trigger manager takes it, the lock remover releases it), each
with its own deserialized copy and client."""
from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from sandbox.paths import JAR

PORT = 4586
TABLE = "homeflow-read-pointers"


@pytest.fixture(scope="module")
def endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=PORT, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{PORT}"
    ddb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=url, aws_access_key_id="test",
                       aws_secret_access_key="test")
    ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "table", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "table", "KeyType": "HASH"}])
    yield url, ddb
    server.stop()


@pytest.fixture(scope="module")
def jvm():
    import pyflink
    from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway
    lib = Path(pyflink.__file__).parent / "lib"
    cp = ":".join([str(JAR), *map(str, sorted(lib.glob("flink-dist*.jar")))])
    port = launch_gateway(classpath=cp, die_on_exit=True,
                          javaopts=["-Daws.accessKeyId=test", "-Daws.secretAccessKey=test"])
    gw = JavaGateway(gateway_parameters=GatewayParameters(port=port, auto_convert=True))
    yield gw.jvm
    gw.shutdown()


def _factory(jvm, url: str, lock_id: str):
    props = jvm.java.util.HashMap()
    props.put("dynamodb.endpoint", url)
    props.put("client.region", "us-east-1")
    f = jvm.dev.homeflow.flink.DynamoDbTriggerLockFactory(props, TABLE, "table", lock_id)
    f.open()
    return f


def _items(ddb) -> dict[str, str]:
    return {i["table"]["S"]: i.get("instance", {}).get("S", "") for i in ddb.scan(TableName=TABLE)["Items"]}


def test_one_holder_at_a_time_and_any_copy_releases(endpoint, jvm):
    url, ddb = endpoint
    ddb.put_item(TableName=TABLE, Item={"table": {"S": "homeflow.events_us_east_1"}, "snapshot": {"N": "7"}})
    trigger, remover = _factory(jvm, url, "homeflow.events_us_east_1"), _factory(jvm, url, "homeflow.events_us_east_1")
    other_table = _factory(jvm, url, "homeflow.events_eu_west_1")
    try:
        a, b = trigger.createLock(), remover.createLock()
        assert not a.isHeld() and a.tryLock()
        assert b.isHeld() and not b.tryLock(), "a second holder got the lock"
        assert not a.tryLock(), "the holder itself cannot take it twice"
        assert not trigger.createRecoveryLock().isHeld(), "the recovery lock is a separate lock"
        assert other_table.createLock().tryLock(), "another table's lock is independent"
        items = _items(ddb)
        assert items["lock#maintenance#homeflow.events_us_east_1"]
        b.unlock()  # the lock remover releases what the trigger manager took
        assert not a.isHeld() and not b.isHeld()
        assert "lock#maintenance#homeflow.events_us_east_1" not in _items(ddb)
        assert "lock#maintenance#homeflow.events_eu_west_1" in _items(ddb)
        assert _items(ddb)["homeflow.events_us_east_1"] == "", "the read pointer item is untouched"
        b.unlock()  # releasing a free lock is a no-op
        assert a.tryLock(), "a released lock can be taken again"
        r = remover.createRecoveryLock()
        assert r.tryLock() and trigger.createRecoveryLock().isHeld()
        r.unlock()
    finally:
        for f in (trigger, remover, other_table):
            f.close()


def test_a_lock_held_by_someone_else_is_not_taken(endpoint, jvm):
    # control for the condition: an item written by another instance (as after a crash while
    # holding it) blocks tryLock until it is released
    url, ddb = endpoint
    ddb.put_item(TableName=TABLE, Item={"table": {"S": "lock#maintenance#t2"}, "instance": {"S": "someone"}})
    f = _factory(jvm, url, "t2")
    try:
        lock = f.createLock()
        assert lock.isHeld() and not lock.tryLock()
        assert _items(ddb)["lock#maintenance#t2"] == "someone"
        lock.unlock()
        assert lock.tryLock() and _items(ddb)["lock#maintenance#t2"] not in ("", "someone")
    finally:
        f.close()

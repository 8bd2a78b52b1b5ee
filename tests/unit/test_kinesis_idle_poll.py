"""The Kinesis split reader homeflow's jar ships (src/main/java/.../PollingKinesisShardSplitReader)
pauses between polls of a shard that answered empty, and only then.

Driven on the real Java class through py4j, with a StreamProxy implemented here that counts its
GetRecords calls. Connector 4.3.0's reader asked an empty shard again at once: an idle job made
about 220 GetRecords a second here against a limit of 5 per second per shard. The control
(`homeflow.kinesis.idlePollMs=0`, that busy polling) shows the count check can fail.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from sandbox.paths import JAR

ARN = "arn:aws:kinesis:us-east-1:000000000000:stream/ingest"


@pytest.fixture(scope="module")
def gw():
    import pyflink
    from py4j.java_gateway import CallbackServerParameters, GatewayParameters, JavaGateway, launch_gateway
    lib = Path(pyflink.__file__).parent / "lib"
    cp = ":".join([str(JAR), *map(str, sorted(lib.glob("flink-dist*.jar")))])
    port = launch_gateway(classpath=cp, die_on_exit=True)
    g = JavaGateway(gateway_parameters=GatewayParameters(port=port, auto_convert=True),
                    callback_server_parameters=CallbackServerParameters(port=0))
    # The JVM calls back into this process: tell it the callback server's real port.
    g.java_gateway_server.resetCallbackClient(g.java_gateway_server.getCallbackClient().getAddress(),
                                              g.get_callback_server().get_listening_port())
    yield g
    g.shutdown()


class _Kinesis:
    """A shard per name; `full` shards always return one record, the others none."""

    def __init__(self, jvm, full: set[str]):
        self.jvm, self.full, self.calls = jvm, full, {}
        self.model = jvm.org.apache.flink.kinesis.shaded.software.amazon.awssdk.services.kinesis.model

    def listShards(self, arn, last):
        return self.jvm.java.util.ArrayList()

    def getRecords(self, arn, shard, position):
        self.calls[shard] = self.calls.get(shard, 0) + 1
        b = self.model.GetRecordsResponse.builder().nextShardIterator("more")
        if shard in self.full:
            n = str(self.calls[shard]).zfill(20)
            rec = self.model.Record.builder().sequenceNumber(n).partitionKey("k").build()
            recs = self.jvm.java.util.ArrayList()
            recs.add(rec)
            b = b.records(recs)
        else:
            b = b.records(self.jvm.java.util.ArrayList())
        return b.build()

    def close(self):
        pass

    class Java:
        implements = ["org.apache.flink.connector.kinesis.source.proxy.StreamProxy"]


def _reader(gw, kinesis: _Kinesis, shards: list[str], idle_poll_ms: str | None):
    jvm = gw.jvm
    if idle_poll_ms is None:
        jvm.java.lang.System.clearProperty("homeflow.kinesis.idlePollMs")
    else:
        jvm.java.lang.System.setProperty("homeflow.kinesis.idlePollMs", idle_poll_ms)
    jvm.java.lang.System.setProperty("homeflow.kinesis.parentFirst", "false")  # no ListShards here
    reader = jvm.org.apache.flink.connector.kinesis.source.reader.PollingKinesisShardSplitReader(kinesis)
    pos = jvm.org.apache.flink.connector.kinesis.source.split.StartingPosition.fromStart()
    splits = jvm.java.util.ArrayList()
    for s in shards:
        splits.add(jvm.org.apache.flink.connector.kinesis.source.split.KinesisShardSplit(ARN, s, pos))
    reader.handleSplitsChanges(jvm.org.apache.flink.connector.base.source.reader.splitreader.SplitsAddition(splits))
    return reader


def _fetch_for(reader, seconds: float) -> int:
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        reader.fetch()
        n += 1
    return n


def test_empty_shards_are_polled_at_most_five_times_a_second(gw):
    k = _Kinesis(gw.jvm, full=set())
    reader = _reader(gw, k, ["shard-0", "shard-1"], None)  # the default pause, 200 ms
    _fetch_for(reader, 2.0)
    for shard in ("shard-0", "shard-1"):
        assert 4 <= k.calls[shard] <= 2.0 * 5 + 1, k.calls  # Kinesis: 5 GetRecords/s per shard


def test_control_busy_polling_exceeds_the_limit(gw):
    k = _Kinesis(gw.jvm, full=set())
    reader = _reader(gw, k, ["shard-0"], "0")  # connector 4.3.0's behaviour
    _fetch_for(reader, 1.0)
    assert k.calls["shard-0"] > 5 * 4, k.calls


def test_a_shard_with_records_is_not_paused_beside_an_empty_one(gw):
    k = _Kinesis(gw.jvm, full={"busy"})
    reader = _reader(gw, k, ["busy", "idle"], None)
    _fetch_for(reader, 1.0)
    assert k.calls["busy"] > 5 * 4, k.calls  # drained as fast as the proxy answers
    assert k.calls["idle"] <= 5 + 1, k.calls


def test_wake_up_ends_a_pause(gw):
    k = _Kinesis(gw.jvm, full=set())
    reader = _reader(gw, k, ["shard-0"], "30000")
    reader.fetch()  # empty: the shard is due again in 30 s
    threading.Timer(0.5, reader.wakeUp).start()
    t = time.monotonic()
    reader.fetch()  # pauses until woken (new splits, pause or close of the fetcher)
    assert time.monotonic() - t < 5, "wakeUp did not end the pause"
    assert k.calls["shard-0"] == 1

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.paths import JAR


@pytest.fixture(scope="module")
def java_gateway():
    """A JVM with the built connector jar and Flink on its class path, reached through py4j: unit
    tests of the jar's pure Java logic."""
    import pyflink
    from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway
    lib = Path(pyflink.__file__).parent / "lib"
    cp = ":".join([str(JAR), *map(str, sorted(lib.glob("flink-dist*.jar")))])
    port = launch_gateway(classpath=cp, die_on_exit=True)
    gw = JavaGateway(gateway_parameters=GatewayParameters(port=port, auto_convert=True))
    yield gw
    gw.shutdown()


@pytest.fixture(scope="module")
def jvm(java_gateway):
    return java_gateway.jvm

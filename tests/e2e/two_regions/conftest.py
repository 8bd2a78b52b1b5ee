"""Two regional jobs (us-east-1, eu-west-1) on their own miniclusters, shared by the tests of this
package and stopped when the package is done, so they never compete with the other e2e tests."""
import pytest

from sandbox.local_cluster import Sandbox

REST_PORTS = {"us-east-1": 18091, "eu-west-1": 18092}


@pytest.fixture(scope="package")
def two_regions(tmp_path_factory):
    # table.wait.ms short: the dead-letter test waits for a table that never comes.
    sb = Sandbox(tmp_path_factory.mktemp("two-regions"), 4590, ["us-east-1", "eu-west-1"],
                 **{"table.wait.ms": "5000"}).up()
    try:
        sb.start_jobs(["us-east-1", "eu-west-1"], rest_ports=REST_PORTS)
        yield sb
    finally:
        sb.down()

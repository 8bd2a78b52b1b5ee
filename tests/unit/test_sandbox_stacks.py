"""The sandbox's stand-in for infra/global.yaml (sandbox/stacks.py): each DynamoDB global table
becomes, in each of its replica regions and nowhere else, an ordinary table with the same
definition; and the parameters a deployment passes to infra/ (connectors/stacks.py) are the ones
the templates declare."""
from __future__ import annotations

import copy

import pytest

from conf.settings import load
from connectors import stacks as cfn_stacks
from connectors.cfn_template import load_template
from sandbox import stacks
from sandbox.paths import LOCAL_PROPERTIES

ACCOUNT = "123456789012"
THREE = {"Regions": "us-east-1,eu-west-1,ap-south-1"}
TWO = {"Regions": "us-east-1,eu-west-1"}
SAME = ("TableName", "BillingMode", "StreamSpecification", "AttributeDefinitions", "KeySchema",
        "GlobalSecondaryIndexes", "SSESpecification")


@pytest.fixture(scope="module")
def global_doc() -> dict:
    return load_template(cfn_stacks.GLOBAL_TEMPLATE)


def test_every_global_table_stands_in_as_a_table_with_the_same_definition(global_doc):
    globals_ = {n: r for n, r in global_doc["Resources"].items() if r["Type"] == "AWS::DynamoDB::GlobalTable"}
    assert len(globals_) == 3
    for region in THREE["Regions"].split(","):
        doc = stacks.global_standin(global_doc, region, ACCOUNT, THREE)
        assert set(doc["Resources"]) == set(globals_)
        for name, res in doc["Resources"].items():
            src = globals_[name]["Properties"]
            assert res["Type"] == "AWS::DynamoDB::Table"
            assert "Replicas" not in res["Properties"]
            for k in SAME:
                assert res["Properties"].get(k) == src.get(k), (name, k)
            # per-replica settings come from the replica of this region
            assert res["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
            assert res["Properties"]["DeletionProtectionEnabled"] is True
            assert res["DeletionPolicy"] == "Retain"
        assert set(doc["Outputs"]) == set(global_doc["Outputs"])


def test_a_region_without_a_replica_gets_no_table(global_doc):
    assert stacks.global_standin(global_doc, "ap-south-1", ACCOUNT, TWO) is None
    assert stacks.global_standin(global_doc, "eu-west-1", ACCOUNT, TWO) is not None


def test_a_table_replicated_to_fewer_regions_stands_in_only_there(global_doc):
    # control: the check above can tell regions apart. Drop eu-west-1 from one table's replicas.
    doc = copy.deepcopy(global_doc)
    doc["Resources"]["ReadPointerTable"]["Properties"]["Replicas"] = [{"Region": "us-east-1"}]
    eu = stacks.global_standin(doc, "eu-west-1", ACCOUNT, THREE)
    assert set(eu["Resources"]) == {"RoutingTable", "CatalogTable"}
    assert "ReadPointerTableArn" not in eu["Outputs"]
    assert set(stacks.global_standin(doc, "us-east-1", ACCOUNT, THREE)["Resources"]) == {
        "RoutingTable", "CatalogTable", "ReadPointerTable"}


def test_parameters_are_declared_by_the_templates():
    settings = load(LOCAL_PROPERTIES)
    region_doc = load_template(cfn_stacks.REGION_TEMPLATE)
    for region in settings.job.regions:
        p = cfn_stacks.region_parameters(settings, region)
        assert set(p) <= set(region_doc["Parameters"]), set(p) - set(region_doc["Parameters"])
        assert region not in p["RemoteRegions"].split(",")
        assert sorted(p["RemoteRegions"].split(",") + [region]) == sorted(settings.job.regions)
    assert set(cfn_stacks.global_parameters(settings)) <= set(load_template(cfn_stacks.GLOBAL_TEMPLATE)["Parameters"])

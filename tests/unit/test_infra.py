"""infra/: the CloudFormation templates pass cfn-lint and checkov with zero findings (skips only
with a written reason), each linter fails on a template broken on purpose, and the Managed Flink
application's property groups are a configuration the job accepts."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cli.package import RUN_OPTIONS
from conf.settings import groups_from_properties, settings_from_groups
from connectors.cfn_template import load_template as load

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TEMPLATES = sorted(INFRA.glob("*.yaml"))
IAC_BIN = ROOT / ".venv-iac" / "bin"


def _tool(name: str) -> str:
    exe = IAC_BIN / name
    assert exe.exists(), f"{exe} is missing: run scripts/bootstrap.sh (it installs requirements-iac.lock)"
    return str(exe)


def _cfn_lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_tool("cfn-lint"), "--format", "parseable", str(path)], capture_output=True, text=True,
                          timeout=300)


def _checkov(path: Path) -> dict:
    """checkov's report on a template or a directory of them (one process: it takes ~20 s to start)."""
    # --skip-download and BC_SKIP_MAPPING: no network (the project runs on loopback only)
    flag = "-d" if path.is_dir() else "-f"
    r = subprocess.run([_tool("checkov"), flag, str(path), "--framework", "cloudformation", "--skip-download",
                        "--output", "json"], capture_output=True, text=True, timeout=600,
                       env={"PATH": "/usr/bin:/bin", "BC_SKIP_MAPPING": "TRUE", "HOME": str(ROOT / ".venv-iac")})
    assert r.stdout.strip(), r.stderr
    doc = json.loads(r.stdout)
    return doc[0] if isinstance(doc, list) else doc


def test_templates_exist():
    assert {p.name for p in TEMPLATES} == {"global.yaml", "region.yaml"}


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_finds_nothing(path):
    r = _cfn_lint(path)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


@pytest.fixture(scope="module")
def checkov_infra() -> dict:
    return _checkov(INFRA)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_checkov_finds_nothing_and_every_skip_says_why(path, checkov_infra):
    mine = lambda checks: [c for c in checks if Path(c["file_path"]).name == path.name]  # noqa: E731
    failed = mine(checkov_infra["results"]["failed_checks"])
    assert not failed, [(f["check_id"], f["resource"], f["check_name"]) for f in failed]
    assert mine(checkov_infra["results"]["passed_checks"])
    for name, r in load(path)["Resources"].items():
        for skip in r.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 20, f"{name}: skip {skip['id']} has no written reason"


def test_the_linters_can_fail(tmp_path):
    """Controls: a public, unencrypted lake bucket fails checkov; an unknown property fails cfn-lint."""
    doc = (INFRA / "region.yaml").read_text()
    broken = doc.replace("        BlockPublicAcls: true\n", "        BlockPublicAcls: false\n") \
                .replace("      StreamEncryption: {EncryptionType: KMS, KeyId: alias/aws/kinesis}\n", "")
    p = tmp_path / "broken.yaml"
    p.write_text(broken)
    ids = {f["check_id"] for f in _checkov(p)["results"]["failed_checks"]}
    assert "CKV_AWS_53" in ids and "CKV_AWS_43" in ids, ids  # public ACLs; Kinesis unencrypted
    p.write_text(doc.replace("      RuntimeEnvironment: FLINK-1_20\n", "      RuntimeEnvironment: FLINK-1_20\n"
                                                                       "      Paralelism: 2\n"))
    r = _cfn_lint(p)
    assert r.returncode != 0 and "Paralelism" in r.stdout, r.stdout


def _resolve(node, params: dict, resources: dict):
    """Enough of CloudFormation's intrinsic functions to evaluate the application's properties."""
    if isinstance(node, list):
        return [_resolve(n, params, resources) for n in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        name = node["Ref"]
        if name in params:
            return params[name]
        return resources[name]["Properties"]["Name"]
    if set(node) == {"Fn::Join"}:
        sep, items = node["Fn::Join"]
        items = _resolve(items, params, resources)
        return sep.join(str(i) for i in (items if isinstance(items, list) else [items]))
    return {k: _resolve(v, params, resources) for k, v in node.items()}


def test_application_properties_are_a_configuration_the_job_accepts():
    t = load(INFRA / "region.yaml")
    params = {k: (v.get("Default", "") if v["Type"] != "CommaDelimitedList" else v["Default"].split(","))
              for k, v in t["Parameters"].items()}
    params.update({"AWS::Region": "us-east-1", "AWS::AccountId": "111122223333", "LakeBucketPrefix": "hf-111122223333"})
    app = t["Resources"]["Application"]["Properties"]
    groups = _resolve(app["ApplicationConfiguration"]["EnvironmentProperties"]["PropertyGroups"], params,
                      t["Resources"])
    by_id = {g["PropertyGroupId"]: g["PropertyMap"] for g in groups}
    assert by_id["kinesis.analytics.flink.run.options"] == RUN_OPTIONS  # what `homeflow package` lays out
    s = settings_from_groups(groups_from_properties(groups, "infra/region.yaml"))
    assert s.job.region == "us-east-1" and s.job.regions == ("us-east-1", "eu-west-1")
    assert (s.streams.ingest, s.streams.forward, s.streams.dead_letter) == \
        ("homeflow-ingest", "homeflow-forward", "homeflow-dead-letter")
    assert s.lake.bucket("us-east-1") == "hf-111122223333-us-east-1"
    assert s.aws.endpoint is None and s.aws.access_key_id is None  # on AWS: the role, no keys
    # the tables the job uses are the ones global.yaml creates
    g = load(INFRA / "global.yaml")["Parameters"]
    assert s.job.routing_table == g["RoutingTableName"]["Default"]
    assert s.lake.catalog_table == g["CatalogTableName"]["Default"]
    from connectors.read_pointer import POINTER_TABLE
    assert POINTER_TABLE == g["ReadPointerTableName"]["Default"] == params["ReadPointerTableName"]
    assert app["RuntimeEnvironment"] == "FLINK-1_20"

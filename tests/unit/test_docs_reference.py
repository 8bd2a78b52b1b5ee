"""The generated reference pages hold every command, option, setting, metric and column; the metric
list matches the names the code registers. Each check is a function that returns what is missing,
and each has a control showing it reports a gap."""
from __future__ import annotations

import argparse
import ast
import fnmatch
import importlib.util
import re
from pathlib import Path

import pytest

from cli.main import parser
from conf.settings import SCHEMA
from connectors.lake_schema import SCHEMA as LAKE_SCHEMA
from jobs.metrics import METRICS, Metric, documented

ROOT = Path(__file__).resolve().parents[2]


def _reference():
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "docs/hooks/reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


REF = _reference()


# ---------------------------------------------------------------- commands

def _walk(p: argparse.ArgumentParser, path: list[str]):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                yield from _walk(sp, path + [name])
        elif not isinstance(a, argparse._HelpAction):
            yield path, a


def cli_gaps(page: str) -> list[str]:
    """Commands without a section, arguments absent from their section, arguments without help."""
    gaps = []
    sections = dict(re.findall(r"^#+ (homeflow[^\n]*)\n(.*?)(?=^#+ homeflow|\Z)", page, re.S | re.M))
    for path, a in _walk(parser(), ["homeflow"]):
        title = " ".join(path)
        name = a.option_strings[0] if a.option_strings else a.dest
        if not a.help:
            gaps.append(f"{title} {name}: no help text")
        if title == "homeflow":
            body = page.split("## Global options", 1)[-1]
        elif title not in sections:
            gaps.append(f"{title}: no section")
            continue
        else:
            body = sections[title]
        if f"`{name}`" not in body:
            gaps.append(f"{title} {name}: not on the page")
    return gaps


def test_every_command_and_option_is_on_the_commands_page():
    assert cli_gaps(REF.cli_page()) == []


def test_control_a_missing_option_or_command_is_reported():
    page = REF.cli_page()
    assert "homeflow drill --flips: not on the page" in cli_gaps(page.replace("`--flips`", "`--flops`"))
    no_stop = re.sub(r"^## homeflow stop\n.*?(?=^## )", "", page, flags=re.S | re.M)
    assert "homeflow stop: no section" in cli_gaps(no_stop)


# ---------------------------------------------------------------- configuration

def configuration_gaps(page: str) -> list[str]:
    gaps = []
    groups = dict(re.findall(r"^## (homeflow\.[a-z]+)\n(.*?)(?=^## |\Z)", page, re.S | re.M))
    for group, props in SCHEMA.items():
        for key, prop in props.items():
            if not prop.doc or not getattr(prop.conv, "kind", ""):
                gaps.append(f"{group}/{key}: no meaning or type in the schema")
            if f"| `{key}` |" not in groups.get(group, ""):
                gaps.append(f"{group}/{key}: not on the page")
    return gaps


def test_every_setting_is_on_the_configuration_page_with_type_default_bounds_and_meaning():
    page = REF.configuration_page()
    assert configuration_gaps(page) == []
    # bounds and defaults come from the converters and the schema, not from prose
    assert "| `max.hops` | integer | `4` | 2 .. 10 |" in page
    assert "| `region` | AWS region | **required** |" in page
    assert "| `dedup.seed` | choice | `lake` | lake \\| home \\| none |" in page


def test_control_a_missing_setting_is_reported():
    page = REF.configuration_page().replace("| `order.skew.ms` |", "| `order.skew` |")
    assert configuration_gaps(page) == ["homeflow.job/order.skew.ms: not on the page"]


# ---------------------------------------------------------------- metrics

COUNT_CALLS = {"inc", "count", "_count", "gauge", "counter"}


def _literal(node) -> str | None:
    """A metric name from a call argument: a string, or an f-string with `*` for each hole."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "*" for v in node.values)
    return None


def python_metric_names(source: str, default_prefix: str = "") -> set[str]:
    """Names registered through `_Counters(ctx, prefix)`, `.gauge/.counter(name)`, `Level(group, name)` and the router
    core's `count(name)` (whose counts the router registers under `homeflow_`)."""
    names = set()
    tree = ast.parse(source)
    scopes = [n for n in tree.body if isinstance(n, ast.ClassDef)] or [tree]
    for scope in scopes:
        prefix = default_prefix
        for n in ast.walk(scope):
            if (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "_Counters"
                    and len(n.args) == 2 and _literal(n.args[1])):
                prefix = _literal(n.args[1])
        for n in ast.walk(scope):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "Level" \
                    and len(n.args) == 2 and _literal(n.args[1]):
                names.add(_literal(n.args[1]))  # jobs/functions.py Level(group, name): a gauge's value
                continue
            if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in COUNT_CALLS
                    and n.args):
                continue
            name = _literal(n.args[0])
            if name is None or not re.fullmatch(r"[a-z_*]*[a-z][a-z_*]*", name):
                continue  # a name held in a variable: the call that names it is what counts
            names.add(name if name.startswith("homeflow_") else prefix + name)
    return names


def java_metric_names(source: str) -> set[str]:
    return (set(re.findall(r'\.(?:gauge|counter)\(\s*"([a-z_]+)"', source))
            | set(re.findall(r'super\([^;]*"(homeflow_[a-z_]+)"\s*\)', source)))


def registered_metric_names() -> set[str]:
    names = python_metric_names((ROOT / "jobs/functions.py").read_text())
    names |= python_metric_names((ROOT / "jobs/router.py").read_text())
    names |= python_metric_names((ROOT / "udfs/handoff.py").read_text(), default_prefix="homeflow_")
    for path in (ROOT / "src/main/java").rglob("*.java"):
        names |= java_metric_names(path.read_text())
    return names


def metric_gaps(registered: set[str], listed) -> list[str]:
    """A family (`*`) documents every name it matches (`dead_letter_*` covers the literal
    `dead_letter_routing_conflict`); a documented name must match something registered."""
    patterns = {re.sub(r"<[a-z]+>", "*", m.name) for m in listed}
    undocumented = [n for n in registered if not any(n == p or fnmatch.fnmatchcase(n, p) for p in patterns)]
    unregistered = [p for p in patterns if not any(n == p or fnmatch.fnmatchcase(n, p) for n in registered)]
    return ([f"{n}: registered but not documented" for n in sorted(undocumented)]
            + [f"{n}: documented but not registered" for n in sorted(unregistered)])


def test_the_metrics_page_lists_exactly_the_names_the_code_registers():
    registered = registered_metric_names()
    assert len(registered) >= 40  # the scan found the router, feed, publisher and the Java operators
    assert metric_gaps(registered, METRICS) == []
    page = REF.metrics_page()
    for m in METRICS:
        assert f"| `{m.name}` | {m.kind} |" in page


def test_control_an_undocumented_or_vanished_metric_is_reported():
    registered = registered_metric_names()
    assert metric_gaps(registered | {"homeflow_new_thing"}, METRICS) == [
        "homeflow_new_thing: registered but not documented"]
    assert metric_gaps(registered, [m for m in METRICS if m.name != "homeflow_holds"]) == [
        "homeflow_holds: registered but not documented"]
    gone = Metric("homeflow_removed_long_ago", "counter", "router", "")
    assert metric_gaps(registered, (*METRICS, gone)) == ["homeflow_removed_long_ago: documented but not registered"]
    src = 'class F:\n    def open(self, ctx):\n        self.m = _Counters(ctx, "homeflow_x_")\n' \
          '        self.m.inc("fresh")\n        self.m.inc(f"per_{r}")\n'
    assert python_metric_names(src) == {"homeflow_x_fresh", "homeflow_x_per_*"}


@pytest.mark.parametrize("name, ok", [("homeflow_records_forwarded_eu_west_1", True),
                                      ("homeflow_dead_letter_malformed_json", True),
                                      ("homeflow_records_home", True), ("homeflow_records_gone", False)])
def test_documented_matches_families(name, ok):
    assert documented(name) is ok


# ---------------------------------------------------------------- lake schema

def test_every_lake_column_is_on_the_schema_page_with_its_meaning():
    page = REF.lake_schema_page()
    for f in LAKE_SCHEMA.fields:
        assert f.doc, f"{f.name}: no doc in connectors/lake_schema.py"
        assert f"| {f.field_id} | `{f.name}` |" in page and f.doc.split("`")[0][:40] in page
    assert "Partitioned by `event_day` = day(`event_time`)" in page

"""The layers depend downward only (CONTRIBUTING.md, Layout): `cli/` holds the `homeflow` commands
and nothing below it imports them; what the Managed Flink zip ships (`jobs/`, `udfs/`,
`connectors/`, `conf/`) does not import the local stand-ins (`sandbox/`) or the drills. Every
import is read from the source (ast), also those inside functions and `importlib.import_module`
with a literal name, so a lazy import does not slip past."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Layer directories and the top-level packages they must not import.
RULES = {
    "udfs": ("cli", "sandbox", "drills"),
    "jobs": ("cli", "sandbox", "drills"),
    "connectors": ("cli", "sandbox", "drills"),
    "conf": ("cli", "sandbox", "drills"),
    "sandbox": ("cli",),
    "drills": ("cli",),
}
# (file relative to the root, imported module) -> why it is allowed anyway. None today.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def imported_modules(source: str, package: str = "") -> list[tuple[int, str]]:
    """(line, module) for every import in `source`, at any depth: `import a.b` -> a.b;
    `from a import b` -> a and a.b (b may be a submodule); relative imports resolved against
    `package`; `importlib.import_module("a.b")` / `__import__("a.b")` with a literal name."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[:len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, *([base] if base else [])])
            if base:
                out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}" if base else a.name) for a in node.names if a.name != "*"]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
            out.append((node.lineno, node.args[0].value))
    return out


def forbidden_imports(source: str, forbidden: tuple[str, ...], package: str = "") -> list[str]:
    """One line per import of a forbidden top-level package (or any module below it)."""
    hits = []
    for line, module in imported_modules(source, package):
        top = module.split(".")[0]
        if top in forbidden:
            hits.append(f"line {line}: imports {module}")
    return sorted(set(hits), key=lambda h: (int(h.split()[1].rstrip(":")), h))


def _layer_files(layer: str) -> list[Path]:
    return sorted(p for p in (ROOT / layer).rglob("*.py") if "__pycache__" not in p.parts)


def violations() -> list[str]:
    found = []
    for layer, forbidden in RULES.items():
        for path in _layer_files(layer):
            rel = path.relative_to(ROOT)
            package = ".".join(rel.with_suffix("").parts[:-1])
            for hit in forbidden_imports(path.read_text(), forbidden, package):
                module = hit.split("imports ", 1)[1]
                if not any(rel.as_posix() == f and (module == m or module.startswith(m + "."))
                           for f, m in EXCEPTIONS):
                    found.append(f"{rel}: {hit}")
    return found


def test_every_layer_has_files_to_check():
    # Not vacuous: a renamed directory would otherwise pass with nothing read.
    for layer in RULES:
        assert _layer_files(layer), f"no .py files under {layer}/"


def test_nothing_below_the_cli_imports_it_and_the_shipped_code_does_not_import_the_sandbox():
    assert violations() == []


def test_the_listed_exceptions_still_exist():
    # An exception whose import is gone must be removed from the list, not left to excuse a new one.
    for (rel, module), why in EXCEPTIONS.items():
        assert why
        mods = [m for _, m in imported_modules((ROOT / rel).read_text())]
        assert any(m == module or m.startswith(module + ".") for m in mods), (rel, module)


# ---------------------------------------------------------------- controls: the checker can fail

@pytest.mark.parametrize("source", [
    "from cli.produce import put\n",
    "import cli.produce\n",
    "from cli import produce\n",
    "import cli\n",
    "def f():\n    from cli.produce import events\n    return events\n",
    "import importlib\nm = importlib.import_module('cli.produce')\n",
])
def test_control_an_import_of_the_cli_is_reported(source):
    assert forbidden_imports(source, ("cli",)), source


def test_control_the_report_names_the_line_and_module():
    src = "import json\n\nfrom cli.produce import put\n"
    assert forbidden_imports(src, ("cli",)) == ["line 3: imports cli.produce", "line 3: imports cli.produce.put"]


@pytest.mark.parametrize("source", [
    "from connectors.producer import put\n",
    "import client\n",
    "from clickhouse import cli\n",  # a name `cli` inside another package
    "x = 'cli.produce'\n",
])
def test_control_other_imports_are_not_reported(source):
    assert forbidden_imports(source, ("cli",)) == [], source


def test_control_a_relative_import_is_resolved():
    # `from ..sandbox import stacks` inside connectors/x.py resolves to sandbox.stacks.
    assert forbidden_imports("from ..sandbox import stacks\n", ("sandbox",), package="connectors")
    assert forbidden_imports("from . import stacks\n", ("sandbox",), package="connectors") == []


def test_control_the_sandbox_rule_reports_a_connector_importing_the_sandbox():
    assert forbidden_imports("from sandbox.managed_flink.model import TRANSIENT\n", RULES["connectors"]) == [
        "line 1: imports sandbox.managed_flink.model", "line 1: imports sandbox.managed_flink.model.TRANSIENT"]

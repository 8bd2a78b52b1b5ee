"""The Managed Flink zip (`homeflow package`) runs everything the job imports: each distribution
the job reaches is either part of the Managed Flink Python runtime or shipped in the zip's
site_packages/. Nothing local catches a gap (the local stand-in runs the zip with this
virtualenv, which has everything), so it is checked here from the source and the installed
metadata:

- the runtime is apache-flink's transitive requirement closure (what Managed Flink installs with
  PyFlink: apache-beam, pyarrow, pandas, numpy, fastavro, ...) plus the standard library;
- the job's imports are read with ast (also those inside functions) from main.py and every module
  of the shipped packages reachable from it through the job's own imports: CLI-side modules that
  ship but the job never imports (cfn_template -> yaml, duckdb_reader -> duckdb, ...) don't count;
- a top-level module maps to its distributions with importlib.metadata.packages_distributions();
- site_packages/ is `pip install --no-deps` of RUNTIME_REQUIREMENTS, so every requirement of a
  shipped distribution must itself be shipped or guaranteed by the runtime, at a version the
  runtime's own constraints guarantee (pydantic needs typing-extensions>=4.16; apache-beam only
  promises >=3.7, so it ships).
"""
from __future__ import annotations

import importlib.metadata as md
import re
import sys
from collections import defaultdict
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from cli.package import MAIN, PACKAGES, RUNTIME_REQUIREMENTS, _pinned
from tests.unit.test_layering import imported_modules

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_ROOT = "apache-flink"
ENTRY = "jobs.ingest"
# Extras the job relies on (pyproject: pyiceberg[pyarrow]; DynamoDbCatalog needs the dynamodb extra).
EXTRAS = {"pyiceberg": ("pyarrow", "dynamodb")}
# Requirements of shipped distributions the runtime satisfies although its declared constraints
# alone don't guarantee the version -> why that is accepted instead of shipping it.
ACCEPTED_RUNTIME_VERSIONS = {
    "pyarrow": "compiled, PyFlink's own Arrow: never shipped. pyiceberg[pyarrow] needs >=9,<16; apache-flink "
               "allows >=5 but apache-beam<2.49 caps it <12, so the runtime's resolution is pyarrow 11.x",
}


def canon(name: str) -> str:
    return canonicalize_name(name)


# ---- distributions: the runtime closure and the shipped set ----------------------------------

def _applies(req: Requirement, extras: tuple[str, ...]) -> bool:
    """Does `req` apply on this platform (Linux x86_64, CPython 3.11: the same as Managed Flink)
    for a distribution installed with `extras`?"""
    return req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras))


def requirements(dist: str, extras: tuple[str, ...] = ()) -> list[Requirement]:
    return [r for r in map(Requirement, md.requires(dist) or []) if _applies(r, extras)]


def runtime_closure(root: str = RUNTIME_ROOT) -> tuple[dict[str, str], dict[str, list[SpecifierSet]]]:
    """{distribution: installed version} of `root` and everything it requires, transitively, and
    {distribution: the specifiers the closure puts on it} (what the runtime guarantees)."""
    versions: dict[str, str] = {}
    constraints: dict[str, list[SpecifierSet]] = defaultdict(list)
    seen: set[tuple[str, tuple[str, ...]]] = set()
    todo = [(root, ())]
    while todo:
        name, extras = todo.pop()
        if (canon(name), extras) in seen:
            continue
        seen.add((canon(name), extras))
        versions[canon(name)] = md.version(name)  # missing metadata -> PackageNotFoundError: fix the venv
        for req in requirements(name, extras):
            constraints[canon(req.name)].append(req.specifier)
            todo.append((req.name, tuple(sorted(req.extras))))
    return versions, constraints


def shipped(runtime_requirements: tuple[str, ...] = RUNTIME_REQUIREMENTS) -> dict[str, Version]:
    """{distribution: pinned version} that site_packages/ holds (the lock's pins, as package.py installs)."""
    return {canon(line.split("==")[0]): Version(line.split("==")[1]) for line in _pinned(runtime_requirements)}


# ---- the job's imports ----------------------------------------------------------------------

def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def job_imports(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES, entry: str = ENTRY,
                main_source: str | None = MAIN) -> dict[str, set[tuple[str, int]]]:
    """{top-level module outside the job's packages: {(job module, line), ...}} for every import
    in `main_source` and in the modules of `packages` (.py files under `root`) reachable from it
    (or from `entry` if there is no main) through the job's own imports, transitively."""
    found: dict[str, set[tuple[str, int]]] = defaultdict(set)
    todo: list[tuple[str, str]] = [("main", main_source)] if main_source is not None else []
    if main_source is None:
        todo.append((entry, _module_file(root, entry).read_text()))
    done: set[str] = set()
    while todo:
        name, source = todo.pop()
        if name in done:
            continue
        done.add(name)
        is_pkg = (f := _module_file(root, name)) is not None and f.name == "__init__.py"
        package = name if is_pkg else name.rpartition(".")[0]
        for line, module in imported_modules(source, package):
            top = module.split(".")[0]
            if top not in packages:
                found[top].add((name, line))
                continue
            parts = module.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
                sub = ".".join(parts[:i])
                if sub not in done and (f := _module_file(root, sub)) is not None:
                    todo.append((sub, f.read_text()))
    return dict(found)


# ---- the checks -----------------------------------------------------------------------------

def _where(places: set[tuple[str, int]]) -> str:
    lines: dict[str, list[int]] = defaultdict(list)
    for module, line in sorted(places):
        lines[module].append(line)
    return ", ".join(f"{m}:{','.join(map(str, ls))}" for m, ls in lines.items())


def missing_distributions(imports: dict[str, set[tuple[str, int]]], runtime: set[str], site: set[str]) -> list[str]:
    """One line per imported top-level module that neither the standard library, the runtime nor
    site_packages provides."""
    dists = md.packages_distributions()
    out = []
    for top, where in sorted(imports.items()):
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        providers = {canon(d) for d in dists.get(top, [])}
        if not providers:
            out.append(f"{top}: no installed distribution provides it (imported at {_where(where)})")
        elif not providers & (runtime | site):
            out.append(f"{top}: distribution {'/'.join(sorted(providers))} is neither in the Managed Flink runtime "
                       f"nor in RUNTIME_REQUIREMENTS (imported at {_where(where)})")
    return out


def _bounds(spec: SpecifierSet) -> tuple[Version | None, Version | None]:
    """(lowest, highest) version `spec` allows, roughly: a floor from >=, >, ==, ~=, a ceiling
    from <, <=, ==, ~= (None: unbounded)."""
    lo = hi = None
    for s in spec:
        v = Version(s.version.rstrip(".*"))
        if s.operator in (">=", ">", "==", "===", "~="):
            lo = v if lo is None else max(lo, v)
        if s.operator in ("<", "<=", "==", "==="):
            hi = v if hi is None else min(hi, v)
        if s.operator == "~=":
            rel = v.release[:-1]
            cap = Version(".".join(map(str, (*rel[:-1], rel[-1] + 1))))
            hi = cap if hi is None else min(hi, cap)
    return lo, hi


def _guaranteed(need: SpecifierSet, given: list[SpecifierSet]) -> bool:
    """Do the runtime's own constraints on a distribution (`given`) imply `need`'s bounds?"""
    need_lo, need_hi = _bounds(need)
    bounds = [_bounds(g) for g in given]
    los = [lo for lo, _ in bounds if lo is not None]
    his = [hi for _, hi in bounds if hi is not None]
    return ((need_lo is None or (los and max(los) >= need_lo))
            and (need_hi is None or (his and min(his) <= need_hi)))


def unmet_requirements(site: dict[str, Version], runtime: set[str],
                       constraints: dict[str, list[SpecifierSet]]) -> list[str]:
    """One line per requirement of a shipped distribution that --no-deps leaves unmet: not shipped
    (or shipped at a pin outside it) and not guaranteed by the runtime."""
    out = []
    for dist, version in sorted(site.items()):
        for req in requirements(dist, EXTRAS.get(dist, ())):
            name = canon(req.name)
            if name in site:
                if not req.specifier.contains(site[name], prereleases=True):
                    out.append(f"{dist} {version} needs {req}; site_packages pins {name}=={site[name]}")
            elif name not in runtime:
                out.append(f"{dist} {version} needs {req}: neither shipped nor in the runtime")
            elif not _guaranteed(req.specifier, constraints[name]) and name not in ACCEPTED_RUNTIME_VERSIONS:
                given = ", ".join(sorted({str(s) or "any" for s in constraints[name]}))
                out.append(f"{dist} {version} needs {req}; the runtime only guarantees {name} {given}: ship it")
    return out


def _wheel_tags(dist: str) -> list[str]:
    text = md.distribution(dist).read_text("WHEEL") or ""
    return re.findall(r"^Tag: (\S+)", text, re.M)


def bad_shipped_builds(site: dict[str, Version], runtime: set[str]) -> list[str]:
    """Compiled distributions: never one the runtime already has (pyarrow, numpy, pandas, ... are
    PyFlink's), and the others built for CPython 3.11 on Linux x86_64 (Managed Flink's platform;
    pip on this machine installs what the venv has, checked through the venv's copy)."""
    out = []
    for dist, version in sorted(site.items()):
        tags = _wheel_tags(dist)
        pure = all(t.endswith("-none-any") for t in tags)
        if md.version(dist) != str(version):
            out.append(f"{dist}: the venv has {md.version(dist)}, the lock pins {version}: re-sync the venv")
        if pure:
            continue
        if dist in runtime:
            out.append(f"{dist}: compiled and already in the Managed Flink runtime: do not ship it")
        if not any(re.fullmatch(r"(cp311|py3)-(cp311|abi3|none)-(manylinux\w*_x86_64|any)", t) for t in tags):
            out.append(f"{dist}: wheel tags {tags} don't fit CPython 3.11 on Linux x86_64")
    return out


# ---- tests ----------------------------------------------------------------------------------

def test_every_runtime_requirement_is_pinned_in_the_lock():
    assert sorted(shipped()) == sorted(canon(n) for n in RUNTIME_REQUIREMENTS)


def test_the_job_imports_nothing_the_managed_flink_runtime_and_the_zip_lack():
    runtime, _ = runtime_closure()
    imports = job_imports()
    assert {"pyflink", "pyiceberg", "boto3", "pyarrow", "numpy", "fastavro"} <= set(imports)  # the walk reached them
    assert missing_distributions(imports, set(runtime), set(shipped())) == []


def test_cli_side_modules_that_ship_are_not_followed():
    imports = job_imports()
    assert "yaml" not in imports and "duckdb" not in imports  # cfn_template, duckdb_reader: never imported by the job
    importers = {module for places in imports.values() for module, _ in places}
    assert "jobs.ingest" in importers and "connectors.lake_seed" in importers
    assert not importers & {"connectors.cfn_template", "connectors.duckdb_reader", "connectors.managed_flink",
                            "connectors.producer", "connectors.stacks"}


def test_shipped_distributions_need_nothing_more_under_no_deps():
    runtime, constraints = runtime_closure()
    assert unmet_requirements(shipped(), set(runtime), constraints) == []


def test_shipped_compiled_wheels_fit_managed_flink_and_are_not_the_runtimes():
    runtime, _ = runtime_closure()
    site = shipped()
    assert not {"pyarrow", "numpy", "pandas"} & set(site)
    assert bad_shipped_builds(site, set(runtime)) == []


# Controls: the checks report what they exist to find.

def test_control_runtime_requirements_without_boto3_report_boto3():
    runtime, _ = runtime_closure()
    without = tuple(n for n in RUNTIME_REQUIREMENTS if n != "boto3")
    missing = missing_distributions(job_imports(), set(runtime), set(shipped(without)))
    assert len(missing) == 1 and missing[0].startswith("boto3: distribution boto3 is neither"), missing
    assert "connectors.aws:" in missing[0]


def test_control_runtime_requirements_without_pyiceberg_report_it_and_its_no_deps_gaps():
    runtime, constraints = runtime_closure()
    without = tuple(n for n in RUNTIME_REQUIREMENTS if n not in ("pyiceberg", "pydantic-core", "typing-extensions"))
    missing = missing_distributions(job_imports(), set(runtime), set(shipped(without)))
    assert [m.split(":")[0] for m in missing] == ["pyiceberg"], missing
    unmet = unmet_requirements(shipped(without), set(runtime), constraints)
    assert any(u.startswith("pydantic ") and "pydantic-core" in u and "neither shipped" in u for u in unmet), unmet
    assert any(u.startswith("pydantic ") and "typing-extensions" in u and "only guarantees" in u for u in unmet), unmet


def test_control_synthetic_job_lazy_import_outside_both_sets_is_reported(tmp_path):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "connectors").mkdir()
    (tmp_path / "jobs" / "__init__.py").write_text("")
    (tmp_path / "connectors" / "__init__.py").write_text("")
    (tmp_path / "jobs" / "ingest.py").write_text("import os\n\ndef main():\n    from connectors import reached\n")
    (tmp_path / "connectors" / "reached.py").write_text("def f():\n    import yaml\n    import numpy\n")
    (tmp_path / "connectors" / "cli_only.py").write_text("import duckdb\n")  # ships, never imported by the job
    imports = job_imports(tmp_path, ("jobs", "connectors"), "jobs.ingest", main_source=None)
    assert set(imports) == {"os", "yaml", "numpy"}
    runtime, _ = runtime_closure()
    missing = missing_distributions(imports, set(runtime), set(shipped()))
    assert [m.split(":")[0] for m in missing] == ["yaml"] and "connectors.reached:2" in missing[0], missing


def test_control_shipping_a_compiled_runtime_distribution_is_reported():
    runtime, _ = runtime_closure()
    bad = bad_shipped_builds({**shipped(), "pyarrow": Version(md.version("pyarrow"))}, set(runtime))
    assert bad == ["pyarrow: compiled and already in the Managed Flink runtime: do not ship it"]

"""Gauges of the Python operators are Java counters set from the task thread (jobs/functions.py
Level): a Python gauge is called by Flink's metrics thread through an interpreter that thread does
not own, which crashed the JVM while the task thread ran Python (SIGSEGV in PyObject_GetItem)."""
from __future__ import annotations

import ast
from pathlib import Path

from jobs.functions import Level

ROOT = Path(__file__).resolve().parents[2]


class _Counter:
    def __init__(self):
        self.count, self.calls = 0, 0

    def inc(self, n: int = 1):
        self.count += n
        self.calls += 1


class _Group:
    def __init__(self):
        self.counters: dict[str, _Counter] = {}

    def counter(self, name):
        return self.counters.setdefault(name, _Counter())


def test_a_level_reads_as_the_value_last_set_and_writes_only_changes():
    g = _Group()
    lv = Level(g, "homeflow_x")
    for v in (5, 5, 2, 0, 9, 9):
        lv.set(v)
        assert g.counters["homeflow_x"].count == v
    assert g.counters["homeflow_x"].calls == 4


def _gauge_calls(source: str) -> list[int]:
    return [n.lineno for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "gauge"]


def test_no_python_operator_registers_a_python_gauge():
    found = {p.name: _gauge_calls(p.read_text()) for p in (ROOT / "jobs").glob("*.py")}
    assert {k: v for k, v in found.items() if v} == {}


def test_control_a_python_gauge_is_found():
    assert _gauge_calls('group.gauge("homeflow_x", lambda: 1)\n') == [1]

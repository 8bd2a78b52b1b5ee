"""The dead-letter archive's retention deletes whole days older than the cut-off and nothing
else, commits nothing when nothing is that old, and refuses a cut-off that is not a day boundary
(which could split a day's file). Runs dev.homeflow.flink.DeadLetterRetention in jshell against
a real Iceberg table on local disk, five days with one data file each."""
from __future__ import annotations

import subprocess
from pathlib import Path

from sandbox.paths import JAR

SCRIPT = Path(__file__).parent.parent / "java" / "dead_letter_retention.jsh"


def test_retention_deletes_whole_older_days_only():
    import pyflink
    lib = Path(pyflink.__file__).parent / "lib"
    cp = ":".join([str(JAR), *map(str, sorted(lib.glob("*.jar")))])
    out = subprocess.run(["jshell", "--class-path", cp, str(SCRIPT)], capture_output=True, text=True,
                         timeout=240).stdout
    lines = dict(line.split(" -> ", 1) for line in out.splitlines() if " -> " in line)
    days = "2026-11-30.parquet,2026-12-01.parquet,2026-12-02.parquet,2026-12-03.parquet,2026-12-04.parquet"
    assert lines["before"] == days, out  # control: the table held all five days
    assert lines["cutoff(12-04T10:00, 2 days)"] == "2026-12-02T00:00:00Z", out
    assert lines["deleted(keep from 12-02)"] == "2", out
    assert lines["after"] == "2026-12-02.parquet,2026-12-03.parquet,2026-12-04.parquet", out
    assert lines["again(nothing older)"] == "0" and lines["snapshots added by a run with nothing to delete"] == "0", out
    assert lines["unaligned"] == "refused", out

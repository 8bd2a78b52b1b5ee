"""The Kinesis sinks' checkpointed buffer (PutRecords entries waiting to be sent) must restore
with non-ASCII partition keys. The connector's serializer writes a key's length in UTF-16 units
but its bytes as UTF-8, so such a buffer cannot be read back (the job fails on every restore;
found by the upgrade drill). Runs the Java side in jshell against the built connector jar: the
stock serializer is the control that fails, ours round-trips, and reads the stock format too."""
from __future__ import annotations

import subprocess
from pathlib import Path

from sandbox.paths import JAR

SCRIPT = Path(__file__).parent.parent / "java" / "sink_state.jsh"
KEYS = "acct-1|ключ-009|鍵-019|🔑-039|clé|"


def test_sink_state_keeps_non_ascii_partition_keys():
    import pyflink
    lib = Path(pyflink.__file__).parent / "lib"
    cp = ":".join([str(JAR), *map(str, sorted(lib.glob("*.jar")))])
    out = subprocess.run(["jshell", "--class-path", cp, str(SCRIPT)], capture_output=True, text=True,
                         timeout=180).stdout
    lines = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line and "->" in line)
    assert lines["stock->stock FAILS"], out  # the connector's own serializer cannot restore them
    assert lines["fixed->fixed"] == KEYS, out
    assert lines["stock->fixed(v1)"] == KEYS, out  # state written before the fix still restores

"""Build the Managed Service for Apache Flink application zip.

Layout (the AWS Managed Flink Python examples' conventions):

    main.py                      entry point (run option `python`)
    jobs/ udfs/ connectors/ conf/   the job's code
    lib/homeflow-connectors.jar  ONE jar with every Java dependency (run option `jarfile`)
    site_packages/               what the runtime lacks: pyiceberg, boto3, ... (run option `pyFiles`)

Run options to set on the application (property group kinesis.analytics.flink.run.options):
    python=main.py  jarfile=lib/homeflow-connectors.jar  pyFiles=site_packages/
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from sandbox.paths import JAR, ROOT

PACKAGES = ("jobs", "udfs", "connectors", "conf")
# What the job imports at run time beyond PyFlink (the Managed Flink runtime has apache-flink and
# its requirements: apache-beam, pyarrow, pandas, numpy, fastavro, requests, ruamel.yaml, ...), and,
# as pip runs with --no-deps, every requirement of those the runtime does not guarantee.
# tests/unit/test_package_deps.py checks this list against the job's imports and the metadata.
RUNTIME_REQUIREMENTS = (
    # boto3: the routing-table poller, acks, the lake's S3/DynamoDB clients
    "boto3", "botocore", "jmespath", "s3transfer", "urllib3", "python-dateutil", "six",
    # pyiceberg[pyarrow,dynamodb]: the lake (read publisher, read pointer, lake view, dedup seed);
    # pyarrow itself is PyFlink's, never shipped
    "pyiceberg", "click", "fsspec", "mmhash3", "rich", "markdown-it-py", "mdurl", "pygments",
    "sortedcontainers", "strictyaml",
    "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
    # pydantic needs typing-extensions>=4.16 and pyiceberg pyparsing>=3.1; the runtime's own
    # constraints only promise >=4.12 and >=2.4.2, so the pinned ones ship (pure Python)
    "typing-extensions", "pyparsing",
)
# (orjson, which the router reads records and writes batches with, is apache-beam's requirement:
# the runtime has it, compiled.)
RUN_OPTIONS = {"python": "main.py", "jarfile": "lib/homeflow-connectors.jar", "pyFiles": "site_packages/"}

MAIN = '''"""Managed Flink entry point: properties from /etc/flink/application_properties.json."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
for p in (HERE, os.path.join(HERE, "site_packages")):
    if p not in sys.path:
        sys.path.insert(0, p)

from jobs.ingest import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
'''


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pinned(names: tuple[str, ...]) -> list[str]:
    """`name==version` from requirements.lock for each of `names` (spelt either way: - _ .)."""
    lock = [line.strip() for line in (ROOT / "requirements.lock").read_text().splitlines()
            if "==" in line and not line.lstrip().startswith("#")]
    wanted = {_canonical(n) for n in names}
    pins = [line for line in lock if _canonical(line.split("==")[0]) in wanted]
    unpinned = wanted - {_canonical(line.split("==")[0]) for line in pins}
    if unpinned:
        raise SystemExit(f"requirements.lock pins no {', '.join(sorted(unpinned))}")
    return pins


def build_zip(output: str | Path) -> Path:
    out = Path(output)
    if not out.is_absolute():
        out = ROOT / out
    if not JAR.exists():
        raise SystemExit(f"{JAR} is missing: run scripts/bootstrap.sh (mvn package) first")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site_packages"
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                        *_pinned(RUNTIME_REQUIREMENTS)], check=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("main.py", MAIN)
            for pkg in PACKAGES:
                for f in sorted((ROOT / pkg).rglob("*")):
                    if f.is_file() and "__pycache__" not in f.parts and f.suffix in (".py", ".json"):
                        z.write(f, f.relative_to(ROOT).as_posix())
            z.write(JAR, "lib/homeflow-connectors.jar")
            for f in sorted(site.rglob("*")):
                if f.is_file() and "__pycache__" not in f.parts:
                    z.write(f, f"site_packages/{f.relative_to(site).as_posix()}")
    return out

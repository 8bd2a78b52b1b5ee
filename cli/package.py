"""Build the Managed Service for Apache Flink application zip.

Layout (the AWS Managed Flink Python examples' conventions):

    main.py                      entry point (run option `python`)
    jobs/ udfs/ connectors/ conf/   the job's code
    lib/homeflow-connectors.jar  ONE jar with every Java dependency (run option `jarfile`)
    site_packages/               pure-Python dependencies the runtime lacks (run option `pyFiles`)

Run options to set on the application (property group kinesis.analytics.flink.run.options):
    python=main.py  jarfile=lib/homeflow-connectors.jar  pyFiles=site_packages/
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from sandbox.paths import JAR, ROOT

PACKAGES = ("jobs", "udfs", "connectors", "conf")
# What the job imports at run time beyond PyFlink: boto3 for the routing-table poller.
RUNTIME_REQUIREMENTS = ("boto3", "botocore", "jmespath", "s3transfer", "urllib3", "python-dateutil", "six")
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


def _pinned(names: tuple[str, ...]) -> list[str]:
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    wanted = {n.lower() for n in names}
    return [line for line in lock if line.split("==")[0].lower() in wanted]


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

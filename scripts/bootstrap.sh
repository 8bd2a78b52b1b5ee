#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: Python virtualenv with the pinned packages, and the
# connector uber-jar built by Maven. Re-running only redoes what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "homeflow needs Python 3.11 (Managed Flink 1.20 runs 3.11)"'
command -v java >/dev/null || { echo "bootstrap: java (17) is required" >&2; exit 1; }
command -v mvn >/dev/null || { echo "bootstrap: maven is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "bootstrap: node and npm are required (kinesis-mock, the resharding emulator)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.homeflow-lock
if [ ! -f "$stamp" ] || ! cmp -s requirements.lock "$stamp" || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing pinned Python packages (first run downloads ~400 MB)"
  .venv/bin/pip install --quiet --upgrade "pip==25.3"
  .venv/bin/pip install --quiet -r requirements.lock
  .venv/bin/pip install --quiet --no-deps -e .
  cp requirements.lock "$stamp"
fi

# The infrastructure linters (cfn-lint, checkov) pin packages the job's own set cannot share.
iac_stamp=.venv-iac/.homeflow-lock
if [ ! -f "$iac_stamp" ] || ! cmp -s requirements-iac.lock "$iac_stamp"; then
  echo "bootstrap: installing the infrastructure linters into .venv-iac"
  [ -x .venv-iac/bin/python ] || "$PY" -m venv .venv-iac
  .venv-iac/bin/pip install --quiet --upgrade "pip==25.3"
  .venv-iac/bin/pip install --quiet -r requirements-iac.lock
  cp requirements-iac.lock "$iac_stamp"
fi

# kinesis-mock (npm kinesis-local), the Kinesis emulator the resharding test runs beside moto.
npm_stamp=sandbox/npm/node_modules/.homeflow-lock
if [ ! -f "$npm_stamp" ] || ! cmp -s sandbox/npm/package-lock.json "$npm_stamp"; then
  echo "bootstrap: installing kinesis-mock (npm, sandbox/npm)"
  npm ci --prefix sandbox/npm --no-audit --no-fund --loglevel=error
  cp sandbox/npm/package-lock.json "$npm_stamp"
fi

jar=target/homeflow-connectors.jar
if [ ! -f "$jar" ] || [ pom.xml -nt "$jar" ] || [ -n "$(find src -newer "$jar" -type f 2>/dev/null | head -1)" ]; then
  echo "bootstrap: building the connector uber-jar with Maven"
  mvn -q -B package -DskipTests
fi
echo "bootstrap: ready (.venv, .venv-iac, sandbox/npm, $jar)"

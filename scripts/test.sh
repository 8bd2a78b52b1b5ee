#!/usr/bin/env bash
# README command 2: set up everything, then run the whole test suite (unit + end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"

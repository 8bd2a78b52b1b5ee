#!/usr/bin/env bash
# README command 1: set up everything, run the two-region demo on the local sandbox, tear down.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/homeflow demo "$@"

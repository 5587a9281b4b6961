#!/usr/bin/env bash
# Install everything and run the whole test suite (what CI runs through .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/lint.sh  # ruff and mypy first: a failure there fails the run
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"

#!/usr/bin/env bash
# The static checks (scripts/test.sh runs them before the tests): ruff's lint rules and mypy, both configured in
# pyproject.toml, over the builder (core/), the CI adapters (integrations/), the tests and the scripts.
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0
.venv/bin/ruff check --quiet || failed=1

# core/ and integrations/ import as `dockyard` and `dockyard_integrations` (setuptools' package-dir, through an
# import hook mypy does not follow): these links give mypy those names (pyproject.toml's mypy_path).
mkdir -p .cache/mypy-path
ln -sfn ../../core .cache/mypy-path/dockyard
ln -sfn ../../integrations .cache/mypy-path/dockyard_integrations
# mypy names a file by the link's path; the sed gives it back its path in the checkout.
.venv/bin/mypy -p dockyard -p dockyard_integrations -p tests.support |
  sed -e 's|^\.cache/mypy-path/dockyard/|core/|' -e 's|^\.cache/mypy-path/dockyard_integrations/|integrations/|' ||
  failed=1
exit "$failed"

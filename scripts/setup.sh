#!/usr/bin/env bash
# One-time (and fast second-time) set-up on a fresh machine: the venv with mood-monitor in it,
# the Kafka jars (cached per version under ~/.cache/mood-monitor) and redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version 2>&1)"
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python dependencies (pip cache: ~/.cache/pip)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
else
  echo "setup: Python dependencies up to date ($stamp)"
fi
.venv/bin/python -m devstack.stack install

#!/usr/bin/env bash
# One-time (and fast second-time) set-up on a fresh machine: the venv with mood-monitor in it
# (its dependencies from the lock file),
# the Kafka jars (cached per version under ~/.cache/mood-monitor) and redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version 2>&1)"
  "$PY" -m venv .venv
fi
# The exact, hash-checked versions of requirements-dev.lock (make lock writes it from
# pyproject.toml), then mood-monitor itself, editable, without resolving anything.
lock=requirements-dev.lock
stamp=".venv/.installed-$(cat pyproject.toml "$lock" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python dependencies from $lock (pip cache: ~/.cache/pip)"
  .venv/bin/python -m pip install -q --require-hashes -r "$lock"
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  # pip check: the installed set is consistent; lockcheck: it meets every pyproject.toml requirement
  if ! problems=$(.venv/bin/python -m pip check 2>&1 && .venv/bin/python scripts/lockcheck.py 2>&1); then
    echo "$problems" | head -5 >&2
    echo "setup: $lock does not satisfy pyproject.toml: run make lock and commit both lock files" >&2
    exit 1
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
else
  echo "setup: Python dependencies up to date ($stamp)"
fi
.venv/bin/python -m devstack.stack install

#!/usr/bin/env bash
# make lock: resolve pyproject.toml into two hash-pinned lock files for CPython 3.11 on
# x86_64 Linux (the dev machines, CI and the Docker image):
#   requirements-dev.lock  the dependencies and the dev extra: what `make setup` and CI install
#   requirements.lock      the dependencies only, the same versions: what the Docker image installs
# Versions already in the lock files are kept; UPGRADE=1 (make lock UPGRADE=1) re-resolves all to
# the newest allowed, UPGRADE_PACKAGE=name only that one. torch is PyPI's default build, as before.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.venv/bin/uv}
if [ ! -x "$UV" ] && ! command -v "$UV" > /dev/null; then
  echo "lock: $UV not found: run make setup first (uv is in the dev extra)" >&2
  exit 1
fi
args=(pip compile pyproject.toml --generate-hashes --python-version 3.11
      --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" --quiet)
if [ -n "${UPGRADE:-}" ]; then args+=(--upgrade); fi
if [ -n "${UPGRADE_PACKAGE:-}" ]; then args+=(--upgrade-package "$UPGRADE_PACKAGE"); fi
"$UV" "${args[@]}" --extra dev -o requirements-dev.lock
# the runtime set, constrained to the versions just chosen for the dev set
"$UV" "${args[@]}" --constraint requirements-dev.lock -o requirements.lock
echo "lock: wrote requirements-dev.lock ($(grep -c '==' requirements-dev.lock) packages) and requirements.lock ($(grep -c '==' requirements.lock))"

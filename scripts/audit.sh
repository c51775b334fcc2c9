#!/usr/bin/env bash
# make audit: the known advisories (pip-audit; PyPI's vulnerability data by default,
# AUDIT_SERVICE=osv for OSV) against the exact versions of requirements-dev.lock, a superset of
# the image's requirements.lock. Exit 0: none known; 1: advisories found (listed); 2: no verdict,
# because the vulnerability database could not be reached or a package could not be looked up
# (pip-audit would otherwise skip it and still say "No known vulnerabilities found").
set -uo pipefail
cd "$(dirname "$0")/.."
lock=${AUDIT_LOCK:-requirements-dev.lock}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
.venv/bin/pip-audit -r "$lock" --require-hashes --disable-pip --strict --progress-spinner off \
  --vulnerability-service "${AUDIT_SERVICE:-pypi}" > "$out" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q -E "could not be audited|ConnectionError|NameResolutionError|Max retries exceeded" "$out"; then
  grep -m1 -E "could not be audited|Error" "$out" | cut -c1-200 >&2
  echo "audit: NO VERDICT: the vulnerability database (service ${AUDIT_SERVICE:-pypi}) could not be reached" \
       "or did not know a locked package; nothing was checked. Run make audit where it is reachable." >&2
  exit 2
fi
cat "$out"
exit $rc

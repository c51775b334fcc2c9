"""scripts/setup.sh, after installing requirements-dev.lock: is every requirement of
pyproject.toml (the dev extra included) met by what the lock installed? A dependency added to
pyproject.toml without `make lock` fails here with its name, instead of an ImportError later."""

import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import Requirement


def problems(pyproject: str = "pyproject.toml") -> list[str]:
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    found = []
    for spec in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(spec)
        if req.marker and not req.marker.evaluate({"extra": "dev"}):
            continue
        try:
            have = version(req.name)
        except PackageNotFoundError:
            found.append(f"{req.name} is not in the lock")
            continue
        if not req.specifier.contains(have, prereleases=True):
            found.append(f"{req.name} {have} is locked, pyproject.toml asks for {req.specifier}")
    return found


if __name__ == "__main__":
    bad = problems()
    for line in bad:
        print(f"setup: {line}", file=sys.stderr)
    sys.exit(1 if bad else 0)

"""requirements-dev.lock (make setup, CI) and requirements.lock (the Docker image): complete,
hash-pinned, consistent with pyproject.toml and with each other, above the advisory floors."""

import importlib.util
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", re.M)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(name: str) -> dict[str, str]:
    return {_norm(n): v for n, v in PIN.findall((ROOT / name).read_text())}


def _lockcheck():
    spec = importlib.util.spec_from_file_location("lockcheck", ROOT / "scripts" / "lockcheck.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_pin_carries_hashes():
    for name in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / name).read_text()
        blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text.split("\n", 2)[2])
        assert len(blocks) == len(PIN.findall(text)) > 50
        for block in blocks:
            assert "--hash=sha256:" in block, block.splitlines()[0]


def test_the_locks_meet_pyproject_and_agree_with_each_other():
    dev, runtime = locked("requirements-dev.lock"), locked("requirements.lock")
    for spec in PROJECT["dependencies"]:
        req = Requirement(spec)
        assert _norm(req.name) in runtime, f"{req.name}: run make lock"
        assert req.specifier.contains(runtime[_norm(req.name)], prereleases=True), req
    for spec in PROJECT["optional-dependencies"]["dev"]:
        req = Requirement(spec)
        assert req.specifier.contains(dev[_norm(req.name)], prereleases=True), f"{req}: run make lock"
    assert {n: dev[n] for n in runtime} == runtime, "the image must run the versions CI tested"
    assert not {"pytest", "mypy", "ruff", "uv"} & set(runtime), "dev tools stay out of the image"


def test_locked_versions_are_above_the_known_advisories():
    runtime = locked("requirements.lock")
    # name: (the first fixed version, the last affected one), docs/security.md "Supply chain"
    floors = {
        "orjson": ("3.11.5", "3.11.4"),
        "torch": ("2.10", "2.9.1"),
        "tqdm": ("4.66.3", "4.66.2"),
        "kafka-python": ("3.0.12", "3.0.11"),
        "transformers": ("5.0", "4.53.0"),
    }
    specs = {_norm(Requirement(s).name): Requirement(s).specifier for s in PROJECT["dependencies"]}
    for name, (fixed, affected) in floors.items():
        assert Version(runtime[name].split("+")[0]) >= Version(fixed), name
        assert not specs[name].contains(affected, prereleases=True), (
            f"pyproject's {name} floor admits {affected}"
        )


def test_lockcheck_names_what_the_lock_lacks(tmp_path):
    text = (ROOT / "pyproject.toml").read_text()
    text = text.replace('"uv==', '"no-such-package-s3>=1", "uv==', 1).replace(
        '"tqdm>=4.66.3"', '"tqdm>=999"', 1
    )
    (tmp_path / "pyproject.toml").write_text(text)
    found = _lockcheck().problems(str(tmp_path / "pyproject.toml"))
    assert "no-such-package-s3 is not in the lock" in found
    assert any(p.startswith("tqdm ") and ">=999" in p for p in found)

"""What a `pip install` gives a user (#17): a real wheel, built from this checkout and installed
into a folder of its own, carries the shipped hooks and finds them with `logbook hooks`; and no
extra a user installs decides their torch build.
"""

from __future__ import annotations

import email
import json
import os
import re
import stat
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.name for p in (ROOT / "hooks").iterdir() if p.is_file() and "." not in p.name)

pytest.importorskip("hatchling", reason="the test extra installs hatchling to build the wheel")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, built offline with the installed hatchling (about 2 s)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("training_logbook-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed, without dependencies, into a folder that goes first on PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
        + [str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def _logbook(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m logbook ARGS` from the installed wheel, not from this checkout."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "logbook", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_wheel_carries_every_hook_executable(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        modes = {
            info.filename.removeprefix("logbook/_hooks/"): info.external_attr >> 16
            for info in zf.infolist()
            if info.filename.startswith("logbook/_hooks/")
        }
    assert SHIPPED == ["crash-forensics", "notify-webhook", "slurm-requeue"]
    for name in SHIPPED:
        assert name in modes, f"{name} is not in the wheel ({sorted(modes)})"
        assert modes[name] & stat.S_IXUSR, f"{name} is in the wheel without its executable bit"


def test_an_installed_logbook_lists_its_hooks_and_runs_them(
    installed: Path, tmp_path: Path
) -> None:
    listed = _logbook(installed, "hooks", "list", "--format", "json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["name"] for r in rows] == SHIPPED
    hooks_dir = installed / "logbook" / "_hooks"
    for row in rows:
        assert Path(row["path"]) == hooks_dir / row["name"]
        assert row["what it does"], f"{row['name']} has no summary"
    assert (
        rows[2]["what it does"] == "asks SLURM to requeue the job when a new allocation may help."
    )

    found = _logbook(installed, "hooks", "path", "slurm-requeue", cwd=tmp_path)
    assert (found.returncode, found.stderr) == (0, "")
    path = Path(found.stdout.strip())
    assert path == hooks_dir / "slurm-requeue"
    # The file a config points at runs as it is: outside SLURM it says so and leaves the job alone.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    payload = {"schema": "logbook.hook/1", "event": "on_end", "status": "preempted"}
    ran = subprocess.run(
        [str(path), "--dry-run"],
        input=json.dumps(payload),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert "SLURM_JOB_ID" in ran.stdout + ran.stderr


def test_an_unknown_hook_name_is_a_usage_error(installed: Path, tmp_path: Path) -> None:
    done = _logbook(installed, "hooks", "path", "crash-forensic", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert (
        'no shipped hook "crash-forensic" (shipped: crash-forensics, notify-webhook, '
        in done.stderr
    )
    assert "Traceback" not in done.stderr


# The extras -------------------------------------------------------------------------------------


def _extras(wheel: Path) -> dict[str, list[str]]:
    """Each extra of the wheel's metadata and the names of the packages it requires."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(zf.read(name))
    extras: dict[str, list[str]] = {e: [] for e in meta.get_all("Provides-Extra") or []}
    for requirement in meta.get_all("Requires-Dist") or []:
        marker = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", requirement)
        if marker:
            extras[marker.group(1)].append(_name(requirement))
    return extras


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _reaches_torch(package: str, seen: set[str] | None = None) -> list[str] | None:
    """The chain of installed packages from `package` to torch through their own (not optional)
    requirements, or None when there is none. Raises PackageNotFoundError when not installed."""
    seen = set() if seen is None else seen
    if package == "torch":
        return [package]
    seen.add(package)
    for requirement in metadata.requires(package) or []:
        if "extra ==" in requirement.replace("'", '"').replace('extra=="', 'extra == "'):
            continue
        dependency = _name(requirement)
        if dependency in seen:
            continue
        try:
            chain = _reaches_torch(dependency, seen)
        except metadata.PackageNotFoundError:
            continue  # not installed here: not in this environment's graph
        if chain:
            return [package, *chain]
    return None


def test_no_extra_a_user_installs_decides_the_torch_build(wheel: Path) -> None:
    extras = _extras(wheel)
    assert "integrations" in extras, "the extra the README and old install lines name is gone"
    reaching = {}
    for extra, packages in extras.items():
        if extra.startswith("test"):
            continue  # .ci/run installs the tests' extras next to a pinned torch
        for package in packages:
            try:
                chain = _reaches_torch(package)
            except metadata.PackageNotFoundError:
                continue
            if chain:
                reaching[f"[{extra}] {package}"] = " -> ".join(chain)
    assert not reaching, f"extras that would pull a torch of pip's choice: {reaching}"


def test_the_rule_sees_torch_behind_the_trainers_the_tests_install(wheel: Path) -> None:
    trainers = _extras(wheel)["test-integrations"]
    assert trainers, "the callbacks' tests need their trainers"
    try:
        chains = {p: _reaches_torch(p) for p in trainers}
    except metadata.PackageNotFoundError as e:
        pytest.skip(f"the integrations' trainers are not installed here ({e})")
    assert chains["lightning"] == ["lightning", "torch"]
    assert chains["accelerate"] == ["accelerate", "torch"]
    assert chains["transformers"] is None  # torch is only its optional extra

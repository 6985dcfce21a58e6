"""Fixtures for telemetry tests: a fake `nvidia-smi` whose output, exit code and ECC counter the
test sets through files, and which counts its calls."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

SCRIPT = """\
#!{python}
import pathlib, sys
here = pathlib.Path(__file__).resolve().parent
with open(here / "calls", "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
ecc = (here / "ecc").read_text().strip() if (here / "ecc").exists() else "0"
sys.stdout.write((here / "output").read_text().replace("{{ECC}}", ecc))
sys.exit(int((here / "code").read_text()))
"""


class FakeSmi:
    """An `nvidia-smi` executable in its own folder, first on `env`'s PATH."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        self.folder = folder
        script = folder / "nvidia-smi"
        script.write_text(SCRIPT.format(python=sys.executable))
        script.chmod(0o755)
        self.env = {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.set("", 0)

    def set(self, output: str, code: int = 0) -> FakeSmi:
        """Print `output` (with {ECC} replaced by the counter file) and exit with `code`."""
        (self.folder / "output").write_text(output)
        (self.folder / "code").write_text(str(code))
        return self

    @property
    def ecc_file(self) -> Path:
        return self.folder / "ecc"

    def calls(self) -> list[str]:
        path = self.folder / "calls"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def fake_smi(tmp_path: Path) -> FakeSmi:
    return FakeSmi(tmp_path / "fake-bin")

"""Run the shipped hooks in hooks/ the way logbook does: through logbook.supervisor.hook_runner.run_hook (#3)."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from logbook.supervisor.hook_runner import Hook, HookResult, run_hook

HOOKS_DIR = Path(__file__).resolve().parents[2] / "hooks"


class Shipped:
    """Runs a shipped hook with a payload, in an environment the test controls."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        # The scripts start with `#!/usr/bin/env python3`: let that be this interpreter.
        (self.bin / "python3").symlink_to(sys.executable)
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
        self.env = {k: v for k, v in os.environ.items() if k in keep}
        self.env["PATH"] = f"{self.bin}{os.pathsep}{os.environ.get('PATH', os.defpath)}"

    def fake(self, name: str, body: str) -> Path:
        """A fake program `name` first on PATH: a Python script with `body`."""
        path = self.bin / name
        path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
        path.chmod(0o755)
        return path

    def run(
        self, name: str, event: str, payload: dict[str, Any], *args: str, timeout_s: float = 60
    ) -> HookResult:
        command = " ".join([str(HOOKS_DIR / name), *args])
        return run_hook(Hook(event, command, timeout_s), payload, env=self.env, cwd=self.cwd)


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Shipped:
    monkeypatch.delenv("LOGBOOK_TRACE_HOOKS", raising=False)
    return Shipped(tmp_path)

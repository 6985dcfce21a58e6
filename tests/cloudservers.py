"""Real emulators of Google Cloud Storage and Azure Blob storage for the tests (#18):
gcp-storage-emulator (the test extra) and Azurite (`.ci/run` installs it best effort with npm; the
tests skip with a reason without it). Each runs as a process on a free localhost port, in memory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from s3server import free_port


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited at start with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen in 30 s")


@dataclass
class Emulator:
    scheme: str  # gs or az
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """The variables a process sets to reach this server, as the cloud's own SDK reads them."""
        if self.scheme == "gs":
            return {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{self.port}"}
        return {
            "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=http;"
            "AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6"
            "IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/devstoreaccount1;"
        }

    def start(self, bucket: str) -> Emulator:
        if self.scheme == "gs":
            argv = [
                sys.executable,
                "-m",
                "gcp_storage_emulator",
                "start",
                "--host=127.0.0.1",
                f"--port={self.port}",
                "--in-memory",
                f"--default-bucket={bucket}",
            ]
        else:
            azurite = shutil.which("azurite-blob")
            assert azurite is not None
            argv = [
                azurite,
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ]
        self.proc = subprocess.Popen(
            argv,
            cwd=tempfile.gettempdir(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for_port(self.proc, self.port, argv[0])
        if self.scheme == "az":  # a container, as the portal would have made it
            from logbook.store import cloud_clients

            saved = {k: os.environ.get(k) for k in self.env()}
            os.environ.update(self.env())
            try:
                cloud_clients.azure().create_dir(bucket)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _skip_without(scheme: str) -> None:
    if scheme == "gs":
        pytest.importorskip("gcp_storage_emulator", reason="gcp-storage-emulator (test extra)")
    elif shutil.which("azurite-blob") is None:
        pytest.skip("Azurite is not on PATH (.ci/run installs it with npm, best effort)")


@pytest.fixture(params=["gs", "az"])
def cloud(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Emulator]:
    """A running emulator of the parametrized cloud with bucket/container `logs`, its variables,
    and this test's own spools and caches set in the environment."""
    _skip_without(request.param)
    server = Emulator(request.param).start("logs")
    try:
        for k, v in server.env().items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("LOGBOOK_SPOOL", str(tmp_path / "spool"))
        monkeypatch.setenv("LOGBOOK_CACHE", str(tmp_path / "cache"))
        yield server
    finally:
        server.stop()

"""A real S3 server for the tests: moto's standalone server, a process on a free localhost port,
started and stopped by the test (#18). Its state lives in its memory: a kill loses it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **more: str) -> dict[str, str]:
        """The environment of a process that uses this server, the AWS SDK's usual variables."""
        return {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            **more,
        }

    def start(self, *, auth: bool = False) -> S3Server:
        env = {**os.environ}
        if auth:  # moto then checks signatures: keys it never issued are refused
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        # moto's recorder writes `moto_recording` in its working folder: never the checkout's.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            cwd=tempfile.gettempdir(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).read()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)
        raise RuntimeError("moto's server did not answer in 20 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def make_bucket(self, name: str) -> None:
        req = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        urllib.request.urlopen(req, timeout=5).read()

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under `prefix`, read with another client than logbook's (boto3)."""
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        out = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        return out

    def request_count(self) -> int:
        """How many requests the server has answered (moto's recorder, once `record()`ed)."""
        data = urllib.request.urlopen(
            f"{self.endpoint}/moto-api/recorder/download-recording", timeout=5
        ).read()
        return sum(1 for line in data.splitlines() if line.strip())

    def record(self) -> None:
        for what in ("reset-recording", "start-recording"):
            req = urllib.request.Request(f"{self.endpoint}/moto-api/recorder/{what}", method="POST")
            urllib.request.urlopen(req, timeout=5).read()


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A running moto S3 server with bucket `logs`, this test's caches and spools, its env set."""
    pytest.importorskip("moto", reason="moto[server] (the test extra) is not installed")
    server = S3Server().start()
    try:
        server.make_bucket("logs")
        for k, v in server.env(
            LOGBOOK_SPOOL=str(tmp_path / "spool"), LOGBOOK_CACHE=str(tmp_path / "cache")
        ).items():
            monkeypatch.setenv(k, v)
        yield server
    finally:
        server.stop()

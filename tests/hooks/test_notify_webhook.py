"""hooks/notify-webhook against a real HTTP server on 127.0.0.1 (#3)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import Shipped

SECRET = "/services/T0001/B0002/s3cr3tT0k3n"
PAYLOAD = {
    "run": "opt-mini",
    "attempt": "1.02",
    "status": "crashed",
    "crash_class": "gpu_oom",
    "summary": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "host": "gpu-node-7",
    "evidence": {"lines": ["..."]},
}
MESSAGE = (
    "logbook: opt-mini attempt 1.02 on_crash: crashed (gpu_oom) on gpu-node-7\n"
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
)


class Webhook:
    """A local webhook endpoint that records each request and answers with `status`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.stall = threading.Event()  # set: answer at once; clear: hold the answer until teardown
        self.stall.set()
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append(
                    {
                        "path": self.path,
                        "type": self.headers["Content-Type"],
                        "json": json.loads(body),
                    }
                )
                if not hook.stall.is_set():
                    hook.release.wait(10)
                answer = b"ok" if hook.status == 200 else f"invalid token in {self.path}".encode()
                self.send_response(hook.status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    yield server
    server.close()


def test_posts_the_message_as_slack_text(shipped: Shipped, webhook: Webhook) -> None:
    shipped.env["LOGBOOK_WEBHOOK_URL"] = f"http://{webhook.host}{SECRET}"
    result = shipped.run("notify-webhook", "on_crash", PAYLOAD)

    assert result.ok, result.output
    assert result.output == f"notify-webhook: posted to {webhook.host} (HTTP 200)\n"
    assert webhook.requests == [
        {"path": SECRET, "type": "application/json", "json": {"text": MESSAGE}}
    ]


def test_discord_gets_content(shipped: Shipped, webhook: Webhook) -> None:
    # A Discord URL, reached through the local server acting as the HTTP proxy: no network needed.
    shipped.env["LOGBOOK_WEBHOOK_URL"] = "http://discord.com/api/webhooks/123/s3cr3tT0k3n"
    shipped.env["http_proxy"] = f"http://{webhook.host}"
    result = shipped.run(
        "notify-webhook", "on_end", {"run": "r", "attempt": "1.00", "status": "completed"}
    )

    assert result.ok, result.output
    assert result.output == "notify-webhook: posted to discord.com (HTTP 200)\n"
    assert webhook.requests[0]["path"] == "http://discord.com/api/webhooks/123/s3cr3tT0k3n"
    assert webhook.requests[0]["json"] == {"content": "logbook: r attempt 1.00 on_end: completed"}


def test_format_option_overrides_the_host(shipped: Shipped, webhook: Webhook) -> None:
    shipped.env["LOGBOOK_WEBHOOK_URL"] = f"http://{webhook.host}{SECRET}"
    result = shipped.run(
        "notify-webhook", "on_start", {"run": "r", "attempt": "1.00"}, "--format", "discord"
    )
    assert result.ok
    assert webhook.requests[0]["json"] == {"content": "logbook: r attempt 1.00 on_start"}


def test_a_failing_server_is_an_error_that_hides_the_secret(
    shipped: Shipped, webhook: Webhook
) -> None:
    webhook.status = 500
    shipped.env["LOGBOOK_WEBHOOK_URL"] = f"http://{webhook.host}{SECRET}"
    result = shipped.run("notify-webhook", "on_crash", PAYLOAD)

    assert result.exit_code == 1
    # The server echoed the path (token and all) in its answer; the hook blanks it.
    assert (
        result.output
        == f"notify-webhook: {webhook.host} answered HTTP 500: invalid token in [secret]\n"
    )
    assert "s3cr3t" not in result.output and "T0001" not in result.output


def test_no_server_listening(shipped: Shipped, webhook: Webhook) -> None:
    host = webhook.host
    webhook.close()  # the port is now closed: connection refused
    shipped.env["LOGBOOK_WEBHOOK_URL"] = f"http://{host}{SECRET}"
    result = shipped.run("notify-webhook", "on_crash", PAYLOAD)
    assert result.exit_code == 1
    assert result.output.startswith(f"notify-webhook: cannot post to {host}: ")
    assert "refused" in result.output and "s3cr3t" not in result.output


def test_a_stalled_server_times_out(shipped: Shipped, webhook: Webhook) -> None:
    webhook.stall.clear()
    shipped.env["LOGBOOK_WEBHOOK_URL"] = f"http://{webhook.host}{SECRET}"
    result = shipped.run("notify-webhook", "on_crash", PAYLOAD, "--timeout", "0.5", timeout_s=10)
    assert result.exit_code == 1
    assert result.output == f"notify-webhook: cannot post to {webhook.host}: timed out\n"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            None,
            "notify-webhook: LOGBOOK_WEBHOOK_URL is not set; export it with your Slack or Discord webhook URL\n",
        ),
        (
            "ftp://files.example/s3cr3tT0k3n",
            "notify-webhook: LOGBOOK_WEBHOOK_URL must be an http(s) URL\n",
        ),
        ("s3cr3tT0k3n", "notify-webhook: LOGBOOK_WEBHOOK_URL must be an http(s) URL\n"),
    ],
)
def test_a_missing_or_bad_url(shipped: Shipped, url: str | None, message: str) -> None:
    if url is not None:
        shipped.env["LOGBOOK_WEBHOOK_URL"] = url
    result = shipped.run("notify-webhook", "on_crash", PAYLOAD)
    assert (result.exit_code, result.output) == (2, message)

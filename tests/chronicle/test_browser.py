"""The chronicle in a real browser (Debian's chromium, headless): it loads from disk with no console
errors, draws its figures, and sends no request anywhere: every request the page could make is
routed to a proxy on this machine that records it, and the proxy must stay silent. Screenshots are
taken and checked not to be blank."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from helpers import logbook_cmd

from chronicle.recorded_run import Recorded

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium here (Debian: apt-get install chromium)"
)
QUIET = (  # chromium's own background traffic, which is not the page's
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
)


class Proxy:
    """A TCP listener that records the first line of every request sent to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.requests.append(conn.recv(4096).split(b"\r\n")[0].decode(errors="replace"))
                except OSError:  # opened, then silent: nothing was asked for
                    self.requests.append("")

    def page_requests(self) -> list[str]:
        """The requests, less chromium's own calls home (time, accounts, search, its update check),
        which it makes whatever page it shows, by any method (version 156 POSTs its update request);
        the chronicle names none of those hosts."""
        own = re.compile(
            r"^(?:[A-Z]+ https?://|CONNECT )[\w.-]*\b"
            r"(?:google\.com|googleapis\.com|gstatic\.com|gvt1\.com|gvt2\.com)[:/]"
        )
        # An empty line is a connection chromium opened to the proxy ahead of need and closed
        # unused: it names no URL, so no request left through it.
        return [r for r in self.requests if r and not own.match(r)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def _chromium(page: Path, proxy: Proxy, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--proxy-server=http://127.0.0.1:{proxy.port}",
            "--proxy-bypass-list=<-loopback>",
            "--enable-logging=stderr",
            "--v=0",
            *QUIET,
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def site(recorded: Recorded, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "site"
    subprocess.run(
        logbook_cmd("chronicle", recorded.run, "--out", str(out), "--store", str(recorded.store)),
        check=True,
        capture_output=True,
    )
    return out


def test_the_page_loads_with_no_errors_and_no_requests(site: Path) -> None:
    proxy = Proxy()
    try:
        done = _chromium(site / "index.html", proxy, "--dump-dom")
    finally:
        proxy.close()
    dom = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<h1>gpt</h1>" in dom
    assert dom.count("<svg") >= 5
    assert "&lt;script&gt;alert(" in dom  # the planted note, shown as text
    assert "<script" not in dom.lower()
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Refused" in line]
    assert console == []
    # no address of a font or script host (a package such as google-crc32c may be listed)
    assert not re.search(r"//[\w.-]*(google|gstatic)", (site / "index.html").read_text())
    assert proxy.page_requests() == []


def test_the_proxy_sees_what_a_page_requests(tmp_path: Path) -> None:
    """The check above can fail: a page that does load something from elsewhere is caught."""
    page = tmp_path / "leaky.html"
    page.write_text('<!doctype html><title>x</title><img src="http://198.51.100.7/pixel.png">')
    proxy = Proxy()
    try:
        _chromium(page, proxy, "--dump-dom")
    finally:
        proxy.close()
    assert any("198.51.100.7/pixel.png" in r for r in proxy.page_requests())


def test_screenshots_show_the_page(site: Path, tmp_path: Path) -> None:
    from matplotlib import image

    proxy = Proxy()
    shots = {}
    try:
        for name, size in (("top", "1280,2400"), ("narrow", "420,1600")):
            shot = tmp_path / f"{name}.png"
            done = _chromium(
                site / "index.html",
                proxy,
                f"--screenshot={shot}",
                f"--window-size={size}",
                "--hide-scrollbars",
            )
            assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
            shots[name] = image.imread(shot)
    finally:
        proxy.close()
    assert proxy.page_requests() == []
    for name, pixels in shots.items():
        assert pixels.std() > 0.05, f"{name} screenshot is blank"
    assert shots["top"].shape[:2] == (2400, 1280)

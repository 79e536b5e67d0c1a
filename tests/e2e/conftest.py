"""Shared harness of the real-browser tests: the app server and a Chromium page.

``start_app(env)`` starts ``streamlit run app.py`` on a free local port with the
given ``MEDLIM_*`` settings (its own ``MEDLIM_HOME`` by default), waits for
Streamlit's health endpoint and returns the URL; every server it started is
stopped when the test ends. ``browser_page`` is a page of Debian's Chromium
driven by Playwright (a Playwright browser download is never used).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
SERVER_START_TIMEOUT_S = 90.0
UI_TIMEOUT_MS = 90_000


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the app server exited with {server.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the app server did not answer in {SERVER_START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=15)


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """A function ``start(env=None) -> url`` that runs the real app server for this test."""
    servers: list[subprocess.Popen[bytes]] = []
    logs: list = []

    def start(env: dict[str, str] | None = None) -> str:
        port = _free_port()
        log = tmp_path / f"streamlit-{port}.log"
        full_env = {
            **os.environ,
            "MEDLIM_HOME": str(tmp_path / "medlim_home"),
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
            **(env or {}),
        }
        command = [
            sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
            "--server.headless", "true",
            "--server.port", str(port),
            "--server.address", "127.0.0.1",
            "--server.fileWatcherType", "none",
        ]  # fmt: skip
        log_file = log.open("wb")
        logs.append(log_file)
        server = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        servers.append(server)
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, server, log)
        return url

    try:
        yield start
    finally:
        for server in servers:
            _stop(server)
        for log_file in logs:
            log_file.close()


@pytest.fixture
def browser_page() -> Iterator["playwright.sync_api.Page"]:  # noqa: F821
    """A headless Chromium page (1500×1900) with long UI timeouts for a loaded CI machine."""
    from playwright.sync_api import expect, sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed (apt-get install chromium)"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1900})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


@pytest.fixture
def open_page() -> Callable[..., None]:
    """``open_page(page, url, link=..., heading=..., prompt=None, home=False)``: open the app,
    click a page in the navigation and wait for its heading (and its opening prompt when given).
    ``home=True`` first waits for the home page's "medlim" heading."""
    from playwright.sync_api import expect

    def go(page, url: str, *, link: str, heading: str, prompt: str | None = None, home: bool = False) -> None:
        page.goto(url)
        if home:
            expect(page.get_by_role("heading", name="medlim", exact=True)).to_be_visible()
        page.get_by_role("link", name=link).click()
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
        if prompt is not None:
            expect(page.get_by_text(prompt)).to_be_visible()

    return go


#: JavaScript: true once every plotly chart on the page has been laid out and drawn.
_CHARTS_DRAWN = (
    "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
    ".every(chart => chart._fullLayout && chart.querySelector('.main-svg'))"
)


def settle_page(page: "playwright.sync_api.Page") -> None:  # noqa: F821
    """Wait for a state, not a time: the script run finished and every chart is drawn.

    Streamlit shows its status widget ("Running…") while a script run is in flight;
    plotly marks a drawn chart with ``_fullLayout`` and an SVG. Waiting for both
    replaces the fixed pauses the browser tests used before screenshots and clicks,
    which failed on a loaded 2-core machine (issue 17).
    """
    from playwright.sync_api import expect

    expect(page.locator("[data-testid='stStatusWidget']")).to_have_count(0)
    page.wait_for_function(_CHARTS_DRAWN)


def move_slider(page: "playwright.sync_api.Page", slider: "playwright.sync_api.Locator", key: str,  # noqa: F821
                value: str, attempts: int = 5) -> None:
    """Press ``key`` on ``slider`` until it shows ``value`` (a state, not a time).

    A key pressed while Streamlit redraws the page after the previous widget's
    change can land on an element that is being replaced and is lost; the press
    is then repeated after the run settles. The last attempt's assertion error
    is raised when the value never comes.
    """
    from playwright.sync_api import expect

    for attempt in range(attempts):
        settle_page(page)
        slider.focus()
        page.keyboard.press(key)
        try:
            expect(slider).to_have_value(value, timeout=UI_TIMEOUT_MS // attempts)
            return
        except AssertionError:
            if attempt == attempts - 1:
                raise


@pytest.fixture
def settle() -> Callable[["playwright.sync_api.Page"], None]:  # noqa: F821
    """:func:`settle_page`, for tests."""
    return settle_page


@pytest.fixture
def slide() -> Callable[..., None]:
    """:func:`move_slider`, for tests: ``slide(page, slider, key, value)``."""
    return move_slider


@pytest.fixture
def app_worker() -> Iterator[Callable[[Path], None]]:
    """``app_worker(home)``: the job worker an app started for ``MEDLIM_HOME=home`` is stopped when the test ends.

    With ``MEDLIM_WORKER=auto`` the app starts a worker in a session of its own
    (issue 15), so stopping the server leaves it running; its pid is in the
    home's worker lock.
    """
    homes: list[Path] = []
    yield homes.append
    from medlim.core.jobs.launch import LOCK_NAME

    for home in homes:
        try:
            pid = int((home / LOCK_NAME).read_text().strip() or 0)
        except (OSError, ValueError):
            continue
        if pid > 0:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

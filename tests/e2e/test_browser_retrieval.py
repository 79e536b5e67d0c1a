"""End-to-end: the similar-images page in the real app server, driven in headless Chromium.

Starts ``streamlit run app.py`` with its own MEDLIM_HOME and a temporary weights
registry holding a small untrained OSCARS-architecture embedding
(``tiny-oscars``), opens the page from the navigation, builds a collection of
radiograph phantoms through the form (progress bar), presses "More like this"
under a collection image, checks the top-K grid and table, narrows the results
with a label filter, and keeps screenshots under ``artifacts/``.
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
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
SERVER_START_TIMEOUT_S = 90.0
UI_TIMEOUT_MS = 180_000

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


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


def _tiny_registry(folder: Path) -> Path:
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.curation.retrieval.nets import EmbeddingNet
    from medlim.phantoms.radiograph import BODY_PARTS

    torch.manual_seed(0)
    save_weights(Registry(folder), {
        "name": "tiny-oscars", "version": "1", "task": "image-retrieval", "architecture": "retrieval-resnet18",
        "architecture_kwargs": {"width": 4}, "preset": "ood-grey",
        "input_contract": {"channels": 1, "size": [32, 32], "dtype": "float32", "range": [0.0, 1.0]},
        "params": {"input_size": 32, "method": "oscars", "classes": list(BODY_PARTS)},
    }, EmbeddingNet(width=4).state_dict())
    return folder


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = tmp_path / "streamlit.log"
    env = {
        **os.environ,
        "MEDLIM_HOME": str(tmp_path / "medlim_home"),
        "MEDLIM_WEIGHTS_DIR": str(_tiny_registry(tmp_path / "weights")),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"]
    with log.open("wb") as log_file:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, server, log)
            yield url
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                try:
                    server.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait(timeout=15)


def test_build_and_search_in_real_browser(app_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed (apt-get install chromium)"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            page.goto(app_url)
            page.get_by_role("link", name="Similar images").click()
            expect(page.get_by_role("heading", name="Similar images")).to_be_visible()
            expect(page.get_by_text("No collection yet")).to_be_visible()

            page.get_by_text("Build a collection").click()
            phantoms = page.get_by_role("spinbutton", name="Phantoms")
            phantoms.fill("21")
            phantoms.press("Enter")
            page.get_by_role("button", name="Build").click()
            expect(page.get_by_text("Built phantoms: 21 images")).to_be_visible()
            expect(page.get_by_text("21 images · model tiny-oscars")).to_be_visible()
            more = page.get_by_role("button", name="More like this")
            expect(more).to_have_count(10)  # one page of the collection
            expect(page.locator("[data-testid='stImage']")).to_have_count(10)
            expect(page.get_by_text(" · A ").first).to_be_visible()  # captions: labels and anomaly score
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / "retrieval_browse.png"))

            more.nth(2).click()
            expect(page.get_by_text("Top 10")).to_be_visible()
            expect(page.get_by_text("#1 ·").first).to_be_visible()
            expect(page.get_by_text("cos ").first).to_be_visible()
            expect(page.get_by_role("button", name="More like this")).to_have_count(10)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / "retrieval_results.png"))

            page.get_by_role("button", name="Clear query").click()
            expect(page.get_by_text("Browse the collection")).to_be_visible()
            assert not page.locator("[data-testid='stException']").count()
        finally:
            browser.close()

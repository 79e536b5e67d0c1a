"""End-to-end: the liver steatosis page in the real app server, driven in headless Chromium.

Starts ``streamlit run app.py`` with its own MEDLIM_HOME. The weights are the
repository's registered ``maskrcnn-steatosis`` when present (so the screenshot
shows real detections), else an untrained network of the same architecture in
a temporary registry. Opens the page from the navigation, uploads a bundled
H&E sample, checks the readouts and the overlay, moves the minimum-score
slider from the keyboard and checks that every droplet is then discarded.
Screenshots go to ``artifacts/``.
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
SAMPLE = ROOT / "data_samples" / "steatosis" / "he_00000_image.png"
SERVER_START_TIMEOUT_S = 90.0
UI_TIMEOUT_MS = 150_000

pytestmark = [pytest.mark.browser, pytest.mark.timeout(500)]


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


def _weights_dir(tmp_path: Path) -> Path:
    from medlim.core.weights import Registry
    from medlim.errors import MedlimError

    try:
        Registry.load(ROOT / "weights").get("maskrcnn-steatosis")
        return ROOT / "weights"
    except MedlimError:
        sys.path.insert(0, str(ROOT / "tests" / "ui"))
        try:
            from test_page_steatosis import register_test_model
        finally:
            sys.path.remove(str(ROOT / "tests" / "ui"))
        register_test_model(tmp_path / "weights")
        return tmp_path / "weights"


@pytest.fixture
def steatosis_app_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = tmp_path / "streamlit.log"
    env = {
        **os.environ,
        "MEDLIM_HOME": str(tmp_path / "medlim_home"),
        "MEDLIM_WEIGHTS_DIR": str(_weights_dir(tmp_path)),
        "MEDLIM_SAMPLES_DIR": str(ROOT / "data_samples"),
        "MEDLIM_DEVICE": "cpu",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    with log.open("wb") as log_file:
        server = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
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


def test_steatosis_upload_overlay_and_score_slider(steatosis_app_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed (apt-get install chromium)"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            page.goto(steatosis_app_url)
            expect(page.get_by_role("heading", name="medlim", exact=True)).to_be_visible()
            page.get_by_role("link", name="Liver steatosis").click()
            expect(page.get_by_role("heading", name="Liver steatosis")).to_be_visible()
            expect(page.get_by_text("Upload an image or pick a sample to start")).to_be_visible()
            page.locator("input[type='file']").first.set_input_files(str(SAMPLE))

            metrics = page.locator("[data-testid='stMetric']")
            expect(metrics).to_have_count(4)
            kept = metrics.nth(0).locator("[data-testid='stMetricValue']")
            expect(kept).to_contain_text(" / ")
            expect(metrics.nth(2)).to_contain_text("NASH-CRN grade")
            expect(page.locator("[data-testid='stImage'] img").first).to_be_visible()
            expect(page.locator("[data-testid='stPlotlyChart']").first).to_be_attached()
            expect(page.get_by_role("button", name="Polygons (GeoJSON, QuPath)")).to_be_visible()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ARTIFACTS / "steatosis.png"), full_page=True)

            detected = kept.inner_text().split(" / ")[1]
            score = page.get_by_role("slider", name="Minimum score").first
            score.focus()
            page.keyboard.press("End")
            expect(score).to_have_value("1")
            expect(kept).to_have_text(f"0 / {detected}")
            expect(metrics.nth(2)).to_contain_text("S0")
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / "steatosis_all_discarded.png"), full_page=True)
            assert not page.locator("[data-testid='stException']").count()
        finally:
            browser.close()

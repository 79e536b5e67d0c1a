"""End-to-end: the mammography page in the real app server, driven in headless Chromium.

Starts ``streamlit run app.py`` with its own MEDLIM_HOME and a temporary weights
registry holding a randomly initialised SCU-Net (``scunet-bac:0-test``), opens
the BAC page from the navigation, uploads a small (1024×832) MG DICOM phantom,
checks the readouts, moves the probability cut-off from the keyboard, saves to
the history and checks the history plot. Screenshots go to ``artifacts/``.
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
UI_TIMEOUT_MS = 120_000

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]


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


@pytest.fixture
def bac_app_url(tmp_path: Path) -> Iterator[str]:
    """The real app server with a test BAC model registered; always stopped afterwards."""
    sys.path.insert(0, str(ROOT / "tests" / "ui"))
    try:
        from test_page_mammography import register_test_model
    finally:
        sys.path.remove(str(ROOT / "tests" / "ui"))

    weights = tmp_path / "weights"
    register_test_model(weights)
    port = _free_port()
    log = tmp_path / "streamlit.log"
    env = {
        **os.environ,
        "MEDLIM_HOME": str(tmp_path / "medlim_home"),
        "MEDLIM_WEIGHTS_DIR": str(weights),
        "MEDLIM_SAMPLES_DIR": str(tmp_path / "no_samples"),
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


def _small_mammogram(path: Path) -> Path:
    from medlim.phantoms.dicom import write_mammogram_dicom
    from medlim.phantoms.mammogram import generate_mammogram

    return write_mammogram_dicom(generate_mammogram(seed=20261202, index=0, size="small", bac_fraction=1.0), path)


def test_mammography_upload_slider_save_history(bac_app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed (apt-get install chromium)"
    dicom = _small_mammogram(tmp_path / "exam_LCC.dcm")
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 2600})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            page.goto(bac_app_url)
            expect(page.get_by_role("heading", name="medlim", exact=True)).to_be_visible()
            page.get_by_role("link", name="Arterial calcification").click()
            expect(page.get_by_role("heading", name="Breast arterial calcification")).to_be_visible()
            expect(page.get_by_text("Upload a mammogram or a four-view exam")).to_be_visible()
            page.locator("input[type='file']").first.set_input_files(str(dicom))

            metrics = page.locator("[data-testid='stMetric']")
            expect(metrics).to_have_count(5)
            expect(metrics.nth(1)).to_contain_text("AM (mm²)")
            am_value = metrics.nth(1).locator("[data-testid='stMetricValue']")
            expect(am_value).to_have_text("0.00")  # nothing above the default cut-off
            expect(page.get_by_text("scunet-bac v0-test").first).to_be_visible()
            expect(page.locator("[data-testid='stPlotlyChart']").first.locator("image").first).to_be_attached()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ARTIFACTS / "mammography.png"))

            # Cut-off to 0 from the keyboard: recomputed from the cached map.
            cutoff = page.get_by_role("slider", name="Probability cut-off t").first
            cutoff.focus()
            page.keyboard.press("Home")
            expect(cutoff).to_have_value("0")
            expect(am_value).not_to_have_text("0.00")

            page.get_by_role("button", name="Save to the patient's history").click()
            expect(page.get_by_text("Saved 1 view")).to_be_visible()
            history = page.get_by_text("1 saved exam(s)")
            expect(history).to_be_visible()
            expect(page.get_by_text("One exam saved: the change flags appear")).to_be_visible()
            charts = page.locator("[data-testid='stPlotlyChart']")
            expect(charts).to_have_count(3)  # mammogram, full-resolution crop, history
            expect(charts.last.locator(".scatterlayer .trace").first).to_be_attached()
            page.mouse.move(0, 0)  # no button tooltip over the table in the screenshot
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ARTIFACTS / "mammography_history.png"))

            body = page.locator("body").inner_text()
            for identifying in ("PHANTOM-0001", "Phantom^0001"):
                assert identifying not in body, f"identifying text {identifying!r} shown on the page"
            assert not page.locator("[data-testid='stException']").count()
        finally:
            browser.close()

"""End-to-end: the clumped-nuclei page in the real app server, driven in headless Chromium.

Starts ``streamlit run app.py`` with its own MEDLIM_HOME, opens the page from
the navigation, uploads a small generated fluorescence PNG (256×344, nuclei of
radius 10–15 px), checks that the page's counts equal the library's, moves the
overlay-opacity slider from the keyboard and checks that the overlay was
redrawn. Screenshots go to ``artifacts/`` (gitignored).
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
UI_TIMEOUT_MS = 90_000

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


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
def app_url(tmp_path: Path) -> Iterator[str]:
    """The real app server for one test (no bundled samples); always stopped afterwards."""
    port = _free_port()
    log = tmp_path / "streamlit.log"
    env = {
        **os.environ,
        "MEDLIM_HOME": str(tmp_path / "medlim_home"),
        "MEDLIM_SAMPLES_DIR": str(tmp_path / "no_samples"),
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


def _small_fluorescence(path: Path) -> tuple[int, int]:
    """Write a 256×344 phantom PNG; returns the library's (thesis, watershed) counts on it."""
    from medlim.core.io import read_image
    from medlim.microscopy.nuclei.pipeline import segment_nuclei
    from medlim.microscopy.nuclei.watershed import watershed_nuclei
    from medlim.phantoms.base import save_png
    from medlim.phantoms.fluorescence import generate_fluorescence

    phantom = generate_fluorescence(20261201, size=(256, 344), radius_range=(10.0, 15.0))
    save_png(path, phantom.image)
    pixels = read_image(path).pixels
    return segment_nuclei(pixels).count, watershed_nuclei(pixels).count


def test_nuclei_upload_count_and_opacity_slider(app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed (apt-get install chromium)"
    image = tmp_path / "dapi_clumps.png"
    thesis_count, watershed_count = _small_fluorescence(image)
    assert thesis_count > 5  # the phantom holds clumps to split
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1900})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            page.goto(app_url)
            expect(page.get_by_role("heading", name="medlim", exact=True)).to_be_visible()
            page.get_by_role("link", name="Clumped nuclei").click()
            expect(page.get_by_role("heading", name="Clumped nuclei")).to_be_visible()
            expect(page.get_by_text("Upload a fluorescence image or choose a bundled sample")).to_be_visible()
            page.locator("input[type='file']").first.set_input_files(str(image))

            metrics = page.locator("[data-testid='stMetric']")
            expect(metrics).to_have_count(4)
            expect(metrics.nth(0)).to_contain_text("Nuclei (thesis method)")
            expect(metrics.nth(0).locator("[data-testid='stMetricValue']")).to_have_text(str(thesis_count))
            expect(metrics.nth(3).locator("[data-testid='stMetricValue']")).to_have_text(str(watershed_count))
            expect(page.get_by_text(f"Thesis method: {thesis_count} nuclei")).to_be_visible()
            expect(page.get_by_text(f"Watershed baseline: {watershed_count} nuclei")).to_be_visible()
            curves = page.locator("[data-testid='stPlotlyChart']").first.locator(".scatterlayer .trace")
            expect(curves.first).to_be_attached()  # the white dividing curves are drawn
            expect(page.get_by_text("White lines: the dividing curves")).to_be_visible()
            expect(page.get_by_role("button", name="Download label image (16-bit PNG)")).to_be_visible()
            expect(page.get_by_role("button", name="Download per-nucleus table (CSV)")).to_be_visible()
            overlay = page.locator("[data-testid='stPlotlyChart']").first.locator("image").first
            expect(overlay).to_be_attached()
            before = overlay.get_attribute("href")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ARTIFACTS / "nuclei.png"), full_page=True)

            # Opacity to 1 from the keyboard: the overlay is redrawn, the counts stay.
            opacity = page.get_by_role("slider", name="Overlay opacity").first
            opacity.focus()
            page.keyboard.press("End")
            expect(opacity).to_have_value("1")
            expect(overlay).not_to_have_attribute("href", before or "")
            expect(metrics.nth(0).locator("[data-testid='stMetricValue']")).to_have_text(str(thesis_count))
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ARTIFACTS / "nuclei_opacity.png"), full_page=True)
            assert not page.locator("[data-testid='stException']").count()
        finally:
            browser.close()

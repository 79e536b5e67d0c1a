"""End-to-end: the OOD page in the real app server, driven in headless Chromium by Playwright.

Starts ``streamlit run app.py`` with a small registry of random-weight detectors
(MEDLIM_WEIGHTS_DIR), opens "Out-of-distribution" from the navigation, scores
generated phantoms (table, distance plot, ROC, galleries), then uploads a zip
of labelled PNGs. Screenshots go to ``artifacts/`` (gitignored).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
SERVER_START_TIMEOUT_S = 90.0
UI_TIMEOUT_MS = 120_000

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]


def _registry(directory: Path) -> Path:
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.curation.ood.nets import build_tend

    torch.manual_seed(0)
    save_weights(Registry(directory), {
        "name": "tend-e2e", "version": "1", "task": "ood-detection", "architecture": "tend",
        "architecture_kwargs": {"channels": 1, "input_size": 64, "width": 2, "embedding": 16}, "preset": "ood-grey",
        "input_contract": {"channels": 1, "size": [64, 64]}, "thresholds": {"score": 0.3},
        "params": {"input_size": 64, "id_classes": ["hand"], "weight": 0.5, "margin": 150.0},
        "description": "random-weight TEND for the browser test",
    }, build_tend(width=2, embedding=16).eval().state_dict())
    return directory


def _zip_of_phantoms() -> bytes:
    from PIL import Image

    from medlim.phantoms.radiograph import generate_radiograph

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for k, part in enumerate(("hand", "hand", "elbow", "shoulder")):
            image = generate_radiograph(seed=2, index=k, body_part=part, size=128).image
            png = io.BytesIO()
            Image.fromarray(np.rint(image * 255).astype(np.uint8)).save(png, format="PNG")
            archive.writestr(f"{part}/case_{k}.png", png.getvalue())
    return buffer.getvalue()


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
    """The real app server with a test registry, for one test; always stopped afterwards."""
    port = _free_port()
    log = tmp_path / "streamlit.log"
    env = {
        **os.environ,
        "MEDLIM_HOME": str(tmp_path / "medlim_home"),
        "MEDLIM_WEIGHTS_DIR": str(_registry(tmp_path / "weights")),
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


def test_ood_page_in_real_browser(app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed (apt-get install chromium)"
    archive = tmp_path / "labelled.zip"
    archive.write_bytes(_zip_of_phantoms())
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            page.goto(app_url)
            page.get_by_role("link", name="Out-of-distribution").click()
            expect(page.get_by_role("heading", name="Out-of-distribution detection")).to_be_visible()
            expect(page.get_by_text("random-weight TEND for the browser test")).to_be_visible()
            # generated phantoms (6 per class): table, distance plot, ROC, galleries
            expect(page.get_by_role("heading", name="Galleries")).to_be_visible()
            expect(page.locator("[data-testid='stPlotlyChart']")).to_have_count(2)
            expect(page.get_by_text("Distance to the centre O")).to_be_visible()
            expect(page.locator("[data-testid='stDataFrame']").first).to_be_visible()
            expect(page.locator("[data-testid='stImage']").first).to_be_visible()
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ARTIFACTS / "ood_generated.png"))

            page.get_by_text("Upload", exact=True).click()
            expect(page.get_by_text("Upload images (PNG")).to_be_visible()
            page.locator("input[type='file']").first.set_input_files(str(archive))
            expect(page.get_by_text("Labels from folder names")).to_be_visible()
            page.get_by_text("Labels from folder names").click()
            expect(page.get_by_role("heading", name="Galleries")).to_be_visible()
            expect(page.locator("[data-testid='stPlotlyChart']")).to_have_count(2)
            # each labelled upload lands in one gallery, captioned with d, p, s and t
            captions = page.get_by_text(re.compile(r"^d [0-9.]+ · p [0-9.]+ · s [0-9.-]+ · t 0\.300$"))
            expect(captions).to_have_count(4)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ARTIFACTS / "ood_upload.png"))
            assert not page.locator("[data-testid='stException']").count()
        finally:
            browser.close()

"""End-to-end: the OOD page in the real app server, driven in headless Chromium by Playwright.

Starts ``streamlit run app.py`` with a small registry of random-weight detectors
(MEDLIM_WEIGHTS_DIR), opens "Out-of-distribution" from the navigation, scores
generated phantoms (table, distance plot, ROC, galleries), then uploads a zip
of labelled PNGs. Screenshots go to ``artifacts/`` (gitignored).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]


def _registry(directory: Path) -> Path:
    """A random-weight TEND (ID = hand) with acquisition statistics, as `medlim train tend --data` stores them."""
    from tests.ood_helpers import save_tend_with_statistics

    return save_tend_with_statistics(directory, name="tend-e2e", description="random-weight TEND for the browser test")


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


@pytest.fixture
def app_url(start_app, tmp_path: Path) -> str:
    """The real app server for this test (harness in ``tests/e2e/conftest.py``)."""
    return start_app({"MEDLIM_WEIGHTS_DIR": str(_registry(tmp_path / "weights"))})


def test_ood_page_in_real_browser(app_url: str, tmp_path: Path, browser_page, open_page, settle) -> None:
    from playwright.sync_api import expect

    archive = tmp_path / "labelled.zip"
    archive.write_bytes(_zip_of_phantoms())
    ARTIFACTS.mkdir(exist_ok=True)

    page = browser_page
    open_page(page, app_url, link="Out-of-distribution", heading="Out-of-distribution detection",
              prompt="random-weight TEND for the browser test")
    # generated phantoms (6 per class): table, distance plot, ROC, galleries
    expect(page.get_by_role("heading", name="Galleries")).to_be_visible()
    expect(page.locator("[data-testid='stPlotlyChart']")).to_have_count(2)
    expect(page.get_by_text("Distance to the centre O")).to_be_visible()
    expect(page.locator("[data-testid='stDataFrame']").first).to_be_visible()
    expect(page.locator("[data-testid='stImage']").first).to_be_visible()
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "ood_generated.png"))

    # the detector carries acquisition statistics: scored fused by default; switched off, it scores alone with its
    # own threshold, 0.3, which the upload's gallery captions below show
    expect(page.get_by_text("Acquisition statistics", exact=True)).to_be_visible()
    page.get_by_text("Acquisition statistics", exact=True).click()
    settle(page)
    page.get_by_text("Upload", exact=True).click()
    expect(page.get_by_text("Upload images (PNG")).to_be_visible()
    settle(page)
    page.locator("input[type='file']").first.set_input_files(str(archive))
    expect(page.get_by_text("labelled.zip")).to_be_visible()  # the upload arrived before the next click
    settle(page)
    expect(page.get_by_text("Labels from folder names")).to_be_visible()
    page.get_by_text("Labels from folder names").click()
    expect(page.get_by_role("heading", name="Galleries")).to_be_visible()
    expect(page.locator("[data-testid='stPlotlyChart']")).to_have_count(2)
    # each labelled upload lands in one gallery, captioned with d, p, s and t
    captions = page.get_by_text(re.compile(r"^d [0-9.]+ · p [0-9.]+ · s [0-9.-]+ · t 0\.300$"))
    expect(captions).to_have_count(4)
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "ood_upload.png"))
    assert not page.locator("[data-testid='stException']").count()

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

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
SAMPLE = ROOT / "data_samples" / "steatosis" / "he_00000_image.png"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(500)]


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
def steatosis_app_url(start_app, tmp_path: Path) -> str:
    """The real app server for this test (harness in ``tests/e2e/conftest.py``)."""
    return start_app(
        {
            "MEDLIM_WEIGHTS_DIR": str(_weights_dir(tmp_path)),
            "MEDLIM_SAMPLES_DIR": str(ROOT / "data_samples"),
            "MEDLIM_DEVICE": "cpu",
        }
    )


def test_steatosis_upload_overlay_and_score_slider(steatosis_app_url: str, browser_page, open_page, settle, slide) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 2200})
    open_page(page, steatosis_app_url, link="Liver steatosis", heading="Liver steatosis",
              prompt="Upload an image or pick a sample to start", home=True)
    page.locator("input[type='file']").first.set_input_files(str(SAMPLE))

    metrics = page.locator("[data-testid='stMetric']")
    expect(metrics).to_have_count(4)
    kept = metrics.nth(0).locator("[data-testid='stMetricValue']")
    expect(kept).to_contain_text(" / ")
    expect(metrics.nth(2)).to_contain_text("NASH-CRN grade")
    expect(page.locator("[data-testid='stImage'] img").first).to_be_visible()
    expect(page.locator("[data-testid='stPlotlyChart']").first).to_be_attached()
    expect(page.get_by_role("button", name="Outlines (GeoJSON, QuPath)")).to_be_visible()
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "steatosis.png"), full_page=True)

    detected = kept.inner_text().split(" / ")[1]
    # The minimum score to 1 leaves only droplets in crowded fat (their floor stays 0.02); the crowded-fat floor
    # to 1 too (at or above the minimum score it is none): nothing is kept.
    score = page.get_by_role("slider", name="Minimum score").first
    slide(page, score, "End", "1")
    crowded = page.get_by_role("group", name="Minimum score in crowded fat", exact=True).get_by_role("slider").first
    expect(crowded).to_have_value("0.02")
    slide(page, crowded, "End", "1")
    expect(kept).to_have_text(f"0 / {detected}")
    expect(metrics.nth(2)).to_contain_text("S0")
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "steatosis_all_discarded.png"), full_page=True)
    assert not page.locator("[data-testid='stException']").count()

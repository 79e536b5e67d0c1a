"""End-to-end: the mammography page in the real app server, driven in headless Chromium.

Starts ``streamlit run app.py`` with its own MEDLIM_HOME and a temporary weights
registry holding a randomly initialised SCU-Net (``scunet-bac:0-test``), opens
the BAC page from the navigation, uploads a small (1024×832) MG DICOM phantom,
checks the readouts, moves the probability cut-off from the keyboard, saves to
the history and checks the history plot. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]


def _small_mammogram(path: Path) -> Path:
    from medlim.phantoms.dicom import write_mammogram_dicom
    from medlim.phantoms.mammogram import generate_mammogram

    return write_mammogram_dicom(generate_mammogram(seed=20261202, index=0, size="small", bac_fraction=1.0), path)


def _test_weights(tmp_path: Path) -> Path:
    """A registry holding a randomly initialised SCU-Net (the page tests' helper)."""
    sys.path.insert(0, str(ROOT / "tests" / "ui"))
    try:
        from test_page_mammography import register_test_model
    finally:
        sys.path.remove(str(ROOT / "tests" / "ui"))
    weights = tmp_path / "weights"
    register_test_model(weights)
    return weights


@pytest.fixture
def bac_app_url(start_app, tmp_path: Path) -> str:
    """The real app server for this test (harness in ``tests/e2e/conftest.py``)."""
    return start_app(
        {
            "MEDLIM_WEIGHTS_DIR": str(_test_weights(tmp_path)),
            "MEDLIM_SAMPLES_DIR": str(tmp_path / "no_samples"),
            "MEDLIM_DEVICE": "cpu",
        }
    )


def test_mammography_upload_slider_save_history(bac_app_url: str, tmp_path: Path, browser_page, open_page, settle) -> None:
    from playwright.sync_api import expect

    dicom = _small_mammogram(tmp_path / "exam_LCC.dcm")
    ARTIFACTS.mkdir(exist_ok=True)

    page = browser_page
    page.set_viewport_size({"width": 1500, "height": 2600})
    open_page(page, bac_app_url, link="Arterial calcification", heading="Breast arterial calcification",
              prompt="Upload a mammogram or a four-view exam", home=True)
    page.locator("input[type='file']").first.set_input_files(str(dicom))

    metrics = page.locator("[data-testid='stMetric']")
    expect(metrics).to_have_count(5)
    expect(metrics.nth(1)).to_contain_text("AM (mm²)")
    am_value = metrics.nth(1).locator("[data-testid='stMetricValue']")
    expect(am_value).to_have_text("0.00")  # nothing above the default cut-off
    expect(page.get_by_text("scunet-bac v0-test").first).to_be_visible()
    expect(page.locator("[data-testid='stPlotlyChart']").first.locator("image").first).to_be_attached()
    settle(page)
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
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "mammography_history.png"))

    body = page.locator("body").inner_text()
    for identifying in ("PHANTOM-0001", "Phantom^0001"):
        assert identifying not in body, f"identifying text {identifying!r} shown on the page"
    assert not page.locator("[data-testid='stException']").count()

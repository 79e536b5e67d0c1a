"""End-to-end: the clumped-nuclei page in the real app server, driven in headless Chromium.

Starts ``streamlit run app.py`` with its own MEDLIM_HOME, opens the page from
the navigation, uploads a small generated fluorescence PNG (256×344, nuclei of
radius 10–15 px), checks that the page's counts equal the library's, moves the
overlay-opacity slider from the keyboard and checks that the overlay was
redrawn. Screenshots go to ``artifacts/`` (gitignored).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


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


@pytest.fixture
def app_url(start_app, tmp_path: Path) -> str:
    """The real app server for this test (harness in ``tests/e2e/conftest.py``)."""
    return start_app({"MEDLIM_SAMPLES_DIR": str(tmp_path / "no_samples")})


def test_nuclei_upload_count_and_opacity_slider(app_url: str, tmp_path: Path, browser_page, open_page, settle, slide) -> None:
    from playwright.sync_api import expect

    image = tmp_path / "dapi_clumps.png"
    thesis_count, watershed_count = _small_fluorescence(image)
    assert thesis_count > 5  # the phantom holds clumps to split
    ARTIFACTS.mkdir(exist_ok=True)

    page = browser_page
    open_page(page, app_url, link="Clumped nuclei", heading="Clumped nuclei",
              prompt="Upload a fluorescence image or choose a bundled sample", home=True)
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
    expect(page.get_by_role("button", name="Nuclei (CSV)")).to_be_visible()
    expect(page.get_by_role("button", name="Outlines (GeoJSON, QuPath)")).to_be_visible()
    overlay = page.locator("[data-testid='stPlotlyChart']").first.locator("image").first
    expect(overlay).to_be_attached()
    before = overlay.get_attribute("href")
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "nuclei.png"), full_page=True)

    # Opacity to 1 from the keyboard: the overlay is redrawn, the counts stay.
    opacity = page.get_by_role("slider", name="Overlay opacity").first
    slide(page, opacity, "End", "1")
    expect(overlay).not_to_have_attribute("href", before or "")
    expect(metrics.nth(0).locator("[data-testid='stMetricValue']")).to_have_text(str(thesis_count))
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "nuclei_opacity.png"), full_page=True)
    assert not page.locator("[data-testid='stException']").count()

"""End-to-end: the mammography page in the real app server, driven in headless Chromium.

Starts ``streamlit run app.py`` with its own MEDLIM_HOME and a temporary weights
registry holding a randomly initialised SCU-Net (``scunet-bac:0-test``), opens
the BAC page from the navigation, uploads a small (1024×832) MG DICOM phantom,
checks the readouts, moves the probability cut-off from the keyboard, saves to
the history and checks the history plot; a click on the overview moves the
full-resolution view to that point (issue 17). Screenshots go to ``artifacts/``.
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


def _test_weights(tmp_path: Path, **fields) -> Path:
    """A registry holding a randomly initialised SCU-Net (the page tests' helper; ``fields`` go to it)."""
    sys.path.insert(0, str(ROOT / "tests" / "ui"))
    try:
        from test_page_mammography import register_test_model
    finally:
        sys.path.remove(str(ROOT / "tests" / "ui"))
    weights = tmp_path / "weights"
    register_test_model(weights, **fields)
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


def test_mammography_upload_slider_save_history(bac_app_url: str, tmp_path: Path, browser_page, open_page, settle, slide) -> None:
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
    _click_zooms_there(page, settle)

    # Cut-off to 0 from the keyboard: recomputed from the cached map.
    cutoff = page.get_by_role("slider", name="Probability cut-off t").first
    slide(page, cutoff, "Home", "0")
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


#: JavaScript: the page position of a file pixel ``[row, column]`` on the overview chart (the first plotly chart).
_PIXEL_ON_PAGE = """([row, column]) => {
    const chart = document.querySelectorAll('.js-plotly-plot')[0];
    const layout = chart._fullLayout, box = chart.getBoundingClientRect();
    return [box.left + layout.xaxis._offset + layout.xaxis.l2p(column),
            box.top + layout.yaxis._offset + layout.yaxis.l2p(row)];
}"""

#: JavaScript: ``[row, column]`` of the top-left pixel the full-resolution chart (the second) shows.
_ZOOM_ORIGIN = """() => {
    const image = document.querySelectorAll('.js-plotly-plot')[1].data[0];
    return [image.y0, image.x0];
}"""


def _click_zooms_there(page, settle) -> None:
    """Issue 17: a real click on the overview moves the full-resolution view to the clicked pixel of the file.

    The 1024×832 view is shown at full size (factor 1), so the click targets sit every 24 px from 12: pixel
    (row 300, column 204) is one. The zoom is 512 px: it spans rows 300 − 256 = 44 … 555 and columns 0 … 511 (204 −
    256 < 0 is moved inside the image); before the click it is centred on the middle, rows 256 …, columns 160 ….
    """
    from playwright.sync_api import expect

    row_slider = page.get_by_role("slider", name="Zoom centre row").first
    column_slider = page.get_by_role("slider", name="Zoom centre column").first
    expect(row_slider).to_have_value("512")
    assert page.evaluate(_ZOOM_ORIGIN) == [256, 160]
    x, y = page.evaluate(_PIXEL_ON_PAGE, [300, 204])
    page.mouse.move(x, y)  # plotly selects the hovered point on click
    page.mouse.click(x, y)
    expect(row_slider).to_have_value("300")
    expect(column_slider).to_have_value("204")
    settle(page)
    page.wait_for_function(f"() => ({_ZOOM_ORIGIN})().join() === '44,0'")
    page.screenshot(path=str(ARTIFACTS / "mammography_zoom.png"))


def test_weights_with_a_region_filter_show_what_it_dropped(start_app, tmp_path: Path, browser_page, open_page,
                                                           settle) -> None:
    """A user model carrying a region filter (one that judges every region tissue, at floor and cut-off 0.2): the
    page opens it as the default, says under the readouts what the filter took out, and counts none of it."""
    from playwright.sync_api import expect

    from medlim.mammography.regions import REGION_FEATURES, RegionFilter

    width = len(REGION_FEATURES)
    drop_all = RegionFilter(floor=0.2, mean=(0.0,) * width, scale=(1.0,) * width, coef=(0.0,) * width,
                            intercept=-60.0, threshold=0.5, spacing_mm=0.07)
    weights = _test_weights(tmp_path, threshold=0.2, default=True, region_filter=drop_all.to_json())
    url = start_app({"MEDLIM_WEIGHTS_DIR": str(weights), "MEDLIM_SAMPLES_DIR": str(tmp_path / "no_samples"),
                     "MEDLIM_DEVICE": "cpu"})
    page = browser_page
    page.set_viewport_size({"width": 1500, "height": 2200})
    open_page(page, url, link="Arterial calcification", heading="Breast arterial calcification",
              prompt="Upload a mammogram or a four-view exam", home=True)
    page.locator("input[type='file']").first.set_input_files(str(_small_mammogram(tmp_path / "exam_LCC.dcm")))
    metrics = page.locator("[data-testid='stMetric']")
    expect(metrics).to_have_count(5)
    expect(metrics.nth(1).locator("[data-testid='stMetricValue']")).to_have_text("0.00")  # all of it dropped
    line = page.get_by_text("Region filter: dropped")
    expect(line).to_be_visible()
    expect(line).to_contain_text("of p > 0.2 as tissue")
    numbers_from = page.get_by_text("Numbers from")  # the weights' settings name the filter beside the cut-off
    expect(numbers_from).to_contain_text("region filter: regions of p > 0.2 judged tissue dropped")
    settle(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "mammography_region_filter.png"))
    assert not page.locator("[data-testid='stException']").count()

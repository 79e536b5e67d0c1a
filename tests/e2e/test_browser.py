"""End-to-end: the real app server driven in headless Chromium (Debian's package) by Playwright.

Starts ``streamlit run app.py`` on a free port with its own MEDLIM_HOME, opens a
deep link to the viewer first, goes home and back through the navigation, uploads a generated DICOM mammogram through the file
input, checks the metadata table and the image, and keeps a screenshot under
``artifacts/`` (gitignored) as the test artefact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def write_test_mammogram(path: Path) -> None:
    """A 12-bit MONOCHROME2 'MG' DICOM (320 x 256) with a window, detector spacing and a fake name."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rows, columns = 320, 256
    y, x = np.mgrid[0:rows, 0:columns]
    breast = ((x / 230.0) ** 2 + ((y - rows / 2) / 150.0) ** 2) <= 1.0
    pixels = np.where(breast, 1500 + 6 * x, 100).astype(np.uint16)
    pixels[150:170, 60:200] = 4000  # a bright band (a "vessel")

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography, For Presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "SECRET-ID-123"
    ds.PatientBirthDate = "19600101"
    ds.Modality = "MG"
    ds.StudyDate = "20240315"
    ds.ViewPosition = "CC"
    ds.ImageLaterality = "L"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImagerPixelSpacing = [0.1, 0.1]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def app_url(start_app, tmp_path: Path) -> str:
    """The real app server for this test (harness in ``tests/e2e/conftest.py``)."""
    return start_app()


def test_viewer_upload_in_real_browser(app_url: str, tmp_path: Path, browser_page, settle, slide) -> None:
    from playwright.sync_api import expect

    dicom = tmp_path / "phantom_mammogram.dcm"
    write_test_mammogram(dicom)
    ARTIFACTS.mkdir(exist_ok=True)

    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 1800})
    # A deep link as the server's first request still gets the app shell (medlim.ui.shell).
    page.goto(f"{app_url}/viewer")
    expect(page.get_by_role("heading", name="Image viewer")).to_be_visible()
    page.get_by_role("link", name="Home", exact=True).click()
    expect(page.get_by_role("heading", name="medlim", exact=True)).to_be_visible()
    expect(page.get_by_text("Research use only").first).to_be_visible()
    expect(page.get_by_text("Compute device")).to_be_visible()
    models = page.locator("[data-testid='stTable']").or_(page.get_by_text("No models are registered yet"))
    expect(models.first).to_be_visible()  # the last element: the page has finished
    page.screenshot(path=str(ARTIFACTS / "home.png"))

    page.get_by_role("link", name="Image viewer").click()
    expect(page.get_by_role("heading", name="Image viewer")).to_be_visible()
    page.locator("input[type='file']").first.set_input_files(str(dicom))

    table = page.locator("[data-testid='stTable']").first
    expect(table).to_contain_text("phantom_mammogram.dcm")
    expect(table).to_contain_text("MG")
    expect(table).to_contain_text("2024-03-15")
    expect(table).to_contain_text("at the detector")
    charts = page.locator("[data-testid='stPlotlyChart']")
    expect(charts).to_have_count(2)
    expect(charts.first.locator("image").first).to_be_attached()  # the plotly image trace
    expect(page.get_by_text("Window centre (level)")).to_be_visible()
    settle(page)
    # Streamlit scrolls inside its main block, so the tall viewport is what fits the page.
    page.screenshot(path=str(ARTIFACTS / "viewer.png"))

    # Narrow the window from the keyboard: the page reruns and redraws without error.
    width_slider = page.get_by_role("slider", name="Window width").first
    slide(page, width_slider, "Home", "1")
    expect(page.locator("[data-testid='stPlotlyChart']")).to_have_count(2)
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "viewer_narrow_window.png"))

    body = page.locator("body").inner_text()
    for identifying in ("Doe", "Jane", "SECRET-ID-123", "1960"):
        assert identifying not in body, f"identifying text {identifying!r} shown on the page"
    assert not page.locator("[data-testid='stException']").count()

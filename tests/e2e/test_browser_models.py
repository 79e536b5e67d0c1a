"""End-to-end: the Models page in the real app server, driven in headless Chromium by Playwright.

Uploads a zip of a tiny class-folder dataset (3 classes × 18 radiograph phantoms,
32 × 32), waits for the ``data check`` summary, trains TEND on "hand" for a
budget of 0.5 minutes with the live progress, reads the validation figures,
makes the new version the default, and finds it selected on the
Out-of-distribution page. Screenshots go to ``artifacts/`` (gitignored).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]


def _dataset(root: Path) -> Path:
    from medlim.phantoms.radiograph import generate_radiograph, write_radiograph

    for part in ("hand", "elbow", "shoulder"):
        for k in range(18):
            write_radiograph(generate_radiograph(seed=3, index=k, body_part=part, size=32), root, stem=f"{part}_{k:02d}")
    return root


def _zipped(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*.png")):
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _choose(page, label: str, option: str) -> None:
    page.locator("[data-testid='stSelectbox']").filter(has_text=label).first.click()
    page.get_by_role("option", name=option, exact=True).click()


def test_models_page_trains_on_an_upload_and_the_ood_page_picks_the_new_version(
    start_app, tmp_path: Path, browser_page, open_page, settle
) -> None:
    from playwright.sync_api import expect

    from medlim.core.model_catalogue import inspect_dataset

    folder = _dataset(tmp_path / "clinic")
    fingerprint = inspect_dataset(folder, "ood").fingerprint.id
    archive = tmp_path / "clinic.zip"
    archive.write_bytes(_zipped(folder))
    ARTIFACTS.mkdir(exist_ok=True)
    url = start_app()

    page = browser_page
    open_page(page, url, link="Models", heading="Models", prompt="Models of this task (ood-detection)")
    page.locator("input[type='file']").first.set_input_files(str(archive))
    expect(page.get_by_text("No problems found")).to_be_visible()
    expect(page.get_by_text(fingerprint, exact=True)).to_be_visible()  # the summary's fingerprint row

    settle(page)
    _choose(page, "In-distribution class", "hand")
    settle(page)  # the class choice's rerun has finished: typing now is not lost to it
    minutes = page.get_by_role("spinbutton", name="Minutes")
    minutes.fill("0.5")
    minutes.press("Enter")
    expect(minutes).to_have_value("0.50")
    settle(page)
    expect(page.get_by_text("keep the tab open")).to_be_visible()
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.locator("[data-testid='stProgress']")).to_be_visible()  # the live progress bar
    expect(page.get_by_text(re.compile(r"Registered ae-hand@1, tend-hand@1 in your models"))).to_be_visible()
    expect(page.get_by_role("heading", name="Last training")).to_be_visible()
    expect(page.locator("[data-testid='stPlotlyChart']")).to_have_count(1)
    expect(page.get_by_text("the held-out 20 % of your dataset")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "models_trained.png"), full_page=True)

    settle(page)
    page.get_by_role("button", name="Make tend-hand@1 the default for Out-of-distribution").click()
    expect(page.get_by_text("tend-hand@1 is now the default ood-detection model.")).to_be_visible()

    page.get_by_role("link", name="Out-of-distribution").click()
    expect(page.get_by_role("heading", name="Out-of-distribution detection")).to_be_visible()
    expect(page.get_by_role("combobox", name="Detector")).to_have_value("tend-hand@1 (yours, default)")
    expect(page.get_by_text(f"trained on the user dataset {fingerprint}")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "models_on_ood_page.png"), full_page=True)
    assert not page.locator("[data-testid='stException']").count()

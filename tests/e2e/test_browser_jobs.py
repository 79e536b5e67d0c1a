"""End-to-end: a MedShift run started from its page is a job that outlives the browser tab (issue 15).

The real app server starts its job worker beside itself (``MEDLIM_WORKER=auto``,
its own ``MEDLIM_HOME`` in a temporary folder). The test points the Curation
page at two tiny class-folder datasets (hand and elbow radiograph phantoms,
32 × 32) in a data root, sets seconds-long settings, starts the run, closes the
tab while the job waits or runs, opens a new tab, navigates back to the page
and sees the finished run's results; the Jobs page lists the job as done.
Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
#: A job runs in the worker's own process (imports torch, trains 2 detectors and G): minutes on a loaded CI box.
JOB_TIMEOUT_MS = 480_000

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]


def _class_folders(root: Path, *, seed: int) -> Path:
    from medlim.phantoms.radiograph import generate_radiograph, write_radiograph

    for part in ("hand", "elbow"):
        for k in range(6):
            write_radiograph(generate_radiograph(seed=seed, index=k, body_part=part, size=32), root,
                             stem=f"{part}_{k:02d}")
    return root


def _fill(page, label: str, value: str, settle) -> None:
    box = page.get_by_role("spinbutton", name=label)
    box.fill(value)
    box.press("Enter")
    settle(page)


def _server_folder(page, role_index: int, path: Path, settle) -> None:
    page.get_by_text("Folder on the server", exact=True).nth(role_index).click()
    settle(page)
    box = page.get_by_role("textbox", name="Folder with one sub-folder per class").nth(role_index)
    box.fill(str(path))
    box.press("Enter")
    settle(page)


def test_a_medshift_run_finishes_after_the_tab_was_closed(start_app, app_worker, tmp_path: Path, browser_page,
                                                         open_page, settle) -> None:
    from playwright.sync_api import expect

    data = tmp_path / "data"
    internal = _class_folders(data / "internal", seed=31)
    external = _class_folders(data / "external", seed=32)
    home = tmp_path / "medlim_home"
    ARTIFACTS.mkdir(exist_ok=True)
    app_worker(home)  # the worker the app starts is stopped when the test ends
    url = start_app({"MEDLIM_HOME": str(home), "MEDLIM_WORKER": "auto", "MEDLIM_DEVICE": "cpu",
                     "MEDLIM_DATA_ROOTS": str(data), "MEDLIM_DATABASE_URL": f"sqlite:///{home / 'medlim.sqlite'}"})
    page = browser_page
    open_page(page, url, link="Curation decisions", heading="Curation decisions")
    expect(page.get_by_role("button", name="Train and score")).to_be_visible()
    settle(page)
    _server_folder(page, 0, internal, settle)
    _server_folder(page, 1, external, settle)
    # the check before the run (`medlim shift check`): 6 images of each class in both folders, nothing left out
    expect(page.get_by_text("What the run will use", exact=True)).to_be_visible()
    classes = page.locator("[data-testid='stDataFrame']").first
    expect(classes).to_contain_text("internal images")
    expect(page.get_by_text("The run cannot start", exact=False)).to_have_count(0)
    page.get_by_text("Settings", exact=True).click()
    for label, value in (("Detector side (px)", "32"), ("Detector epochs", "1"), ("Head epochs", "1"),
                         ("G epochs", "1"), ("OTDD repeats", "2"), ("OTDD samples", "10")):
        _fill(page, label, value, settle)
    name = page.get_by_role("textbox", name="Save the run as")
    name.fill("tiny-job")
    name.press("Enter")
    settle(page)
    page.get_by_role("button", name="Train and score").click()
    expect(page.get_by_role("heading", name="MedShift run")).to_be_visible()
    expect(page.locator("[data-testid='stProgress']")).to_be_visible()  # the job, followed by polling
    page.screenshot(path=str(ARTIFACTS / "jobs_medshift_started.png"), full_page=True)
    page.close()  # the tab goes; the job stays with the worker

    again = browser_page.context.browser.new_page(viewport={"width": 1500, "height": 1900})  # a new tab, a new session
    again.set_default_timeout(90_000)
    open_page(again, url, link="Curation decisions", heading="Curation decisions")
    expect(again.get_by_text("MedShift run “tiny-job” finished")).to_be_visible(timeout=JOB_TIMEOUT_MS)
    expect(again.locator("[data-testid='stMetric']").first).to_contain_text("12")  # 2 classes × 6 images
    settle(again)
    again.screenshot(path=str(ARTIFACTS / "jobs_medshift_reopened.png"), full_page=True)

    again.get_by_role("link", name="Jobs").click()
    expect(again.get_by_role("heading", name="Jobs")).to_be_visible()
    expect(again.locator("[data-testid='stDataFrame']")).to_be_visible()
    assert not again.locator("[data-testid='stException']").count()

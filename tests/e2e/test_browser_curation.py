"""End-to-end: the curation workspace in the real app server, driven in headless Chromium.

A tiny MedShift run (two body parts of radiograph phantoms, one training epoch)
is stored in a fresh MEDLIM_HOME first, as if a curator had run it and closed
the browser. The test opens the app, goes to "Curation decisions", finds the
stored run, opens the top group of "hand" in the gallery, enlarges an image,
drops the whole group, checks that the tags are in the store, and downloads the
curated manifest. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def _store_tiny_run(home: Path) -> int:
    """Run MedShift on tiny phantom sets and store it as dataset ``e2e``; return the number of images."""
    from medlim.core.store import open_store
    from medlim.curation.shift.classifier import ClassifierConfig
    from medlim.curation.shift.data import phantom_image_set
    from medlim.curation.shift.detectors import DetectorConfig
    from medlim.curation.shift.pipeline import ShiftConfig, run_shift
    from medlim.curation.shift.report import save_result

    config = ShiftConfig(detector=DetectorConfig(input_size=32, epochs=1, head_epochs=1), classifier=ClassifierConfig(epochs=1),
                         k=3, otdd_repeats=2, otdd_max_samples=10)
    internal = phantom_image_set(seed=31, per_class=6, body_parts=("hand", "elbow"))
    external = phantom_image_set(seed=32, per_class=9, site="mixed", body_parts=("hand", "elbow"), name="e2e")
    result = run_shift(internal, external, config)
    with open_store(f"sqlite:///{home / 'medlim.sqlite'}") as store:
        save_result(store, result, home=home, dataset="e2e")
    return len(result.files)


@pytest.fixture(scope="module")
def stored_run_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A home holding one stored run, made once for the module (each test works on its own copy)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        home = tmp_path_factory.mktemp("stored_run") / "medlim_home"
        home.mkdir()
        return home, _store_tiny_run(home)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def curation_app(start_app, stored_run_home: tuple[Path, int], tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path, int]:
    """The real app server over a copy of the home holding the stored run (harness in ``tests/e2e/conftest.py``)."""
    import shutil

    template, n_images = stored_run_home
    home = tmp_path / "medlim_home"
    shutil.copytree(template, home)
    monkeypatch.delenv("MEDLIM_DATABASE_URL", raising=False)
    return start_app({"MEDLIM_HOME": str(home), "MEDLIM_DEVICE": "cpu"}), home, n_images


def test_curation_tag_group_and_export(curation_app: tuple[str, Path, int], browser_page, open_page, settle) -> None:
    from playwright.sync_api import expect

    from medlim.core.store import open_store
    from medlim.core.store.curation import get_scores, tag_map

    url, home, n_images = curation_app
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser_page
    page.set_viewport_size({"width": 1500, "height": 2400})
    open_page(page, url, link="Curation decisions", heading="Curation decisions")
    metrics = page.locator("[data-testid='stMetric']")
    expect(metrics.first).to_contain_text(str(n_images))
    expect(page.locator("[data-testid='stPlotlyChart']").first).to_be_visible()
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "curation_scores.png"))

    page.get_by_role("tab", name="Groups").click()
    # the gallery opens on the highest-score group of the first class (elbow); pick hand
    page.locator("[data-testid='stSelectbox']").filter(has_text="Class").first.click()
    page.get_by_role("option", name="hand", exact=True).click()
    expect(page.locator("[data-testid='stImage']").first).to_be_visible()
    dialog = page.get_by_role("dialog")
    for attempt in range(3):
        # A click that lands while a rerun replaces the gallery is lost: wait for the run to finish, click,
        # and click again if no dialog opened (a state, never a fixed pause, decides).
        settle(page)
        page.get_by_role("button", name="View").first.click()
        try:
            expect(page.locator("[data-testid='stDialog']")).to_have_count(1, timeout=30_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
    expect(dialog.locator("img")).to_be_visible()
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "curation_enlarged.png"))
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)

    page.get_by_role("button", name="Drop whole group").click()
    expect(page.get_by_text(" · drop").first).to_be_visible()
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "curation_groups.png"))
    with open_store(f"sqlite:///{home / 'medlim.sqlite'}") as store:
        scores = get_scores(store, "e2e")
        tags = tag_map(store, "e2e")
    top = max(s.group for s in scores if s.class_name == "hand")
    dropped = {s.file for s in scores if s.class_name == "hand" and s.group == top}
    assert dropped and tags == {f: "drop" for f in dropped}

    page.get_by_role("tab", name="TOP-k and OTDD").click()
    expect(page.get_by_text("TOP 3").first).to_be_visible()
    expect(page.get_by_text("Dataset distance versus TOP-k")).to_be_visible()
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "curation_topk.png"))

    page.get_by_role("tab", name="Export").click()
    expect(page.get_by_text(f"{n_images - len(dropped)} of {n_images} images kept.")).to_be_visible()
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download the curated manifest (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert len(rows) == n_images - len(dropped) and not dropped & {r["file"] for r in rows}
    page.screenshot(path=str(ARTIFACTS / "curation_export.png"))
    assert not page.locator("[data-testid='stException']").count()


def test_curation_anchor_switch_reaches_the_queued_run(start_app, tmp_path: Path, browser_page, open_page,
                                                      settle) -> None:
    """Unticking "Lowest group below threshold" in the browser queues ``medlim shift run --group-anchor none``.

    No worker runs (``MEDLIM_WORKER=external``), so the job stays queued and the test reads its argv from the
    jobs store; what the run then does with the flag is the AppTest's and the CLI's (``--group-anchor none``).
    """
    from playwright.sync_api import expect

    from medlim.core.jobs import list_jobs
    from medlim.core.store import open_store

    home = tmp_path / "medlim_home"
    home.mkdir()
    database = f"sqlite:///{home / 'medlim.sqlite'}"
    url = start_app({"MEDLIM_HOME": str(home), "MEDLIM_WORKER": "external", "MEDLIM_DEVICE": "cpu",
                     "MEDLIM_DATABASE_URL": database})
    page = browser_page
    page.set_viewport_size({"width": 1500, "height": 2400})
    open_page(page, url, link="Curation decisions", heading="Curation decisions")
    settle(page)
    page.get_by_text("Settings", exact=True).click()
    switch = page.get_by_role("checkbox", name="Lowest group below threshold")
    expect(switch).to_be_checked()  # the default, as `medlim shift run`'s --group-anchor threshold
    for attempt in range(3):  # a click that lands during a rerun is lost: click again until the state holds
        settle(page)
        if switch.is_checked():
            switch.click(force=True)
        try:
            expect(switch).not_to_be_checked(timeout=20_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
    settle(page)
    page.get_by_role("button", name="Train and score").click()
    expect(page.get_by_text("No job worker is running")).to_be_visible()
    with open_store(database) as store:
        (job,) = list_jobs(store, kind="shift.run")
    argv = job.parameters["argv"]
    assert (job.origin, job.state) == ("page", "queued") and argv[:2] == ["shift", "run"]
    assert argv[argv.index("--group-anchor") + 1] == "none"
    page.screenshot(path=str(ARTIFACTS / "curation_anchor_off.png"))
    assert not page.locator("[data-testid='stException']").count()

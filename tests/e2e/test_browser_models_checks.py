"""End-to-end: the Models page's dataset check and the OOD page's folder job in the real app, in headless Chromium.

Four behaviours the AppTest tests (``tests/ui/test_page_models.py``,
``tests/ui/test_page_jobs.py``) cover, seen here through the browser:

* a server folder whose ``manifest.csv`` names two PNGs outside the data roots
  (an absolute path and a ``../`` path): the check lists both as problems,
  counts only the 54 images inside, and Train waits for "Leave out the images
  with problems", which fixes them (each concerns one row);
* a plain folder of images (no class folders) for TEND / CVAD: the page asks
  "What these images show (one class)" and offers Train only once it is named
  (nothing is trained);
* a folder too small to validate: leaving out images cannot fix it, the page
  says so and Train stays disabled;
* the OOD page scores a server folder without labels as an ``ood.score`` job in
  the worker the app starts, and shows the summary that job printed
  (``ood score --jsonl --summary``) with the shipped default detector.

The datasets are 32–64 px radiograph phantoms of the library's generator.
Screenshots go to ``artifacts/`` (gitignored).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
#: The scoring job runs in the worker's own process (imports torch, loads the detector): minutes on a loaded box.
JOB_TIMEOUT_MS = 300_000
#: What the page's data check calls a manifest row naming a file outside the data roots (PROBLEM_KINDS).
OUTSIDE = "a file the dataset names lies outside the dataset folder and the data folders the app may read"
TOO_FEW = "the training or validation part has fewer images than training needs"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def _class_folders(root: Path, per_class: int, *, size: int = 32) -> Path:
    """``root/<hand|elbow|shoulder>/*.png``: radiograph phantoms (the library's generator)."""
    from medlim.phantoms.radiograph import generate_radiograph, write_radiograph

    for part in ("hand", "elbow", "shoulder"):
        for k in range(per_class):
            write_radiograph(generate_radiograph(seed=3, index=k, body_part=part, size=size), root,
                             stem=f"{part}_{k:02d}")
    return root


def _models_page(page, url: str, folder: str, open_page, settle) -> None:
    """Open the Models page (OOD task) and point it at ``folder`` under the data roots."""
    from playwright.sync_api import expect

    open_page(page, url, link="Models", heading="Models", prompt="Models of this task (ood-detection)")
    settle(page)
    page.get_by_text("Folder on the server", exact=True).click()
    box = page.get_by_role("textbox", name="Dataset folder on the server")
    expect(box).to_be_visible()
    settle(page)
    box.fill(folder)
    box.press("Enter")
    expect(page.get_by_role("button", name="Check again")).to_be_visible()  # the check ran and its report shows
    settle(page)


def _summary_value(page, what: str):  # -> Locator
    """The value cell of the ``data check`` summary's row ``what`` (a static table: its text is in the page)."""
    summary = page.locator("[data-testid='stTable']").filter(has_text="fingerprint")
    return summary.locator("tr").filter(has=page.locator("th", has_text=re.compile(rf"^{re.escape(what)}$"))) \
        .locator("td")


def _problems(page):  # -> Locator
    """The problems table (a data grid: its visible rows are also an accessible HTML table inside the canvas)."""
    return page.locator("[data-testid='stDataFrame']").filter(has=page.locator("th", has_text="details"))


def _check(page, label: str, settle) -> None:
    from playwright.sync_api import expect

    box = page.get_by_role("checkbox", name=label)
    page.get_by_text(label, exact=True).click()
    expect(box).to_be_checked()
    settle(page)


def test_a_manifest_naming_files_outside_the_data_roots_lists_them_and_train_waits(
    start_app, tmp_path: Path, browser_page, open_page, settle
) -> None:
    from playwright.sync_api import expect

    data = tmp_path / "data"
    folder = _class_folders(data / "reaching", 18)
    outside = tmp_path / "elsewhere"  # beside the data root, not in it
    shutil.copytree(folder / "hand", outside)
    rows = [f"{path.relative_to(folder).as_posix()},{path.parent.name}" for path in sorted(folder.rglob("*.png"))]
    rows += [f"{outside / 'hand_00.png'},hand", "../../elsewhere/hand_01.png,hand"]  # manifest rows 56 and 57
    (folder / "manifest.csv").write_text("file,class\n" + "\n".join(rows) + "\n")
    ARTIFACTS.mkdir(exist_ok=True)
    url = start_app({"MEDLIM_DATA_ROOTS": str(data), "MEDLIM_DEVICE": "cpu"})
    page = browser_page
    _models_page(page, url, "reaching", open_page, settle)

    expect(_summary_value(page, "layout")).to_have_text("manifest_class (checked for the ood task)")
    expect(_summary_value(page, "images")).to_have_text("54")  # the two outside files were never read
    expect(_summary_value(page, "images per class")).to_have_text("elbow: 18, hand: 18, shoulder: 18")
    expect(page.get_by_text("2 problems found")).to_be_visible()
    problems = _problems(page)
    expect(problems).to_be_visible()
    expect(problems.locator("tbody tr")).to_have_count(2)
    expect(problems.locator("td[aria-colindex='1']")).to_have_text([re.compile(re.escape(OUTSIDE))] * 2)
    expect(problems.locator("td[aria-colindex='2']")).to_have_text(
        [f"row 56, {outside / 'hand_00.png'}", f"row 57, {folder / '../../elsewhere/hand_01.png'}"])
    expect(problems.locator("td[aria-colindex='3']")).to_have_text(
        [re.compile("lies outside the dataset folder and the data folders this app may read")] * 2)
    train = page.get_by_role("button", name="Train", exact=True)
    expect(train).to_be_disabled()
    page.screenshot(path=str(ARTIFACTS / "models_check_outside_roots.png"), full_page=True)

    # each problem concerns one manifest row: leaving those rows out fixes the dataset, and nothing says otherwise
    _check(page, "Leave out the images with problems", settle)
    expect(train).to_be_enabled()
    expect(page.get_by_text("cannot fix")).to_have_count(0)
    assert not page.locator("[data-testid='stException']").count()


def test_a_plain_folder_trains_only_once_the_user_names_its_class(
    start_app, tmp_path: Path, browser_page, open_page, settle
) -> None:
    from playwright.sync_api import expect

    data = tmp_path / "data"
    generated = _class_folders(tmp_path / "generated", 18)
    plain = data / "plain"
    plain.mkdir(parents=True)
    for path in sorted(generated.rglob("*.png")):  # one folder, no class sub-folders
        shutil.copy(path, plain / path.name)
    ARTIFACTS.mkdir(exist_ok=True)
    url = start_app({"MEDLIM_DATA_ROOTS": str(data), "MEDLIM_DEVICE": "cpu"})
    page = browser_page
    _models_page(page, url, "plain", open_page, settle)

    expect(_summary_value(page, "layout")).to_have_text("unlabelled (checked for the ood task)")
    expect(_summary_value(page, "images")).to_have_text("54")
    expect(page.get_by_text("No problems found")).to_be_visible()
    named = page.get_by_role("textbox", name="What these images show (one class)")
    expect(named).to_be_visible()
    expect(named).to_have_value("")
    expect(page.get_by_text("Name the class these images show to train a detector on them.")).to_be_visible()
    train = page.get_by_role("button", name="Train", exact=True)
    expect(train).to_have_count(0)  # the form is incomplete: no Train button yet
    expect(page.locator("[data-testid='stSelectbox']").filter(has_text="In-distribution class")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "models_plain_folder_unnamed.png"), full_page=True)

    named.fill("radiograph")
    named.press("Enter")
    expect(train).to_be_enabled()
    expect(page.get_by_text("Name the class these images show")).to_have_count(0)
    settle(page)

    # CVAD asks the same question and keeps the answer
    page.get_by_text("CVAD", exact=True).click()
    expect(page.get_by_role("radio", name="CVAD")).to_be_checked()
    settle(page)
    expect(named).to_have_value("radiograph")
    expect(train).to_be_enabled()
    page.screenshot(path=str(ARTIFACTS / "models_plain_folder_named.png"), full_page=True)
    assert not page.locator("[data-testid='stException']").count()


def test_a_dataset_too_small_to_validate_says_leaving_out_images_cannot_fix_it(
    start_app, tmp_path: Path, browser_page, open_page, settle
) -> None:
    from playwright.sync_api import expect

    data = tmp_path / "data"
    _class_folders(data / "small", 12)  # 36 images: too few for a training and a validation part
    ARTIFACTS.mkdir(exist_ok=True)
    url = start_app({"MEDLIM_DATA_ROOTS": str(data), "MEDLIM_DEVICE": "cpu"})
    page = browser_page
    _models_page(page, url, "small", open_page, settle)

    expect(_summary_value(page, "images")).to_have_text("36")
    expect(page.get_by_text("1 problem found")).to_be_visible()
    problems = _problems(page)
    expect(problems.locator("tbody tr")).to_have_count(1)
    expect(problems.locator("td[aria-colindex='1']")).to_have_text([TOO_FEW])
    expect(problems.locator("td[aria-colindex='2']")).to_have_text(["the whole dataset"])
    train = page.get_by_role("button", name="Train", exact=True)
    expect(train).to_be_disabled()
    expect(page.get_by_text("cannot fix")).to_have_count(0)  # said once the user asks to leave images out

    _check(page, "Leave out the images with problems", settle)
    expect(page.get_by_text(f"Leaving out the images with problems cannot fix: {TOO_FEW}. Add images (or fix the "
                            "dataset) and check it again.")).to_be_visible()
    expect(train).to_be_disabled()
    page.screenshot(path=str(ARTIFACTS / "models_check_cannot_fix.png"), full_page=True)
    assert not page.locator("[data-testid='stException']").count()


def test_the_ood_page_scores_an_unlabelled_server_folder_as_a_job_and_shows_its_summary(
    start_app, app_worker, tmp_path: Path, browser_page, open_page, settle
) -> None:
    from playwright.sync_api import expect

    from medlim.core.jobs import list_jobs
    from medlim.core.store import open_store
    from medlim.ui.jobs import result_output

    data = tmp_path / "data"
    _class_folders(data / "set", 2, size=64)  # 6 images; their folders are not read as labels
    home = tmp_path / "medlim_home"
    database = f"sqlite:///{home / 'medlim.sqlite'}"
    ARTIFACTS.mkdir(exist_ok=True)
    app_worker(home)  # the worker the app starts is stopped when the test ends
    url = start_app({"MEDLIM_HOME": str(home), "MEDLIM_WORKER": "auto", "MEDLIM_DEVICE": "cpu",
                     "MEDLIM_DATA_ROOTS": str(data), "MEDLIM_DATABASE_URL": database})
    page = browser_page
    open_page(page, url, link="Out-of-distribution", heading="Out-of-distribution detection")
    detector = page.get_by_role("combobox", name="Detector")
    expect(detector).to_have_value(re.compile(r"^tend-humerus@3 "))  # the shipped default
    settle(page)
    page.get_by_text("Folder on the server", exact=True).click()
    folder = page.get_by_role("textbox", name="Folder on the server")
    expect(folder).to_be_visible()
    settle(page)
    folder.fill("set")
    folder.press("Enter")
    score = page.get_by_role("button", name="Score the folder")
    expect(score).to_be_enabled()
    settle(page)
    expect(page.get_by_role("checkbox", name="Labels from folder names")).not_to_be_checked()
    score.click()

    metrics = page.locator("[data-testid='stMetric']")
    ended = metrics.filter(has_text="Predicted OOD").or_(page.get_by_text("The job failed"))
    expect(ended.first).to_be_visible(timeout=JOB_TIMEOUT_MS)  # the worker ran it; the page saw it end
    failed = page.get_by_text("The job failed")
    assert not failed.count(), failed.first.inner_text()
    with open_store(database) as store:
        (job,) = list_jobs(store, kind="ood.score")
    assert job.state == "done"
    argv = job.parameters["argv"]
    assert argv[:2] == ["ood", "score"] and argv[argv.index("--detector") + 1] == "tend-humerus@3"
    assert "--summary" in argv and "--labels-from-folders" not in argv
    (summary,) = [value["summary"] for value in result_output(job) if isinstance(value, dict) and "summary" in value]
    assert summary["images"] == 6 and summary["auroc"] is None

    def shown(label: str):  # -> Locator
        return metrics.filter(has_text=label).locator("[data-testid='stMetricValue']")

    expect(shown("Images")).to_have_text(str(summary["images"]))
    expect(shown("Predicted OOD")).to_have_text(str(summary["predicted_ood"]))  # the job's figure, not a recount
    expect(shown("AUROC")).to_have_text("—")
    table = page.locator("[data-testid='stDataFrame']").filter(has=page.locator("th", has_text="is_ood"))
    expect(table.locator("tbody tr")).to_have_count(6)
    expect(page.locator("[data-testid='stPlotlyChart']")).to_have_count(0)  # no labels: no ROC
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "ood_folder_job_summary.png"), full_page=True)
    assert not page.locator("[data-testid='stException']").count()

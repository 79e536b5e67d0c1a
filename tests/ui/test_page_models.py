"""AppTest tests of the Models page (pages/models.py) and its parts (medlim.ui.models)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from medlim.core.model_catalogue import TrainingCurve, TrainingRequest, training_argv
from medlim.errors import ParameterError
from medlim.ui.models import (
    COLOURS,
    catalogue_frame,
    curve_figure,
    job_curve,
    training_summary,
    validation_frame,
)

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "models.py")
OOD_PAGE = str(ROOT / "pages" / "ood.py")
TIMEOUT = 180


def _class_folders(root: Path, per_class: int) -> Path:
    """``root/<hand|elbow|shoulder>/*.png``: 32 × 32 radiograph phantoms (the library's generator)."""
    from medlim.phantoms.radiograph import generate_radiograph, write_radiograph

    for part in ("hand", "elbow", "shoulder"):
        for k in range(per_class):
            write_radiograph(generate_radiograph(seed=3, index=k, body_part=part, size=32), root, stem=f"{part}_{k:02d}")
    return root


def _frame(at: AppTest, column: str) -> pd.DataFrame:
    """The first table of the page that has ``column`` (an index column counts)."""
    frames = [element.value for element in [*at.dataframe, *at.table]]
    return next(frame.reset_index() if column in frame.index.names else frame
                for frame in frames if column in frame.columns or column in frame.index.names)


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root holding ``small`` (12 per class: too few to validate) and ``clinic`` (18 per class)."""
    root = tmp_path / "data"
    _class_folders(root / "small", 12)
    _class_folders(root / "clinic", 18)
    monkeypatch.setenv("MEDLIM_DATA_ROOTS", str(root))
    return root


# -- the parts, without a running app --------------------------------------------------------------------


def test_a_request_is_the_command_line_of_its_trainer() -> None:
    data = Path("/data/clinic")
    assert training_argv(TrainingRequest("tend", data, 0.5, id_class="hand")) == [
        "train", "tend", "--data", "/data/clinic", "--max-minutes", "0.5", "--id-class", "hand"]
    assert training_argv(TrainingRequest("scunet", data, 2, name="mine", init="scunet-bac@2", skip_bad=True)) == [
        "train", "scunet", "--data", "/data/clinic", "--max-minutes", "2", "--init", "scunet-bac@2", "--name", "mine",
        "--skip-bad"]
    assert training_argv(TrainingRequest("oscars", data, 1, internal=Path("/data/internal")))[-2:] == [
        "--internal", "/data/internal"]
    for bad, message in ((TrainingRequest("cvad", data, 1), "in-distribution class"),
                         (TrainingRequest("oscars", data, 1), "internal folder"),
                         (TrainingRequest("pms", data, 1, init="x"), "does not start from"),
                         (TrainingRequest("pms", data, 0), "positive number of minutes"),
                         (TrainingRequest("unet", data, 1), "unknown trainer")):
        with pytest.raises(ParameterError, match=message):
            training_argv(bad)


def test_a_jobs_log_and_result_give_the_curve_and_the_validation_table() -> None:
    curve = job_curve(["tend epoch 1/9: bce 0.3, g_in 1.0", "noise", "TEND validation after epoch 1: auroc 0.8"])
    assert curve.series("tend", "validation") == ((1,), (0.8,), "auroc")
    summary = training_summary([{"other": 1}, {"registered": [{"name": "tend-hand", "version": "1"}],
                                                "validation": {"tend-hand": {"auroc": 0.8, "fit": {"epochs": 3},
                                                                             "curve": [1, 2]}}}])
    frame = validation_frame(summary)  # a row per figure in plain words, a column per model, lists left out
    assert frame.to_dict("records") == [
        {"figure": "AUROC", "tend-hand@1": "0.8", "meaning": "how well the score separates your class's validation "
         "images from the negatives (0.5 = chance, 1 = perfect)"},
        {"figure": "fit.epochs", "tend-hand@1": "3", "meaning": ""}]
    assert training_summary([{"k": 3}]) is None


def test_the_curve_has_axis_titles_and_one_colour_blind_safe_colour_per_stage() -> None:
    curve = TrainingCurve()
    for line in ("autoencoder epoch 1/9: mse 0.02", "AE baseline validation after epoch 1: auroc 0.6",
                 "tend epoch 1/9: bce 0.3, g_in 1.0", "TEND validation after epoch 1: auroc 0.8"):
        curve = curve.with_line(line)
    figure = curve_figure(curve)
    assert [trace.name for trace in figure.data] == ["autoencoder: mse", "autoencoder: auroc", "tend: bce",
                                                     "tend: auroc"]
    assert [trace.line.color for trace in figure.data] == [COLOURS[0], COLOURS[0], COLOURS[1], COLOURS[1]]
    layout = figure.layout
    assert layout.xaxis.title.text == layout.xaxis2.title.text == "epoch (of its stage)"
    assert (layout.yaxis.title.text, layout.yaxis.type) == ("loss (log scale)", "log")
    assert layout.yaxis2.title.text == "validation AUROC"
    assert len(curve_figure(TrainingCurve()).data) == 0  # nothing yet: an empty figure, no error


def test_the_models_table_keeps_figures_numeric_with_gaps_for_missing_ones() -> None:
    from medlim.core.model_catalogue import (
        KeyMetric,
        ModelCatalogue,
        ModelRow,
        task_info,
    )

    task = task_info("ood")
    rows = tuple(
        ModelRow(label=f"tend-{n}@1", name=f"tend-{n}", version="1", source=source, default=default,
                 date=date, fingerprint=fp, description="",
                 metrics=tuple(KeyMetric(column, value) for column, value in zip([c for c, _ in task.key_metrics],
                                                                                  values)))
        for n, source, default, date, fp, values in (
            ("a", "user", False, "2024-03-01", "0123456789abcdef", (0.875, 0.25, None)),
            ("b", "shipped", True, None, None, (None, None, None)),
        ))
    frame = catalogue_frame(ModelCatalogue(task=task, rows=rows, default="tend-b@1", user_default=False))
    assert frame[["model", "source", "default", "date", "dataset"]].values.tolist() == [
        ["tend-a@1", "user", "", "2024-03-01", "0123456789abcdef"], ["tend-b@1", "shipped", "✓ default", "", ""]]
    assert frame["validation AUROC"].tolist()[0] == 0.875 and frame["validation AUROC"].isna().tolist() == [False, True]
    assert frame["held-out AUROC"].dtype == float and frame["held-out AUROC"].isna().all()


# -- the page ----------------------------------------------------------------------------------------------


def _point_at(at: AppTest, folder: str) -> AppTest:
    at.radio(key="models_source").set_value("Folder on the server").run()
    return at.text_input(key="models_folder").set_value(folder).run()


def test_the_page_opens_on_ood_with_the_shipped_models() -> None:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="models_task").value == "ood"
    table = _frame(at, "source")
    assert list(table.columns) == ["model", "source", "default", "date", "dataset", "validation AUROC",
                                   "validation FPR@95%TPR", "held-out AUROC"]
    assert set(table["source"]) == {"shipped"} and (table["default"] == "✓ default").sum() == 1
    assert at.radio(key="models_source").value == "Upload a zip"


def test_every_task_trains_here_and_a_wrong_layout_waits_for_its_problems(data_root: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.selectbox(key="models_task").set_value("bac").run()
    assert not at.info or all("coming" not in info.value for info in at.info)
    # the data check works for the task: class folders are not a BAC layout
    _point_at(at, "clinic")
    assert not at.exception
    assert "wrong_layout" not in _frame(at, "problem")["problem"].tolist()  # plain words, not the kind
    assert any("layout" in text for text in _frame(at, "problem")["problem"])
    assert at.selectbox(key="models_init").value == "the task's default model"  # SCU-Net fine-tunes
    assert at.button(key="models_train").disabled


def test_a_folder_outside_the_data_roots_is_refused(data_root: Path, tmp_path: Path) -> None:
    at = _point_at(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), str(tmp_path))
    assert not at.exception
    assert "must lie inside one of the data folders" in at.error[0].value


def test_a_manifest_naming_files_outside_the_data_roots_has_them_refused_unread(data_root: Path, tmp_path: Path) -> None:
    import shutil

    outside = tmp_path / "elsewhere"  # beside the data root, not in it
    shutil.copytree(data_root / "clinic" / "hand", outside)
    folder = data_root / "reaching"
    shutil.copytree(data_root / "clinic", folder)
    rows = [f"{path.relative_to(folder).as_posix()},{path.parent.name}" for path in sorted(folder.rglob("*.png"))]
    rows += [f"{outside / 'hand_00.png'},hand", "../../elsewhere/hand_01.png,hand"]
    (folder / "manifest.csv").write_text("file,class\n" + "\n".join(rows) + "\n")
    at = _point_at(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), "reaching")
    assert not at.exception
    problems = _frame(at, "problem")
    outside_rows = problems[problems["details"].str.contains("lies outside the dataset folder and the data folders")]
    assert len(outside_rows) == 2
    assert dict(_frame(at, "what").values)["images"] == "54"  # the two outside files were never read


def test_a_page_s_training_job_refuses_a_manifest_reaching_outside_the_data_roots(
    data_root: Path, tmp_path: Path, run_jobs
) -> None:
    import shutil

    from medlim.core.jobs import get_job, job_log, submit_job
    from medlim.core.store import open_store

    shutil.copytree(data_root / "clinic" / "hand", tmp_path / "elsewhere")
    folder = data_root / "clinic"
    rows = [f"{path.relative_to(folder).as_posix()},{path.parent.name}" for path in sorted(folder.rglob("*.png"))]
    (folder / "manifest.csv").write_text("file,class\n" + "\n".join(rows + ["../../elsewhere/hand_03.png,hand"]))
    argv = ["train", "tend", "--data", str(folder), "--id-class", "hand", "--width", "2", "--ae-epochs", "1",
            "--epochs", "1", "--warmup-epochs", "1", "--batch-size", "4"]
    with open_store() as store:
        page = submit_job(store, "train", {"argv": argv}, origin="page")
    run_jobs()
    with open_store() as store:
        job = get_job(store, page.id)
        log = " ".join(line.line for line in job_log(store, page.id))
    assert job.state == "failed" and job.error is not None  # refused: a problem the page's check also lists
    assert "outside_data_roots [row 56, img-" in job.error.message  # the file by its pseudonymous label only
    assert "elsewhere" not in job.error.message + log and "checking the training folder: 54/54" in log


def test_a_plain_folder_trains_a_detector_of_the_class_the_user_names(data_root: Path) -> None:
    import shutil

    plain = data_root / "plain"
    plain.mkdir()
    for path in sorted((data_root / "clinic").rglob("*.png")):
        shutil.copy(path, plain / path.name)
    at = _point_at(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), "plain")
    assert not at.exception and "No problems found" in at.success[0].value
    assert any("Name the class these images show" in info.value for info in at.info)
    at.text_input(key="models_plain_class").set_value("radiograph").run()
    assert not at.button(key="models_train").disabled


def test_problems_are_listed_and_training_waits_for_them(data_root: Path) -> None:
    at = _point_at(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), "small")
    assert not at.exception
    assert "1 problem found" in at.warning[0].value
    problems = _frame(at, "problem")
    assert problems["problem"].tolist() == ["the training or validation part has fewer images than training needs"]
    assert problems["where"].tolist() == ["the whole dataset"]
    assert at.button(key="models_train").disabled
    at.checkbox(key="models_skip_bad").check().run()
    # leaving out images cannot add any: Train stays off and the page says why (a job used to fail on it)
    assert at.button(key="models_train").disabled
    assert any(w.value.startswith("Leaving out the images with problems cannot fix: the training or validation "
                                  "part has fewer images than training needs") for w in at.warning)


def test_leaving_out_bad_images_enables_training_when_that_fixes_the_dataset(data_root: Path) -> None:
    (data_root / "clinic" / "hand" / "broken.png").write_bytes(b"not an image")
    at = _point_at(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), "clinic")
    assert [row for row in _frame(at, "problem")["problem"]] == ["a file exists but is not an image the reader "
                                                                  "can decode"]
    assert at.button(key="models_train").disabled
    at.checkbox(key="models_skip_bad").check().run()
    assert not at.button(key="models_train").disabled and not any("cannot fix" in w.value for w in at.warning)


def test_train_a_detector_as_a_job_see_it_in_the_table_make_it_default_and_pick_it_on_the_ood_page(
    data_root: Path, capsys: pytest.CaptureFixture[str], run_jobs
) -> None:
    from medlim.cli import main
    from medlim.core.jobs import list_jobs
    from medlim.core.store import open_store
    from medlim.core.weights import default_model

    at = _point_at(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), "clinic")
    assert not at.exception and not at.error
    assert "No problems found" in at.success[0].value
    summary = dict(_frame(at, "what").values)
    assert summary["images per class"] == "elbow: 18, hand: 18, shoulder: 18"
    assert summary["validation split"] == "42 training / 12 validation images, 20% held out by image, seed 0"
    assert main(["data", "check", str(data_root / "clinic"), "--task", "ood", "--json"]) == 0
    fingerprint = json.loads(capsys.readouterr().out)["fingerprint"]["id"]
    assert summary["fingerprint"] == fingerprint

    assert at.radio(key="models_trainer").options == ["TEND", "CVAD"]
    assert at.selectbox(key="models_id_class").options == ["elbow", "hand", "shoulder"]
    at.selectbox(key="models_id_class").set_value("hand")
    at.number_input(key="models_minutes").set_value(2.0)
    assert not any("keep the tab open" in info.value for info in at.info)
    at.button(key="models_train").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with open_store() as store:
        (job,) = list_jobs(store, kind="train")
    assert (job.origin, job.state, job.dataset_fingerprint) == ("page", "queued", fingerprint)
    assert job.parameters["argv"] == ["train", "tend", "--data", str((data_root / "clinic").resolve()),
                                      "--max-minutes", "2", "--id-class", "hand"]
    assert at.subheader[1].value == "Training job" and at.button(key=f"models_job_cancel_{job.id}")

    (ended,) = run_jobs()  # a worker's run of the job, in this process
    assert ended.state == "done", ended.error
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "**ae-hand@1**, **tend-hand@1**" in at.success[0].value
    assert len(at.get("plotly_chart")) == 1  # the loss / validation curve of the run, from the job's log
    validation = _frame(at, "figure").set_index("figure")  # a row per figure in plain words, a column per model
    assert validation.columns.tolist() == ["ae-hand@1", "tend-hand@1", "meaning"]
    auroc = validation.loc["AUROC", ["ae-hand@1", "tend-hand@1"]].astype(float)
    assert auroc.between(0.0, 1.0).all() and "0.5 = chance" in validation.loc["AUROC", "meaning"]

    table = _frame(at, "source").set_index("model")
    assert table.loc["tend-hand@1", "source"] == "user" and table.loc["tend-hand@1", "dataset"] == fingerprint
    assert table.loc["tend-hand@1", "date"] != "" and table.loc["tend-hand@1", "default"] == ""
    assert table.loc["tend-hand@1", "validation AUROC"] == pytest.approx(auroc.iloc[1], abs=1e-3)

    at.button(key="models_default_tend-hand@1").click().run()
    assert "tend-hand@1 is now the default ood-detection model." in at.success[0].value
    assert _frame(at, "source").set_index("model").loc["tend-hand@1", "default"] == "✓ default"
    assert default_model("ood-detection").label == "tend-hand@1"

    ood = AppTest.from_file(OOD_PAGE, default_timeout=TIMEOUT).run()
    assert not ood.exception
    picker = ood.selectbox(key="ood_detector")
    assert picker.value == "tend-hand@1"  # the page opens on the task's default: the new version
    label = picker.format_func("tend-hand@1")  # with its dataset, key figure and date
    assert label.startswith(f"tend-hand@1 (yours, default) · data {fingerprint[:12]} · validation AUROC ")

    at.button(key="models_reset_default").click().run()
    assert default_model("ood-detection").label != "tend-hand@1"


def test_check_a_bac_model_on_a_few_annotated_views_as_a_job_with_every_cutoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_jobs
) -> None:
    """Three two-tone views (1000, 500 and 0 px of BAC in a 512 × 512 view) and a model whose probability is 0.7
    everywhere: below 0.7 every pixel is BAC, above it none — the same figures as ``medlim bac evaluate``'s."""
    from medlim.core.jobs import list_jobs
    from medlim.core.store import open_store
    from tests.bac_helpers import constant_bac_weights, two_tone_views

    root = tmp_path / "data"
    root.mkdir()
    two_tone_views(root / "views")
    monkeypatch.setenv("MEDLIM_DATA_ROOTS", str(root))
    weights = constant_bac_weights(logit=math.log(0.7 / 0.3), name="flat-bac")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.selectbox(key="models_task").set_value("bac").run()
    _point_at(at, "views")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.button(key="models_train").disabled  # three views are too few to train on ...
    assert any("does not matter for an evaluation" in c.value for c in at.caption)  # ... not to evaluate
    at.selectbox(key="models_eval_model").set_value(weights).run()
    at.button(key="models_evaluate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with open_store() as store:
        (job,) = list_jobs(store, kind="evaluate")
    assert job.origin == "page" and job.parameters["argv"] == [
        "bac", "evaluate", "--data", str((root / "views").resolve()), "--weights", weights, "--thresholds", "grid,0.5",
        "--json"]

    (ended,) = run_jobs()
    assert ended.state == "done", ended.error
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = _frame(at, "cut-off").set_index("cut-off")
    assert list(table.index) == [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99]
    dice = (2000 / 263144 + 1000 / 262644) / 2  # every pixel marked: 2|T| / (|T| + 512²) on the views with BAC
    assert table.loc[0.5, "Dice (views with BAC)"] == pytest.approx(dice)
    assert table.loc[0.5, "median false AM, BAC-free views (px)"] == 262144  # PNG views: no spacing, pixels
    assert table.loc[0.5, "TAM_X bias (%)"] == pytest.approx(100 * (3 * 131072 - 1500) / 1500)
    assert table.loc[0.9, "Dice (views with BAC)"] == 0.0 and table.loc[0.9, "TAM_X bias (%)"] == -100.0
    assert table.loc[0.5, "this cut-off is"] == "the model's default"
    assert "chosen by the trainer's rule" in table.loc[0.7:, "this cut-off is"].tolist()[0] + table.loc[0.8, "this cut-off is"]
    (chart,) = at.get("plotly_chart")
    assert "cut-off" in chart.proto.spec and "false AM" in chart.proto.spec
    assert str(root) not in chart.proto.spec, chart.proto.spec[:3000]


def test_the_cutoff_curve_marks_both_cutoffs_and_the_false_area_target() -> None:
    from medlim.core.evaluations import CutoffCurve, CutoffPoint
    from medlim.ui.models import cutoff_figure

    curve = CutoffCurve(points=(CutoffPoint(0.3, 0.5, 2.0, False), CutoffPoint(0.8, 0.4, 0.1, True)), unit="mm²",
                        chosen=0.8, own=0.6)
    figure = cutoff_figure(curve)
    assert [trace.name for trace in figure.data] == ["Dice, views with BAC", "median false AM, BAC-free views (mm²)"]
    assert list(figure.data[1].y) == [2.0, 0.1] and figure.data[1].yaxis == "y2"
    lines = sorted((shape.x0, shape.y0) for shape in figure.layout.shapes)
    assert lines == [(0, 0.5), (0.6, 0), (0.8, 0)]  # the 0.5 mm² target, the model's and the rule's cut-offs
    no_free = cutoff_figure(CutoffCurve(points=curve.points, unit=None, chosen=None, own=None))
    assert len(no_free.data) == 1 and not no_free.layout.shapes  # no BAC-free view: Dice alone

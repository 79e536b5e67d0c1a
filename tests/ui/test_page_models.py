"""AppTest tests of the Models page (pages/models.py) and its parts (medlim.ui.models)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from medlim.core.model_catalogue import TrainingCurve
from medlim.errors import ParameterError
from medlim.ui.models import (
    COLOURS,
    catalogue_frame,
    curve_figure,
    detector_names,
    train_detectors,
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


def test_detector_names_follow_the_command_line_defaults() -> None:
    assert detector_names(["tend"], "") == {"tend": None}  # train_on_folder's default: tend-<class>
    assert detector_names(["tend"], " mine ") == {"tend": "mine"}
    assert detector_names(["tend", "cvad"], "mine") == {"tend": "mine-tend", "cvad": "mine-cvad"}
    with pytest.raises(ParameterError, match="at least one detector kind"):
        detector_names([], "")
    with pytest.raises(ParameterError, match="unknown detector kind"):
        detector_names(["ae"], "")


def test_the_budget_is_shared_and_progress_reports_the_share_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two kinds in 2 minutes: 1 minute each; 30 s into the first run is 25 % of the whole budget."""
    from medlim.core.training import TrainingOutcome
    from medlim.curation.ood import folder

    now = [100.0]
    runs = []

    def fake_train(run, *, registries, deadline, progress):
        runs.append((run.kind, run.name, deadline.max_minutes, dict(run.command_options)))
        now[0] += 30.0
        progress(f"{run.kind} epoch 1/5: loss 0.5")
        progress(f"{run.kind.upper()} validation after epoch 1: auroc 0.75")
        return TrainingOutcome(registered=(), validation={})

    monkeypatch.setattr(folder, "train_on_folder", fake_train)
    updates = []
    result = train_detectors("/nowhere", id_class="hand", kinds=["tend", "cvad"], minutes=2.0, name="mine",
                             registries=None, on_update=updates.append, clock=lambda: now[0])
    assert runs == [("tend", "mine-tend", 1.0, {"--max-minutes": "1"}),
                    ("cvad", "mine-cvad", 1.0, {"--max-minutes": "1"})]
    assert [(u.kind, u.fraction) for u in updates] == [("tend", 0.25), ("tend", 0.25), ("cvad", 0.75), ("cvad", 0.75)]
    assert result.curve.stages == ("tend", "cvad") and result.kinds == ("tend", "cvad")
    assert result.curve.series("cvad", "validation") == ((1,), (0.75,), "auroc")
    with pytest.raises(ParameterError, match="positive number of minutes"):
        train_detectors("/nowhere", id_class="hand", kinds=["tend"], minutes=0, registries=None)


def test_a_kind_that_registers_nothing_is_reported_beside_the_one_that_did(monkeypatch: pytest.MonkeyPatch) -> None:
    from medlim.core.training import NotValidatedError, TrainingOutcome
    from medlim.curation.ood import folder

    failing = {"tend"}

    def fake_train(run, *, registries, deadline, progress):
        if run.kind in failing:
            raise NotValidatedError(f"{run.kind} was never validated")
        return TrainingOutcome(registered=(), validation={})

    monkeypatch.setattr(folder, "train_on_folder", fake_train)
    result = train_detectors("/nowhere", id_class="hand", kinds=["tend", "cvad"], minutes=1.0, registries=None)
    assert result.failures == (("tend", "tend was never validated"),) and result.kinds == ("cvad",)
    failing.add("cvad")
    with pytest.raises(NotValidatedError, match="cvad was never validated"):
        train_detectors("/nowhere", id_class="hand", kinds=["tend", "cvad"], minutes=1.0, registries=None)


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


def test_other_tasks_say_honestly_that_training_here_is_coming(data_root: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.selectbox(key="models_task").set_value("bac").run()
    notice = at.info[0].value
    assert "coming" in notice and "medlim train scunet" in notice
    # the data check still works for the task: class folders are not a BAC layout
    _point_at(at, "clinic")
    assert not at.exception
    assert "wrong_layout" not in _frame(at, "problem")["problem"].tolist()  # plain words, not the kind
    assert any("layout" in text for text in _frame(at, "problem")["problem"])
    assert not [b for b in at.button if b.key == "models_train"]


def test_a_folder_outside_the_data_roots_is_refused(data_root: Path, tmp_path: Path) -> None:
    at = _point_at(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), str(tmp_path))
    assert not at.exception
    assert "must lie inside one of the data folders" in at.error[0].value


def test_problems_are_listed_and_training_waits_for_them(data_root: Path) -> None:
    at = _point_at(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), "small")
    assert not at.exception
    assert "1 problem found" in at.warning[0].value
    problems = _frame(at, "problem")
    assert problems["problem"].tolist() == ["the training or validation part has fewer images than training needs"]
    assert problems["where"].tolist() == ["the whole dataset"]
    assert at.button(key="models_train").disabled
    at.checkbox(key="models_skip_bad").check().run()
    assert not at.button(key="models_train").disabled  # the trainer says whether leaving out rows can fix it


def test_train_a_detector_see_it_in_the_table_make_it_default_and_pick_it_on_the_ood_page(
    data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medlim.cli import main
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

    assert at.selectbox(key="models_id_class").options == ["elbow", "hand", "shoulder"]
    at.selectbox(key="models_id_class").set_value("hand")
    at.number_input(key="models_minutes").set_value(0.5)
    assert any("keep the tab open" in info.value for info in at.info)
    at.button(key="models_train").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "**ae-hand@1**, **tend-hand@1**" in at.success[0].value
    assert len(at.get("plotly_chart")) == 1  # the loss / validation curve of the run
    validation = _frame(at, "AUROC")
    assert validation["model"].tolist() == ["ae-hand@1", "tend-hand@1"]
    assert validation["AUROC"].between(0.0, 1.0).all()
    # 4 held-out hands (20 % of 18) against every elbow and shoulder (never trained on): 2 × 18
    assert (validation["ID images"] == 4).all() and (validation["OOD images"] == 36).all()

    table = _frame(at, "source").set_index("model")
    assert table.loc["tend-hand@1", "source"] == "user" and table.loc["tend-hand@1", "dataset"] == fingerprint
    assert table.loc["tend-hand@1", "date"] != "" and table.loc["tend-hand@1", "default"] == ""
    assert table.loc["tend-hand@1", "validation AUROC"] == pytest.approx(validation["AUROC"].iloc[1])

    at.button(key="models_default_tend-hand@1").click().run()
    assert "tend-hand@1 is now the default ood-detection model." in at.success[0].value
    assert _frame(at, "source").set_index("model").loc["tend-hand@1", "default"] == "✓ default"
    assert default_model("ood-detection").label == "tend-hand@1"

    ood = AppTest.from_file(OOD_PAGE, default_timeout=TIMEOUT).run()
    assert not ood.exception
    picker = ood.selectbox(key="ood_detector")
    assert picker.value == "tend-hand@1"  # the page opens on the task's default: the new version

    at.button(key="models_reset_default").click().run()
    assert default_model("ood-detection").label != "tend-hand@1"

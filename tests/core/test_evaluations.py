"""A model checked on a user's annotated folder, as the Models page shows it (medlim.core.evaluations, issue 12)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from medlim.core.evaluations import (
    EvaluationRequest,
    evaluation_argv,
    evaluation_of_argv,
    evaluation_problem,
    evaluation_report,
)
from medlim.errors import ParameterError


def test_each_task_asks_its_rooms_evaluate_command_for_json() -> None:
    data = Path("/data/site")
    assert evaluation_argv(EvaluationRequest("bac", data, "scunet-bac-dr@2", cutoff=0.8)) == [
        "bac", "evaluate", "--data", "/data/site", "--weights", "scunet-bac-dr@2", "--thresholds", "grid,0.8", "--json"]
    assert evaluation_argv(EvaluationRequest("bac", data, "mine@1"))[-3:] == ["--thresholds", "grid", "--json"]
    assert evaluation_argv(EvaluationRequest("steatosis", data, "maskrcnn-steatosis@2", skip_bad=True)) == [
        "steatosis", "evaluate", "--data", "/data/site", "--weights", "maskrcnn-steatosis@2", "--json", "--skip-bad"]
    assert evaluation_argv(EvaluationRequest("ood", data, "tend-hand@1")) == [
        "ood", "evaluate", "--detector", "tend-hand@1", "--data", "/data/site", "--json"]
    for task in ("oscars", "pms"):
        assert evaluation_argv(EvaluationRequest(task, data, "m@1"))[:4] == ["retrieval", "evaluate", "--model", "m@1"]
    with pytest.raises(ParameterError, match="choose the model"):
        evaluation_argv(EvaluationRequest("bac", data, " "))
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        evaluation_argv(EvaluationRequest("bac", data, "m@1", cutoff=1.5))
    with pytest.raises(ParameterError, match="no evaluation"):
        evaluation_argv(EvaluationRequest("nuclei", data, "m@1"))


def test_a_jobs_argv_gives_back_its_task_and_the_models_cutoff() -> None:
    argv = evaluation_argv(EvaluationRequest("bac", Path("/d"), "m@1", cutoff=0.65))
    assert evaluation_of_argv(argv) == ("bac", 0.65)
    assert evaluation_of_argv(evaluation_argv(EvaluationRequest("bac", Path("/d"), "m@1"))) == ("bac", None)
    assert evaluation_of_argv(evaluation_argv(EvaluationRequest("pms", Path("/d"), "m@1"))) == ("retrieval", None)
    assert evaluation_of_argv(["train", "tend", "--data", "/d"]) is None


def test_a_folder_that_trains_but_cannot_be_evaluated_says_what_it_lacks() -> None:
    assert evaluation_problem("bac", "msd") is None and evaluation_problem("steatosis", "segmentation_instances") is None
    text = evaluation_problem("steatosis", "unlabelled")
    assert text is not None and "image,instances" in text and "Training may still use it" in text
    assert evaluation_problem("ood", "unlabelled") is not None  # the detector's class must be named


def _sweep_row(threshold: float, dice: float, false_mm2: float | None, within: bool) -> dict:
    return {"threshold": threshold, "dice": dice, "dice_pooled": dice, "precision": 0.5, "recall": 0.25,
            "jaccard": dice / (2 - dice), "patch_dice": None, "r2": {"tam_x": 0.9, "am": 0.8, "sim": 0.7, "pm": 0.6},
            "tam_relative_bias": -0.125, "bac_free_images": 2, "false_am_px_median": 40.0,
            "false_am_mm2_median": false_mm2, "false_area_within_target": within}


def test_the_bac_sweep_becomes_a_table_and_a_curve_with_both_cutoffs_marked() -> None:
    payload = {"weights": "m v1", "data": {"fingerprint": "abcd", "dropped": 1}, "images": 6, "x": 100.0,
               "chosen": 0.8, "sweep": [_sweep_row(0.8, 0.5, 0.2, True), _sweep_row(0.3, 0.6, 3.0, False),
                                        _sweep_row(0.65, 0.55, 0.9, False)]}
    report = evaluation_report("bac", payload, cutoff=0.65)
    assert (report.model, report.fingerprint, report.images) == ("m v1", "abcd", 6)
    (table,) = report.tables
    assert [row["cut-off"] for row in table.rows] == [0.3, 0.65, 0.8]  # sorted
    assert [row["this cut-off is"] for row in table.rows] == ["", "the model's default", "chosen by the trainer's rule"]
    first = table.rows[0]
    assert first["Dice (views with BAC)"] == 0.6 and first["Jaccard"] == pytest.approx(0.6 / 1.4)
    assert first["TAM_X bias (%)"] == -12.5 and first["R² PM"] == 0.6 and first["patch Dice"] is None
    assert first["median false AM, BAC-free views (mm²)"] == 3.0 and first["false AM ≤ 0.5 mm²"] is False
    curve = report.curve
    assert curve is not None and (curve.unit, curve.chosen, curve.own) == ("mm²", 0.8, 0.65)
    assert [(p.threshold, p.dice, p.false_area) for p in curve.points] == [(0.3, 0.6, 3.0), (0.65, 0.55, 0.9),
                                                                          (0.8, 0.5, 0.2)]
    assert any("1 row(s) with problems" in note for note in report.notes)
    assert any("would choose 0.8" in note for note in report.notes)
    text = "\n".join(report.lines())
    assert text.startswith("m v1 on dataset abcd (6 images)") and "-12.5" in text


def test_views_without_spacing_count_false_area_in_pixels_and_no_bac_free_view_says_so() -> None:
    row = _sweep_row(0.5, 0.4, None, True)
    report = evaluation_report("bac", {"weights": "m v1", "images": 3, "chosen": 0.5, "sweep": [row]})
    assert report.curve is not None and report.curve.unit == "px" and report.curve.points[0].false_area == 40.0
    assert "median false AM, BAC-free views (px)" in report.tables[0].columns
    row = {**row, "bac_free_images": 0, "false_am_px_median": None}
    report = evaluation_report("bac", {"weights": "m v1", "images": 3, "chosen": None, "sweep": [row]})
    assert report.curve is not None and report.curve.unit is None and report.curve.points[0].false_area is None
    assert any("No BAC-free view" in note for note in report.notes)
    with pytest.raises(ParameterError, match="thresholds"):
        evaluation_report("bac", {"weights": "m v1", "whole_image": {}})


def test_steatosis_ood_and_retrieval_outputs_become_their_tables() -> None:
    steatosis = evaluation_report("steatosis", {
        "weights": "s@2", "data": {"fingerprint": "f", "images": 2, "droplets": 10},
        "weak": {"ap": 0.5, "precision": 0.6, "recall": 0.7, "f1": 0.65, "jaccard": 0.8},
        "network": {"ap": 0.9, "precision": 0.9, "recall": 0.8, "f1": 0.85, "jaccard": 0.85}, "f1_gain": 0.2,
        "protocol": "IoU >= 0.5"})
    (table,) = steatosis.tables
    assert [row["droplets from"] for row in table.rows] == ["weak labels (thesis, unscreened)", "network"]
    assert table.rows[1]["F1"] == 0.85 and steatosis.images == 2
    assert "IoU >= 0.5" in steatosis.notes and any("+0.200" in note for note in steatosis.notes)

    ood = evaluation_report("ood", {
        "detector": "tend-hand@1", "acquisition_statistics": True, "data": {"fingerprint": "g", "images": 30},
        "setting": "one-vs-rest", "id_classes": ["hand"], "auroc": 0.75, "fpr_at_95_tpr": float("nan"),
        "n_id": 10, "n_ood": 20, "class_ood_rate": {"elbow": 0.5, "hand": 0.1},
        "transform_accuracy": {"noise": 1.0, "random_cut": 0.5, "mine": 0.1},
        "shift_type_rate": {"blur": {"images": 4, "rate": 0.25}}, "notes": []})
    summary = {row["figure"]: row["value"] for row in ood.tables[0].rows}
    assert summary["AUROC"] == 0.75 and summary["FPR at 95 % TPR"] is None and summary["other images"] == 20
    assert [t.title.split(" (")[0] for t in ood.tables[1:]] == [
        "Share flagged per class", "Table 4.5 transforms: share detected at the stored threshold", "Per shift type"]
    assert ood.tables[3].rows == ({"shift type": "blur", "images": 4.0, "rate": 0.25},)
    # the thesis's transform names in plain words, the name kept in brackets; a class keeps its own name
    assert [row["transform"] for row in ood.tables[2].rows] == [
        "strong added noise (noise)", "a block of the anatomy blacked out (random_cut)", "mine"]
    assert [row["class"] for row in ood.tables[1].rows] == ["elbow", "hand"]
    assert any("acquisition statistics" in note for note in ood.notes)

    retrieval = evaluation_report("retrieval", {
        "models": ["oscars@1"], "data": {"fingerprint": "h", "n": 28},
        "tables": [{"title": "P@K", "rows": [{"method": "OSCARS", "precision@1": 0.5, "precision@10": None}],
                    "notes": ["leave-one-out"]}]})
    (table,) = retrieval.tables
    assert table.columns == ("method", "precision@1", "precision@10") and table.rows[0]["precision@10"] is None
    assert retrieval.images == 28 and retrieval.model == "oscars@1" and table.notes == ("leave-one-out",)
    assert math.isclose(table.rows[0]["precision@1"], 0.5)


def test_every_bac_and_steatosis_column_says_how_it_is_computed() -> None:
    bac = evaluation_report("bac", {"weights": "m v1", "images": 3, "chosen": 0.5,
                                    "sweep": [_sweep_row(0.5, 0.4, 0.3, True)]}).tables[0]
    assert set(bac.columns) <= set(bac.help) and "mm²" in bac.help["median false AM, BAC-free views (mm²)"]
    steatosis = evaluation_report("steatosis", {"weights": "s@2", "network": {"f1": 0.8}}).tables[0]
    assert set(steatosis.columns) - {"droplets from"} <= set(steatosis.help)


def test_a_bac_models_own_cutoff_comes_from_its_manifest() -> None:
    from medlim.core.evaluations import model_cutoff
    from medlim.core.weights import Registries

    registries = Registries.load()
    default = registries.find("scunet-bac-dr@2")
    assert model_cutoff("bac", "scunet-bac-dr@2", registries=registries) == default.thresholds["output"] == 0.8
    assert model_cutoff("ood", "tend-humerus", registries=registries) is None
    assert model_cutoff("bac", "no-such-model@9", registries=registries) is None

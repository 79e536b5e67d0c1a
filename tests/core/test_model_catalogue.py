"""What the Models page shows (medlim.core.model_catalogue): tasks, model tables, dataset reports, curves."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medlim.core.model_catalogue import (
    TASKS,
    EpochPoint,
    TrainingCurve,
    inspect_dataset,
    model_catalogue,
    task_info,
)
from medlim.core.weights import Registries, Registry, save_weights
from medlim.errors import InputError, ParameterError

# 2024-03-01 12:00:00 UTC
WRITTEN = 1709294400


def _save(registry: Registry, name: str, version: str, *, metrics: dict, data: dict | None = None,
          default: bool = False, task: str = "ood-detection") -> None:
    import torch

    fields = {"name": name, "version": version, "task": task, "architecture": "tend", "preset": "ood-grey",
              "input_contract": {"channels": 1, "size": [64, 64]}, "metrics": metrics, "default": default,
              "description": f"{name} for tests"}
    if data is not None:
        fields["data"] = data
    entry = save_weights(registry, fields, {"w": torch.zeros(1)}, check_architecture=False)
    os.utime(entry.path, (WRITTEN, WRITTEN))


@pytest.fixture
def registries(tmp_path: Path) -> Registries:
    shipped, user = Registry(tmp_path / "shipped"), Registry(tmp_path / "user")
    _save(shipped, "tend-hand", "1", default=True,
          metrics={"heldout": {"auroc": 0.75, "fpr_at_95_tpr": 0.5}, "validation": "a description, not figures"})
    _save(shipped, "scunet-bac", "1", task="bac-segmentation", metrics={"whole_image_dice": 0.7})
    _save(user, "tend-elbow", "1", data={"source": "user", "fingerprint": {"id": "0123456789abcdef"}},
          metrics={"validation": {"auroc": 0.875, "fpr_at_95_tpr": 0.25}, "n_train": 14})
    return Registries(Registry.load(tmp_path / "shipped"), Registry.load(tmp_path / "user"))


def test_every_data_check_task_has_one_entry_and_trains_from_the_page() -> None:
    assert [t.key for t in TASKS] == ["bac", "steatosis", "ood", "oscars", "pms"]
    # Issue 12: every task trains from the Models page (as a job, issue 15).
    assert [t.key for t in TASKS if t.trains_from_page] == ["bac", "steatosis", "ood", "oscars", "pms"]
    assert task_info("ood-detection") is task_info("ood")
    assert task_info("ood").command.startswith("medlim train tend|cvad --data DIR")
    assert task_info("bac").command == "medlim train scunet --data DIR --max-minutes M"
    assert task_info("steatosis").command == "medlim train steatosis --data DIR --max-minutes M"
    assert task_info("oscars").command.startswith("medlim train oscars --data EXTERNAL --internal INTERNAL")
    assert task_info("pms").command.startswith("medlim train pms --data DIR")
    with pytest.raises(ParameterError, match="unknown task 'nuclei'; known: bac, steatosis, ood, oscars, pms"):
        task_info("nuclei")


def test_the_catalogue_lists_both_registries_with_source_default_date_dataset_and_figures(
    registries: Registries,
) -> None:
    catalogue = model_catalogue("ood", registries=registries)
    assert catalogue.columns == ("validation AUROC", "validation FPR@95%TPR", "held-out AUROC")
    assert [r.label for r in catalogue.rows] == ["tend-elbow@1", "tend-hand@1"]  # the BAC model is another task's
    user, shipped = catalogue.rows
    assert (user.source, user.default, user.date, user.fingerprint) == ("user", False, "2024-03-01", "0123456789abcdef")
    assert [(m.column, m.value) for m in user.metrics] == [
        ("validation AUROC", 0.875), ("validation FPR@95%TPR", 0.25), ("held-out AUROC", None)]
    # a shipped file's date is its checkout's: not shown; "validation" holding text gives no figure
    assert (shipped.source, shipped.default, shipped.date, shipped.fingerprint) == ("shipped", True, None, None)
    assert [m.value for m in shipped.metrics] == [None, None, 0.75]
    assert (catalogue.default, catalogue.user_default) == ("tend-hand@1", False)
    assert catalogue.lines() == [
        ("MODEL         SOURCE   DEFAULT  DATE        DATASET           validation AUROC  validation FPR@95%TPR  "
         "held-out AUROC"),
        "tend-elbow@1  user     -        2024-03-01  0123456789abcdef  0.875             0.250                  -",
        "tend-hand@1   shipped  default  -           -                 -                 -                      0.750",
    ]
    document = catalogue.to_json()
    assert document["models"][0]["metrics"] == {"validation AUROC": 0.875, "validation FPR@95%TPR": 0.25,
                                                "held-out AUROC": None}
    json.dumps(document, allow_nan=False)


def test_a_user_default_is_marked_and_can_be_given_back(registries: Registries) -> None:
    registries.set_default("tend-elbow@1", task="ood-detection")
    catalogue = model_catalogue("ood", registries=registries.reload())
    assert (catalogue.default, catalogue.user_default) == ("tend-elbow@1", True)
    assert [r.default for r in catalogue.rows] == [True, False]
    registries.clear_default("ood-detection")
    assert model_catalogue("ood", registries=registries.reload()).default == "tend-hand@1"


def test_nested_figures_are_found_by_their_path(tmp_path: Path) -> None:
    shipped = Registry(tmp_path / "shipped")
    _save(shipped, "pms-chest", "3", task="multilabel-retrieval",
          metrics={"heldout": {"weighted": {"full_precision@1": 0.3125, "full_hit_rate@5": 0.625}}})
    catalogue = model_catalogue("pms", registries=Registries(Registry.load(tmp_path / "shipped"),
                                                             Registry(tmp_path / "none")))
    assert [(m.column, m.value) for m in catalogue.rows[0].metrics] == [
        ("held-out precision@1 (weighted)", 0.3125), ("held-out hit rate@5 (weighted)", 0.625)]
    # a fine-tuned SCU-Net keeps its closing whole-view evaluation of the validation views under "whole_view"
    _save(shipped, "scunet-site", "1", task="bac-segmentation",
          metrics={"validation": {"score": 0.2}, "whole_view": {"views": 16, "dice": 0.269}})
    catalogue = model_catalogue("bac", registries=Registries(Registry.load(tmp_path / "shipped"),
                                                             Registry(tmp_path / "none")))
    assert [(m.column, m.value) for m in catalogue.rows[0].metrics][0] == ("validation whole-view Dice", 0.269)


def _class_folders(root: Path, per_class: int) -> Path:
    from medlim.phantoms.radiograph import generate_radiograph, write_radiograph

    for part in ("hand", "elbow", "shoulder"):
        for k in range(per_class):
            write_radiograph(generate_radiograph(seed=3, index=k, body_part=part, size=32), root, stem=f"{part}_{k}")
    return root


def test_a_dataset_report_says_what_data_check_says(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medlim.cli import main

    folder = _class_folders(tmp_path / "clinic", per_class=4)
    (folder / "hand" / "broken.png").write_bytes(b"not a png")
    seen = []
    report = inspect_dataset(folder, "ood", progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (13, 13)
    assert not report.ok and report.classes == ("elbow", "hand", "shoulder")
    rows = dict(report.summary_rows())
    assert rows["layout"] == "class_folders (checked for the ood task)"
    assert rows["images"] == "13 (12 decoded)"
    assert rows["images per class"] == "elbow: 4, hand: 5, shoulder: 4"
    assert rows["size (px)"] == "height 32–32 (median 32), width 32–32 (median 32)"
    assert rows["pixel spacing"] == "none in the file (12 images)"
    # 20 % of 13 images, stratified by class: 1 per class held out
    assert rows["validation split"] == "10 training / 3 validation images, 20% held out by image, seed 0"
    assert rows["fingerprint"] == report.fingerprint.id
    problems = report.problem_rows()
    assert [(p.kind, p.where) for p in problems] == [("unreadable", "hand/broken.png"),
                                                     ("too_few_images", "the whole dataset")]
    assert problems[0].what == "a file exists but is not an image the reader can decode"
    # the command line prints the same document, and the same summary lines in its text form
    assert main(["data", "check", str(folder), "--task", "ood", "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == report.to_json()
    assert main(["data", "check", str(folder), "--task", "ood"]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[:len(rows)] == [f"{what}: {value}" for what, value in report.summary_rows()]


def test_a_missing_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        inspect_dataset(tmp_path / "absent", "ood")


def test_the_curve_reads_epoch_and_validation_lines_of_the_harness() -> None:
    lines = [
        "checking the training folder: 5/54 images",
        "autoencoder epoch 1/200: mse 0.01250",
        "AE baseline validation after epoch 1: auroc 0.5000 (best so far)",
        "autoencoder epoch 2/200: mse 0.00625",
        "AE baseline validation after epoch 2: auroc nan",  # not a number: left out
        "AE baseline: kept epoch 1 (auroc 0.5000); stopped: time budget",
        "tend epoch 1/300: bce 0.2407, g_in 107.1041, g_out 68.1967",
        "TEND validation after epoch 1: auroc 0.9444",
    ]
    curve = TrainingCurve()
    for line in lines:
        curve = curve.with_line(line)
    assert curve.points == (
        EpochPoint("autoencoder", 1, "loss", "mse", 0.0125, planned=200),
        EpochPoint("autoencoder", 1, "validation", "auroc", 0.5),
        EpochPoint("autoencoder", 2, "loss", "mse", 0.00625, planned=200),
        EpochPoint("tend", 1, "loss", "bce", 0.2407, planned=300),
        EpochPoint("tend", 1, "validation", "auroc", 0.9444),
    )
    assert curve.stages == ("autoencoder", "tend")
    assert curve.series("autoencoder", "loss") == ((1, 2), (0.0125, 0.00625), "mse")
    assert curve.series("tend", "validation") == ((1,), (0.9444,), "auroc")
    assert curve.series("cvad generator", "loss") == ((), (), "")
    assert curve.latest() == EpochPoint("tend", 1, "loss", "bce", 0.2407, planned=300)
    assert TrainingCurve().latest() is None

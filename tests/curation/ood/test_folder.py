"""TEND and CVAD trained and evaluated on a user's folder (issue 12), end to end through the command line."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medlim.cli import main
from medlim.core.weights import Registries, Registry
from medlim.settings import get_settings

ROOT = Path(__file__).resolve().parents[3]
TINY_TEND = ["--width", "2", "--ae-epochs", "1", "--epochs", "2", "--warmup-epochs", "1", "--batch-size", "4"]
TINY_CVAD = ["--width", "2", "--latent", "16", "--epochs", "1", "--disc-epochs", "1", "--batch-size", "4"]


def _result(capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    captured = capsys.readouterr()
    return json.loads(captured.out.splitlines()[-1]), captured.err


def _fingerprint(folder: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["data", "check", str(folder), "--task", "ood", "--json"]) in (0, 1)  # 1: too small to split
    return json.loads(capsys.readouterr().out)["fingerprint"]["id"]


def test_tend_trains_on_a_folder_and_registers_tend_and_its_baseline(
    shapes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped_before = (ROOT / "weights" / "manifest.json").read_bytes()
    fingerprint = _fingerprint(shapes, capsys)
    assert main(["train", "tend", "--data", str(shapes), "--id-class", "disc", *TINY_TEND]) == 0
    result, progress = _result(capsys)
    assert result["registered"] == [{"name": "ae-disc", "version": "1"}, {"name": "tend-disc", "version": "1"}]
    assert set(result["validation"]) == {"ae-disc", "tend-disc"}
    tend = result["validation"]["tend-disc"]
    # 18 per class, 4 per class held out: 4 ID validation images against the 36 of the other two classes
    assert (tend["n_id"], tend["n_ood"]) == (4, 36) and 0.0 <= tend["auroc"] <= 1.0
    assert tend["best_epoch"] == 2 and tend["validations"] == 1  # validated only after the 1 warm-up epoch
    assert result["data"] == {"fingerprint": fingerprint, "split": {
        "by": "image", "seed": 0, "fraction": 0.2, "train_images": 42, "val_images": 12, "train_patients": None,
        "val_patients": None}}
    assert "validation: 4 ID images vs 36 images of the other classes (square, stripes)" in progress

    models = get_settings().models_dir
    text = (models / "manifest.json").read_text()
    assert str(shapes) not in text and "disc_0" not in text and "shapes" not in text
    entry = Registry.load(models).get("tend-disc")
    assert entry.provenance.command == (f"medlim train tend --data {fingerprint} --id-class disc --width 2 "
                                        "--batch-size 4 --ae-epochs 1 --epochs 2 --warmup-epochs 1")
    assert entry.data["source"] == "user" and entry.data["fingerprint"]["id"] == fingerprint
    assert entry.data["fingerprint"]["classes"] == {"disc": 18, "square": 18, "stripes": 18}
    assert entry.plan["settings"]["input_size"] == 64  # 32 px images: TEND's smallest input, 64
    assert entry.plan["overridden"] == ["ae_epochs", "batch_size", "tend_epochs", "warmup_epochs", "width"]
    assert entry.thresholds["score"] == pytest.approx(tend["threshold"])
    assert entry.metrics["validation"]["auroc"] == tend["auroc"]
    # the acquisition statistics (on by default): fitted on the 14 ID training images, calibrated on the 4 + 36
    # validation images, stored in the entry; its fused threshold is its own, the detector's stays in thresholds
    stored = entry.params["acquisition"]
    assert stored["metrics"]["n_train"] == 14 and stored["metrics"]["n_validation_ood"] == 36
    assert tend["acquisition"] == stored["metrics"] and stored["size"] == 256
    assert "acquisition statistics: reading 14 ID training images" in progress
    assert (ROOT / "weights" / "manifest.json").read_bytes() == shipped_before

    assert main(["ood", "evaluate", "--detector", "tend-disc@1", "--data", str(shapes), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["setting"], report["n_id"], report["n_ood"]) == ("one-vs-rest", 18, 36)
    assert report["acquisition_statistics"] is True and report["stored_threshold"] == pytest.approx(stored["threshold"])
    assert set(report["class_ood_rate"]) == {"disc", "square", "stripes"} and "shift_type_rate" not in report
    assert main(["ood", "evaluate", "--detector", "ae-disc", "--data", str(shapes)]) == 0
    assert capsys.readouterr().out.startswith("ae-disc@1 + acquisition statistics: one-vs-rest, ID = disc (18 ID / 36 "
                                              "OOD images)")
    assert main(["ood", "score", "--detector", "tend-disc:1", "--jsonl", str(shapes / "square")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 18 and all(row["threshold"] == pytest.approx(stored["threshold"]) for row in rows)
    assert {"p", "d", "stats"} <= set(rows[0])
    assert main(["ood", "score", "--detector", "tend-disc:1", "--jsonl", "--stats", "off", str(shapes / "square")]) == 0
    alone = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "stats" not in alone[0] and alone[0]["threshold"] == pytest.approx(tend["threshold"])

    # a second run of the same command: the next free versions, nothing replaced
    assert main(["train", "tend", "--data", str(shapes), "--id-class", "disc", *TINY_TEND]) == 0
    assert _result(capsys)[0]["registered"] == [{"name": "ae-disc", "version": "2"},
                                                {"name": "tend-disc", "version": "2"}]


def test_cvad_plans_32_px_and_calibrates_its_range(shapes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "cvad", "--data", str(shapes), "--id-class", "!disc", "--name", "cvad-shapes",
                 "--stats", "off", *TINY_CVAD]) == 0
    result, progress = _result(capsys)
    assert result["registered"] == [{"name": "cvad-shapes", "version": "1"}]
    assert "CVAD generator validation after epoch 1" in progress and "CVAD discriminator" in progress
    entry = Registries.load().find("cvad-shapes")
    assert entry.input_contract.size == (32, 32)  # CVAD's step is 32: the 32 px images are not upscaled
    assert entry.params["id_classes"] == ["square", "stripes"] and entry.params["rec_max"] > entry.params["rec_min"]
    # 8 ID validation images (4 square + 4 stripes) against the 18 discs
    assert (result["validation"]["cvad-shapes"]["n_id"], result["validation"]["cvad-shapes"]["n_ood"]) == (8, 18)
    assert "--id-class '!disc' --name cvad-shapes" in entry.provenance.command
    assert "--stats off" in entry.provenance.command and "acquisition" not in entry.params  # the thesis's detector
    # issue 12/13: the "unlike my training data" record, fitted on the ID training images at the 32 px input, its
    # limit chosen with the 8 ID validation images (the discs are not in-distribution, so they do not choose it)
    assert entry.familiarity_path is not None and entry.familiarity_path.is_file()
    assert entry.familiarity["command"] == entry.provenance.command
    assert result["familiarity"]["cvad-shapes"]["n_validation"] == 8
    assert result["familiarity"]["cvad-shapes"]["n_calibration"] == entry.metrics["n_train"]


def test_a_budget_too_small_to_validate_registers_nothing(shapes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "cvad", "--data", str(shapes), "--id-class", "disc", "--max-minutes", "0.0001",
                 *TINY_CVAD]) == 2
    error = capsys.readouterr().err
    assert "never validated" in error and "0.0001 min (--max-minutes)" in error and "Nothing was registered" in error
    assert not (get_settings().models_dir / "manifest.json").exists()


def test_problems_are_listed_and_skip_bad_leaves_out_the_bad_rows(
    shapes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (shapes / "disc" / "broken.png").write_bytes(b"not a png")
    shutil.copy(shapes / "square" / "square_00.png", shapes / "square" / "copy.png")
    assert main(["train", "cvad", "--data", str(shapes), "--id-class", "disc", *TINY_CVAD]) == 2
    error = capsys.readouterr().err
    assert "has 2 problem(s)" in error and "unreadable [disc/broken.png]" in error
    assert "duplicate_image [square/" in error and "--skip-bad" in error
    assert not (get_settings().models_dir / "manifest.json").exists()

    assert main(["train", "cvad", "--data", str(shapes), "--id-class", "disc", "--skip-bad", *TINY_CVAD]) == 0
    result, progress = _result(capsys)
    assert sorted(p["kind"] for p in result["data"]["dropped"]) == ["duplicate_image", "unreadable"]
    assert "--skip-bad: left out 2 bad entries of the training folder, 54 images kept:" in progress
    entry = Registries.load().find("cvad-disc")
    assert entry.data["dropped"] == 2 and "--skip-bad" in entry.provenance.command
    assert "broken.png" not in (get_settings().models_dir / "manifest.json").read_text()


def test_a_folder_of_one_class_is_validated_against_generated_distortions(
    tmp_path: Path, make_shapes, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_shapes(tmp_path / "discs", classes=("disc",), per_class=48)  # 20 % = 10 validation images
    assert main(["train", "cvad", "--data", str(folder), "--id-class", "disc", *TINY_CVAD]) == 0
    result, progress = _result(capsys)
    assert "validation: 10 ID images vs 10 generated distortions of the ID validation images" in progress
    assert (result["validation"]["cvad-disc"]["n_id"], result["validation"]["cvad-disc"]["n_ood"]) == (10, 10)


def test_a_plain_folder_is_the_one_class_id_class_names(
    tmp_path: Path, make_shapes, capsys: pytest.CaptureFixture[str]
) -> None:
    classed = make_shapes(tmp_path / "discs", classes=("disc",), per_class=48)
    plain = tmp_path / "my hands"  # the same images straight in the folder, no class sub-folder
    shutil.copytree(classed / "disc", plain)
    assert main(["data", "check", str(plain), "--task", "ood"]) == 0
    capsys.readouterr()
    assert main(["train", "cvad", "--data", str(plain), "--id-class", "hand", *TINY_CVAD]) == 0
    result, progress = _result(capsys)
    assert result["registered"] == [{"name": "cvad-hand", "version": "1"}]
    assert "validation: 10 ID images vs 10 generated distortions of the ID validation images" in progress
    assert Registries.load().find("cvad-hand").params["id_classes"] == ["hand"]
    for wrong in ("hand,elbow", "!hand"):  # a folder without classes is one class
        assert main(["train", "cvad", "--data", str(plain), "--id-class", wrong, *TINY_CVAD]) == 2
        assert "a folder without classes (a plain folder of images) is one class" in capsys.readouterr().err


def test_a_validation_folder_and_a_heldout_folder(tmp_path: Path, make_shapes,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    train = make_shapes(tmp_path / "train", per_class=12, seed=1)
    val = make_shapes(tmp_path / "val", per_class=4, seed=2)
    held = make_shapes(tmp_path / "held", per_class=3, seed=3)
    val_id, held_id = _fingerprint(val, capsys), _fingerprint(held, capsys)
    assert main(["train", "cvad", "--data", str(train), "--val", str(val), "--heldout", str(held), "--id-class",
                 "disc", *TINY_CVAD]) == 0
    result, _ = _result(capsys)
    # the validation folder's 4 discs against its 8 other images
    assert (result["validation"]["cvad-disc"]["n_id"], result["validation"]["cvad-disc"]["n_ood"]) == (4, 8)
    assert result["data"]["split"]["by"] == "folder" and result["data"]["split"]["val_images"] == 12
    assert result["heldout"]["cvad-disc"]["n_id"] == 3 and result["heldout"]["cvad-disc"]["n_ood"] == 6
    entry = Registries.load().find("cvad-disc")
    assert f"--val {val_id}" in entry.provenance.command and f"--heldout {held_id}" in entry.provenance.command
    assert "heldout" in entry.metrics and str(tmp_path) not in json.dumps(entry.to_dict())


def test_unknown_id_class_and_taken_version_fail_before_training(
    shapes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "tend", "--data", str(shapes), "--id-class", "hand"]) == 2
    assert "its classes: disc, square, stripes" in capsys.readouterr().err
    assert main(["train", "tend", "--data", str(shapes), "--id-class", "disc", "--name", "tend-humerus",
                 "--version", "3"]) == 2
    assert "tend-humerus@3 already exists in the shipped registry" in capsys.readouterr().err
    assert main(["train", "tend", "--data", str(shapes), "--id-class", "disc", "--n-train", "5"]) == 2
    assert "--n-train only apply to phantoms" in capsys.readouterr().err


def test_evaluate_reports_each_shift_type(ood_registry: Path, shapes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A manifest with a shift_type column: clean rows give the one-vs-rest table, shifted rows their own rates."""
    from medlim.curation.ood.data import read_inputs
    from medlim.curation.ood.scoring import load_detector

    rows = [{"file": f"disc/disc_{k:02d}.png", "class": "hand", "shift_type": ""} for k in range(6)]
    rows += [{"file": f"square/square_{k:02d}.png", "class": "elbow", "shift_type": ""} for k in range(6)]
    rows += [{"file": f"stripes/stripes_{k:02d}.png", "class": "hand", "shift_type": "noise" if k < 3 else "blur"}
             for k in range(5)]
    with (shapes / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "class", "shift_type"])
        writer.writeheader()
        writer.writerows(rows)
    args = ["ood", "evaluate", "--detector", "tend-test", "--data", str(shapes), "--weights-dir", str(ood_registry)]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["n_id"], report["n_ood"]) == (6, 6)
    detector = load_detector("tend-test", registry=Registry.load(ood_registry))
    noise = detector.score(read_inputs([shapes / r["file"] for r in rows[12:15]], 64)).score
    assert {k: v for k, v in report["shift_type_rate"]["noise"].items() if k != "auroc"} == {
        "images": 3, "detected": float(np.mean(noise >= 0.3)),
        "detected_gmean": float(np.mean(noise >= report["gmean_threshold"]))}
    assert 0.0 <= report["shift_type_rate"]["noise"]["auroc"] <= 1.0  # against the 6 ID (hand) images
    assert report["shift_types"]["rows"][0]["detector"] == "tend-test@1"  # side by side with cvad-test, ae-test
    assert report["shift_type_rate"]["blur"]["images"] == 2
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "ID images with a shift type, share detected and AUROC" in text and "noise" in text

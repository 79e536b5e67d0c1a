"""SCU-Net fine-tuned on a user's annotated views (issue 12): plan, crops, augmentation, burden figures, end to end."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from medlim.cli import main
from medlim.errors import ParameterError
from medlim.mammography.evaluate import ImageEvaluation, evaluation_table_lines, summarise
from medlim.mammography.plan import AugmentationPolicy, PatchCounts, plan_scunet
from medlim.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]


def write_bac_folder(root: Path, *, seed: int, views: int = 10, patients: int = 5) -> Path:
    """``views`` small phantom mammograms (the ``small`` size scaled by 0.625 to 640×520: each side at least one
    512 px patch, so that ``medlim bac quantify`` takes them too) with their BAC masks as PNG, and
    ``manifest.csv`` (image,mask,patient); about a third of the phantom patients have no BAC."""
    import cv2

    from medlim.phantoms.base import save_png
    from medlim.phantoms.mammogram import generate_mammogram

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(views):
        phantom = generate_mammogram(seed=seed, index=index, size="small", bac_fraction=0.7)
        image = np.clip(np.rint(phantom.image * 255.0), 0, 255).astype(np.uint8)
        image = cv2.resize(image, (520, 640), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(phantom.bac_mask.astype(np.float32), (520, 640), interpolation=cv2.INTER_AREA) > 0.25
        save_png(root / f"view{index}.png", image)
        save_png(root / f"view{index}_bac.png", mask)
        rows.append({"image": f"view{index}.png", "mask": f"view{index}_bac.png", "patient": f"p{index % patients}"})
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "mask", "patient"])
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def bac_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A training and a validation folder of 10 views each (5 patients each; the check needs 10 images a part)."""
    root = tmp_path_factory.mktemp("bac")
    return write_bac_folder(root / "train", seed=3), write_bac_folder(root / "val", seed=4)


def _counts(positives: int = 30) -> PatchCounts:
    return PatchCounts(train_views=20, train_bac_free_views=5, positives=positives, negatives=80, val_views=5,
                       val_bac_free_views=1, val_positives=8, val_negatives=20)


def test_plan_follows_the_device_and_the_starting_point() -> None:
    cpu = plan_scunet(device="cpu", fine_tune=True, preset="thesis-unclipped", skip="black", counts=_counts())
    # 30 BAC patches + 1.5 × as many BAC-free, 4 crops a step: ceil(75 / 4) = 19 steps; ceil(900 / 19) = 48 epochs
    assert (cpu.patch_size, cpu.batch_size, cpu.steps_per_epoch, cpu.epochs) == (256, 4, 19, 48)
    assert cpu.learning_rate == 3e-4 and cpu.warmup_steps == 0 and cpu.val_crops == 64 and cpu.threads >= 1
    assert (cpu.negative_ratio, cpu.hard_negative_share, cpu.whole_view_views) == (1.5, 0.5, 8)
    assert cpu.patience == 14  # ceil(250 steps / 19 an epoch)
    fresh = plan_scunet(device="cpu", fine_tune=False, preset="thesis-unclipped", skip=True, counts=_counts())
    assert fresh.learning_rate == 1e-3 and fresh.warmup_steps == 19 and fresh.epochs == 100  # ceil(2000/19) capped
    gpu = plan_scunet(device="cuda", fine_tune=False, preset="thesis", skip=True, counts=_counts(positives=2))
    # ceil(4 / 16) = 1 step, raised to 5; 12000 / 5 = 2400 epochs, capped at 100
    assert (gpu.patch_size, gpu.batch_size, gpu.steps_per_epoch, gpu.epochs, gpu.threads) == (512, 16, 5, 100, None)
    assert gpu.patience == 50  # 250 steps of 5
    given = plan_scunet(device="cpu", fine_tune=True, preset="thesis", skip=True, counts=_counts(),
                        overrides={"patch_size": 128, "epochs": 3}, given=("skip",))
    assert (given.patch_size, given.epochs, given.patience) == (128, 3, 14)
    record = given.plan.to_json()
    assert record["overridden"] == ["epochs", "patch_size", "skip"]
    assert record["reasons"]["epochs"].startswith("given on the command line (planned: 48)")
    assert record["settings"]["augmentation"]["gamma"] == [0.7, 1.5]
    for reason in ("resampling", "class_balance", "schedule", "early_stopping", "augmentation", "normalisation"):
        assert reason in record["reasons"], reason
    with pytest.raises(ParameterError, match="--patch-size"):
        plan_scunet(device="cpu", fine_tune=True, preset="thesis", skip=True, counts=_counts(),
                    overrides={"patch_size": 100})
    steady = plan_scunet(device="cpu", fine_tune=True, preset="thesis", skip=True, counts=_counts(),
                         overrides={"patience": 30, "whole_view_views": 16})
    assert (steady.patience, steady.whole_view_views) == (30, 16)  # given, not recomputed from the steps
    assert steady.plan.to_json()["reasons"]["patience"].startswith("given on the command line")
    with pytest.raises(ParameterError, match="--patience"):
        plan_scunet(device="cpu", fine_tune=True, preset="thesis", skip=True, counts=_counts(),
                    overrides={"patience": 0})
    assert cpu.loss == "dice" and cpu.plan.to_json()["settings"]["loss"] == "dice"
    bce = plan_scunet(device="cpu", fine_tune=True, preset="thesis", skip=True, counts=_counts(),
                      overrides={"loss": "dice+bce"})
    assert bce.loss == "dice+bce" and bce.plan.to_json()["reasons"]["loss"].startswith("given on the command line")
    with pytest.raises(ParameterError, match="--loss"):
        plan_scunet(device="cpu", fine_tune=True, preset="thesis", skip=True, counts=_counts(),
                    overrides={"loss": "focal"})


def test_crops_hold_the_calcification_and_augmentation_keeps_background_black() -> None:
    import torch

    from medlim.mammography.train import augment_patches, sample_crops

    grey = np.full((2, 512, 512), 90, np.uint8)
    grey[1, :, :300] = 0  # a BAC-free patch whose breast lies on the right
    mask = np.zeros((2, 512, 512), bool)
    mask[0, 500, 7] = True  # one BAC pixel near a corner
    for seed in range(5):
        crops, masks = sample_crops(grey, mask, size=128, rng=np.random.default_rng(seed))
        assert crops.shape == (2, 128, 128) and masks[0].sum() == 1 and masks[1].sum() == 0
    # the BAC-free crop is the fullest of 4 draws: with 4 tries it is never worse than the emptiest position
    full, _ = sample_crops(grey[1:], mask[1:], size=128, rng=np.random.default_rng(0), tries=8)
    assert np.count_nonzero(full) >= 128 * 100

    image = torch.zeros((1, 1, 32, 32))
    image[..., 8:24, 8:24] = 0.5  # breast in the middle, black around it
    target = torch.zeros((1, 1, 32, 32))
    target[..., 10, 20] = 1.0
    always = AugmentationPolicy(flip=1.0, rotate=0.0, contrast_p=1.0, gamma_p=1.0, noise_p=1.0, blur_p=1.0,
                                resolution_p=1.0)
    out, moved = augment_patches(image, target, generator=torch.Generator().manual_seed(0), policy=always)
    # both flips: pixel (10, 20) goes to (21, 11), and the image goes with it
    assert moved[0, 0, 21, 11] == 1.0 and moved.sum() == 1.0
    assert torch.equal(out[0, 0] > 0, image.flip(-1).flip(-2)[0, 0] > 0)  # black stays black, breast stays > 0


def _evaluation(name: str, tam: tuple[float, float], *, truth_px: int, am: float,
                area: float | None, flagged: bool | None = None) -> ImageEvaluation:
    readouts = {"pm": am, "am": am, "sim": 0.0, "tam_x": tam[0], "tsim_x": 0.0}
    truth = {"pm": float(truth_px), "am": float(truth_px), "sim": 0.0, "tam_x": tam[1], "tsim_x": 0.0}
    metrics = {"recall": 1.0, "precision": 1.0, "accuracy": 1.0, "f1": 1.0, "jaccard": 1.0}
    counts = (truth_px, int(am) - truth_px if am >= truth_px else 0, 0, 100)
    return ImageEvaluation(name=name, whole=metrics, patches=(), predicted=readouts, truth=truth, counts=counts,
                           tam_100=tam, pixel_area_mm2=area, unlike_training=flagged)


def test_burden_figures_hand_computed() -> None:
    views = [
        _evaluation("a", (120.0, 100.0), truth_px=100, am=130, area=0.01, flagged=False),
        _evaluation("b", (80.0, 100.0), truth_px=100, am=90, area=0.01, flagged=True),
        _evaluation("free1", (6.0, 0.0), truth_px=0, am=10, area=0.01, flagged=True),  # 10 px × 0.01 mm² = 0.1 mm²
        _evaluation("free2", (0.0, 0.0), truth_px=0, am=30, area=0.04),  # 1.2 mm²
        _evaluation("free3", (0.0, 0.0), truth_px=0, am=50, area=None),  # no spacing: px only
    ]
    summary = summarise(views, threshold=0.5, x=100)
    # (Σ predicted − Σ true) / Σ true = (120 + 80 + 6 − 200) / 200
    assert summary.tam_relative_bias == pytest.approx(0.03)
    assert summary.bac_free_images == 3 and summary.false_am_px_median == 30.0
    assert summary.false_am_mm2_median == pytest.approx(0.65)  # median of 0.1 and 1.2
    assert summary.to_dict()["false_am_mm2_median"] == pytest.approx(0.65)
    # the training-data check scored 3 views (two unchecked: weights without a check) and flagged 2
    assert (summary.unlike_training_checked, summary.unlike_training_flagged) == (3, 2)
    assert "training-data check: 2 of 3 views flagged" in "\n".join(evaluation_table_lines(summary, "head"))
    no_bac = summarise(views[2:], threshold=0.5, x=100)
    assert math.isnan(no_bac.tam_relative_bias)
    with_bac_only = summarise(views[:2], threshold=0.5, x=100)
    assert with_bac_only.bac_free_images == 0 and with_bac_only.false_am_mm2_median is None


def _result(capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    captured = capsys.readouterr()
    return json.loads(captured.out.splitlines()[-1]), captured.err


def _fingerprint(folder: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["data", "check", str(folder), "--task", "bac", "--json"]) in (0, 1)
    return json.loads(capsys.readouterr().out)["fingerprint"]["id"]


TINY = ["--epochs", "1", "--steps-per-epoch", "2", "--patch-size", "64", "--batch-size", "2"]


def test_fine_tunes_on_a_folder_and_registers_a_validated_model(
    bac_folders: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medlim.core.weights import Registries

    train, val = bac_folders
    shipped_before = (ROOT / "weights" / "manifest.json").read_bytes()
    data_id, val_id = _fingerprint(train, capsys), _fingerprint(val, capsys)
    assert main(["train", "scunet", "--data", str(train), "--val", str(val), *TINY]) == 0
    result, progress = _result(capsys)
    name = f"scunet-bac-{data_id[:8]}"
    assert result["registered"] == [{"name": name, "version": "1"}]
    validation = result["validation"][name]
    assert validation["validations"] == 1 and validation["stopped"] == "completed"
    # issue 12: epoch and cut-off chosen on whole validation views (8 of the 10, 4 with BAC and 4 without), the
    # balanced crops' Dice kept beside it
    assert -1 < validation["whole_view_score"] <= 1 and 0.0 <= validation["crop_dice"] <= 1
    assert validation["whole_views"] == 8 and validation["whole_views_bac_free"] == 4
    if validation["whole_view_false_area_within_target"]:  # the Dice, else minus the median false cost (< −½)
        assert validation["whole_view_score"] == pytest.approx(validation["whole_view_dice_bac"], abs=2e-4)
    else:
        assert validation["whole_view_score"] < -0.5
    assert validation["cutoff"] in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)
    assert "validating on 8 whole views (4 with BAC) of 10" in progress
    assert result["init"] == "scunet-bac-dr@3" and result["data"]["fingerprint"] == data_id
    assert result["whole_view"]["views"] == 10 and result["whole_view"]["bac_free_views"] >= 1
    assert "starting from scunet-bac-dr@3" in progress and "preprocessed 10/10 training views" in progress

    text = (get_settings().models_dir / "manifest.json").read_text()
    assert str(train.parent) not in text and "view0" not in text
    entry = Registries.load().find(name)
    assert entry.provenance.command == (f"medlim train scunet --data {data_id} --val {val_id} --init scunet-bac-dr@3 "
                                        "--epochs 1 --batch-size 2 --patch-size 64 --steps-per-epoch 2")
    assert entry.data["fingerprint"]["id"] == data_id and entry.data["split"]["by"] == "folder"
    assert entry.preset == "thesis-unclipped" and entry.params["skip"] == "black"  # the starting weights'
    # the best gate on the same views is kept only when it beats the best plain cut-off (medlim.mammography.gating)
    gate = result["gate_selection"]
    assert gate["plain_score"] == pytest.approx(validation["whole_view_score"], abs=1e-4)
    kept = gate["kept_gate"]
    assert (gate["chosen"] is None) == (kept is None)
    if kept is not None:  # a higher score and no more false area on average than the plain cut-off
        assert kept["whole_view_score"] > gate["plain_score"] and kept["gate"] == gate["chosen"]
        assert kept["whole_view_false_penalty"] <= gate["plain_false_penalty"]
    elif gate["best_gate"]["whole_view_score"] > gate["plain_score"]:
        assert gate["best_gate"]["whole_view_false_penalty"] > gate["plain_false_penalty"]
    assert entry.params.get("gate") == gate["chosen"] == validation.get("gate")  # the Models page's table shows it
    assert entry.thresholds["output"] == (validation["cutoff"] if gate["chosen"] is None else gate["chosen"]["floor"])
    # then a region filter fitted on training views (medlim.mammography.regions), kept only when it beats the same
    # cut-off and gate on the same validation views; recorded either way
    regions = result["region_filter_selection"]
    assert regions == entry.metrics["region_filter_selection"]
    assert regions["training_views"] == 10  # no --max-minutes: every training view (at most 64)
    if "with_filter" in regions:
        assert regions["keep_bac_pixels"] == 0.95
        assert regions["without_filter"]["whole_view_score"] == pytest.approx(
            validation["whole_view_score"] if gate["chosen"] is None else kept["whole_view_score"], abs=1e-4)
        assert regions["kept"] == ("region_filter" in entry.params) == ("region_filter_whole_view_score" in validation)
    else:
        assert "skipped" in regions and "region_filter" not in entry.params
    assert entry.plan["settings"]["patch_size"] == 64 and "patch_size" in entry.plan["overridden"]
    assert entry.metrics["whole_view"]["views"] == 10 and "tam_relative_bias" in entry.metrics["whole_view"]
    # issue 13: PNG views state no spacing, so none is recorded (inference resamples nothing) and `scale` says so
    assert entry.input_contract.pixel_spacing_mm is None and "no pixel spacing" in entry.input_contract.scale
    assert (ROOT / "weights" / "manifest.json").read_bytes() == shipped_before
    # issue 12/13: the model carries its training-data check, fitted on its 10 training views as it saw them, the
    # limit chosen with the 10 validation views, stored beside its weights in the user registry
    assert entry.familiarity_path == get_settings().models_dir / f"{name}-1.familiarity.json"
    assert entry.familiarity_path.is_file() and entry.familiarity["command"] == entry.provenance.command
    assert result["familiarity"]["n_calibration"] == 10 and result["familiarity"]["n_validation"] == 10
    _check_runs_at_inference(name, train, tmp_path, capsys)


def _check_runs_at_inference(name: str, train: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``medlim bac quantify`` with the user's model finds its check as it finds a shipped model's: a training view
    passes it, a radiograph-like picture of the same size is flagged (its numbers still given, with the warning)."""
    from medlim.phantoms.base import save_png
    from medlim.phantoms.radiograph import generate_radiograph

    radiograph = generate_radiograph(seed=1, index=0, size=640)
    save_png(tmp_path / "radiograph.png", np.clip(np.rint(radiograph.image * 255.0), 0, 255).astype(np.uint8))
    save_png(tmp_path / "grey.png", np.full((640, 520), 128, np.uint8))
    assert main(["bac", "quantify", str(train / "view0.png"), str(tmp_path / "radiograph.png"),
                 str(tmp_path / "grey.png"), "--weights", name, "--jsonl", "--no-store"]) == 0
    rows = {Path(row["file"]).name: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    own = rows["view0.png"]
    assert own["weights"] == f"{name} v1" and own["unlike_training"]["flagged"] is False
    assert not any("unlike the images" in warning for warning in own["warnings"])
    for other in (rows["radiograph.png"], rows["grey.png"]):
        assert other["unlike_training"]["flagged"] is True and "tam_x" in other
        assert any("unlike the images the model was trained on" in warning for warning in other["warnings"])


def test_a_budget_too_small_registers_nothing(bac_folders: tuple[Path, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    train, val = bac_folders
    assert main(["train", "scunet", "--data", str(train), "--val", str(val), "--max-minutes", "0.0001", *TINY]) == 2
    error = capsys.readouterr().err
    assert "0.0001 min (--max-minutes)" in error and "Nothing was registered" in error
    assert not (get_settings().models_dir / "manifest.json").exists()


def test_dataset_problems_and_wrong_options_exit_2(
    bac_folders: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, val = bac_folders
    broken = Path(shutil.copytree(train, tmp_path / "broken"))
    (broken / "view3_bac.png").unlink()
    assert main(["train", "scunet", "--data", str(broken), "--val", str(val), *TINY]) == 2
    error = capsys.readouterr().err
    assert "missing_file" in error and "view3_bac.png" in error and "--skip-bad" in error
    assert main(["train", "scunet", "--data", str(train), *TINY]) == 2  # 10 views cannot be split 80/20
    assert "too_few_images" in capsys.readouterr().err
    assert main(["train", "scunet", "--data", str(train), "--val", str(val), "--n", "4"]) == 2
    assert "--n only apply to phantoms" in capsys.readouterr().err
    assert main(["train", "scunet", "--val", str(val)]) == 2
    assert "--val apply to training on your folder" in capsys.readouterr().err
    assert main(["train", "scunet", "--data", str(train), "--val", str(val), "--init", "maskrcnn-steatosis"]) == 2
    assert "--init must name SCU-Net weights" in capsys.readouterr().err
    assert not (get_settings().models_dir / "manifest.json").exists()

"""Mask R-CNN fine-tuned on a user's H&E images with weak labels, no annotation (issue 12; thesis §3.2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlim.cli import main
from medlim.core.training import Deadline
from medlim.errors import ParameterError
from medlim.microscopy.steatosis.folder import plan_steatosis, weak_tiles
from medlim.settings import get_settings

ROOT = Path(__file__).resolve().parents[3]


def write_he_folder(root: Path, *, seed: int, images: int = 10, size: int = 160) -> Path:
    """A plain folder of ``images`` H&E phantoms (PNG, no labels)."""
    from medlim.phantoms.base import save_png
    from medlim.phantoms.he import generate_he

    root.mkdir(parents=True, exist_ok=True)
    for index in range(images):
        save_png(root / f"liver{index}.png", generate_he(seed, index=index, size=(size, size)).image)
    return root


@pytest.fixture(scope="module")
def he_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A training and a validation folder of 10 images each (the check needs 10 images a part)."""
    root = tmp_path_factory.mktemp("he")
    return write_he_folder(root / "train", seed=21), write_he_folder(root / "val", seed=22)


def test_plan_hand_computed() -> None:
    cpu = plan_steatosis(device="cpu", fine_tune=True, tiles=40, weak_masks=900, smallest_side=200,
                         median_side=(1024, 1024), colour=40, images=40)
    # crop: the smallest tile side 200 rounded down to 32 → 192; 300 steps of 25 → 12 epochs
    assert (cpu.crop, cpu.batch_size, cpu.steps_per_epoch, cpu.epochs, cpu.iterations) == (192, 2, 25, 12, 300)
    assert cpu.learning_rate == 2e-4 and cpu.warmup == 0 and cpu.threads == 1
    fresh = plan_steatosis(device="cuda", fine_tune=False, tiles=400, weak_masks=9000, smallest_side=1024,
                           median_side=None, colour=390, images=400, overrides={"iterations": 250})
    # 250 steps of 100 → 3 epochs = 300 steps
    assert (fresh.crop, fresh.batch_size, fresh.epochs, fresh.iterations, fresh.learning_rate) == (256, 4, 3, 300, 5e-4)
    record = fresh.plan.to_json()
    assert record["overridden"] == ["iterations"] and "grey ones are repeated" in record["reasons"]["colour"]
    assert "no annotation" in record["reasons"]["validation"]
    with pytest.raises(ParameterError, match="--crop"):
        plan_steatosis(device="cpu", fine_tune=True, tiles=1, weak_masks=1, smallest_side=64, median_side=None,
                       colour=1, images=1, overrides={"crop": 32})


def test_weak_labels_on_tiles_of_large_images(tmp_path: Path) -> None:
    from medlim.core.datasets import open_dataset

    folder = write_he_folder(tmp_path / "he", seed=5, images=3, size=160)
    dataset = open_dataset(folder, task="steatosis")
    # 160 px with 100 px tiles: tiles start at 0 and 60 on each side → 4 tiles an image; 5 wanted of 3 images:
    # ceil(5 / 3) = 2 an image → 6, the first 5 kept
    tiles, colour = weak_tiles(dataset, range(3), side=100, limit=5, rng=np.random.default_rng(0),
                               deadline=Deadline(None), what="training")
    assert len(tiles) == 5 and colour == 3
    for tile in tiles:
        assert tile.image.shape == (100, 100, 3) and tile.image.dtype == np.uint8
        assert tile.labels.shape == (100, 100) and not (tile.rejected & (tile.labels > 0)).any()


def _result(capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    captured = capsys.readouterr()
    return json.loads(captured.out.splitlines()[-1]), captured.err


TINY = ["--iterations", "2", "--steps-per-epoch", "1", "--crop", "64"]


def test_trains_on_images_without_annotation(he_folders: tuple[Path, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from medlim.core.weights import Registries

    train, val = he_folders
    shipped_before = (ROOT / "weights" / "manifest.json").read_bytes()
    assert main(["train", "steatosis", "--data", str(train), "--val", str(val), "--seed", "3", *TINY]) == 0
    result, progress = _result(capsys)
    data_id = result["data"]["fingerprint"]
    name = f"maskrcnn-steatosis-{data_id[:8]}"
    assert result["registered"] == [{"name": name, "version": "1"}] and result["init"] == "maskrcnn-steatosis@2"
    validation = result["validation"][name]
    assert validation["validations"] == 2 and validation["crops"] == 8 and 0.0 <= validation["f1"] <= 1.0
    assert "weak labels: 10/10 training images" in progress and "starting from maskrcnn-steatosis@2" in progress

    text = (get_settings().models_dir / "manifest.json").read_text()
    assert str(train.parent) not in text and "liver" not in text
    entry = Registries.load().find(name)
    assert entry.provenance.command.startswith(f"medlim train steatosis --data {data_id} --val ")
    assert "--init maskrcnn-steatosis@2 --seed 3 --iterations 2 --steps-per-epoch 1 --crop 64" in \
        entry.provenance.command
    assert entry.data["fingerprint"]["layout"] == "unlabelled" and entry.architecture_kwargs["backbone"] == "resnet10"
    assert "agreement, not accuracy" in entry.metrics["reference"] and entry.plan["settings"]["crop"] == 64
    assert (ROOT / "weights" / "manifest.json").read_bytes() == shipped_before
    # issue 12/13: the model carries its training-data check, fitted on its 10 training tiles (one per 160 px
    # image), the limit chosen with the 8 validation crops, stored beside its weights in the user registry
    assert entry.familiarity_path == get_settings().models_dir / f"{name}-1.familiarity.json"
    assert entry.familiarity_path.is_file() and entry.familiarity["command"] == entry.provenance.command
    assert result["familiarity"]["n_calibration"] == 10 and result["familiarity"]["n_validation"] == 8
    _check_runs_at_inference(name, train, capsys)


def _check_runs_at_inference(name: str, train: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``medlim steatosis segment`` with the user's model: a training image passes its check, a grey picture and a
    radiograph-like picture are flagged (their numbers still given, with the warning)."""
    from medlim.phantoms.base import save_png

    out = train.parent / "segment_out"
    grey = np.full((160, 160, 3), 128, np.uint8)
    ramp = np.repeat(np.linspace(20, 230, 160, dtype=np.uint8)[None, :, None], 160, axis=0)
    radiograph = np.repeat(ramp, 3, axis=2)  # grey, smooth: nothing like stained tissue
    save_png(out / "inputs" / "grey.png", grey)
    save_png(out / "inputs" / "radiograph.png", radiograph)
    assert main(["steatosis", "segment", str(train / "liver0.png"), str(out / "inputs" / "grey.png"),
                 str(out / "inputs" / "radiograph.png"), "--out", str(out), "--weights", name, "--jsonl"]) == 0
    rows = {Path(row["file"]).name: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    own, *others = rows["liver0.png"], rows["grey.png"], rows["radiograph.png"]
    assert own["unlike_training"]["flagged"] is False
    assert not any("unlike the images" in warning for warning in own["warnings"])
    assert own["unlike_training"]["score"] <= own["unlike_training"]["threshold"]
    for row in others:
        assert row["unlike_training"]["flagged"] is True and "detected" in row
        assert any("unlike the images the model was trained on" in warning for warning in row["warnings"])


def test_a_budget_too_small_registers_nothing(he_folders: tuple[Path, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    train, val = he_folders
    assert main(["train", "steatosis", "--data", str(train), "--val", str(val), "--max-minutes", "0.0001",
                 *TINY]) == 2
    error = capsys.readouterr().err
    assert "0.0001 min (--max-minutes)" in error and "Nothing was registered" in error
    assert not (get_settings().models_dir / "manifest.json").exists()


def test_dataset_problems_and_wrong_options_exit_2(he_folders: tuple[Path, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    train, val = he_folders
    broken = write_he_folder(tmp_path / "broken", seed=23)
    (broken / "liver9.png").write_bytes(b"not a png")
    assert main(["train", "steatosis", "--data", str(broken), "--val", str(val), *TINY]) == 2
    error = capsys.readouterr().err
    assert "unreadable [liver9.png]" in error and "--skip-bad" in error
    assert main(["train", "steatosis", "--data", str(train), "--val", str(val), "--backbone", "resnet18"]) == 2
    assert "--backbone applies to a fresh network" in capsys.readouterr().err
    assert main(["train", "steatosis", "--data", str(train), "--tiles", "3"]) == 2
    assert "--tiles only apply to phantoms" in capsys.readouterr().err
    assert main(["train", "steatosis", "--skip-bad"]) == 2
    assert "--skip-bad apply to training on your folder" in capsys.readouterr().err
    assert not (get_settings().models_dir / "manifest.json").exists()

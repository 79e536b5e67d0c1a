"""``medlim train`` conventions shared by every trainer on a user's folder (issue 12): options, stdout, stderr."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlim.cli import main


def _two_classes(root: Path, per_class: int = 25) -> Path:
    """Bright and dark noise, 32×32: 25 per class gives 5 + 5 validation images."""
    import cv2

    rng = np.random.default_rng(0)
    for name, level in (("bright", 0.7), ("dark", 0.3)):
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            image = np.clip(rng.normal(level, 0.1, (32, 32)), 0, 1)
            cv2.imwrite(str(root / name / f"{k}.png"), (image * 255).astype(np.uint8))
    return root


@pytest.mark.parametrize("kind", ["tend", "cvad"])
def test_user_trainers_take_the_common_options(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", kind, "--help"])
    text = capsys.readouterr().out
    for option in ("--data", "--val", "--name", "--version", "--max-minutes", "--skip-bad", "--heldout", "--seed"):
        assert option in text, option


def test_stdout_is_one_json_line_and_progress_goes_to_stderr(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    data = _two_classes(tmp_path / "data")
    code = main(["train", "cvad", "--data", str(data), "--id-class", "bright", "--name", "mine", "--max-minutes", "5",
                 "--width", "2", "--latent", "16", "--epochs", "1", "--disc-epochs", "1"])
    assert code == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1
    result = json.loads(captured.out)
    assert result["registered"] == [{"name": "mine", "version": "1"}]
    assert list(result["validation"]) == ["mine"] and result["validation"]["mine"]["stopped"] == "completed"
    # 5 bright validation images against all 25 dark ones (never trained on)
    assert (result["validation"]["mine"]["n_id"], result["validation"]["mine"]["n_ood"]) == (5, 25)
    assert "registered mine@1" in captured.err and "checking the training folder: 50/50 images" in captured.err


def test_a_dataset_too_small_to_split_is_refused_with_exit_2(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    data = _two_classes(tmp_path / "data", per_class=6)
    assert main(["train", "tend", "--data", str(data), "--id-class", "bright"]) == 2
    error = capsys.readouterr().err
    assert "too_few_images: the validation part has 2 images" in error
    assert "too_few_images: the training part" not in error  # 10 training images are enough


@pytest.mark.parametrize("kind", ["scunet", "steatosis"])
def test_room_trainers_take_the_common_options_and_name_the_init_default(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["train", kind, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--data", "--val", "--name", "--version", "--max-minutes", "--skip-bad", "--init", "--seed"):
        assert option in text, option
    assert "the default is the task's default model" in text and "'none' trains from scratch" in text


class _Recorded:
    """Stands in for a room's ``train_and_register``: keeps the arguments, returns a plausible entry."""

    def __init__(self) -> None:
        self.kwargs: dict = {}

    def __call__(self, **kwargs):
        from types import SimpleNamespace

        self.kwargs = kwargs
        entry = SimpleNamespace(name=kwargs["name"], version=kwargs["version"], file="x.safetensors", metrics={})
        return (entry, None) if "train_spec" in kwargs else entry


def test_the_shipped_scunet_commands_still_mean_what_they_meant(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The recorded commands of scunet-bac v1 and v2 (weights/manifest.json) reach the phantom recipe unchanged."""
    import medlim.mammography.recipe as recipe
    from medlim.mammography.train import TrainingConfig

    recorded = _Recorded()
    monkeypatch.setattr(recipe, "train_and_register", recorded)
    assert main(["train", "scunet", "--seed", "1", "--n", "160", "--heldout-n", "16", "--epochs", "25",
                 "--batch-size", "32", "--workers", "16"]) == 0
    v1 = recorded.kwargs
    assert (v1["train_spec"], v1["heldout_spec"]) == (recipe.PhantomSpec(seed=1, count=160),
                                                      recipe.PhantomSpec(seed=90001, count=16))
    assert v1["config"] == TrainingConfig(epochs=25, batch_size=32, learning_rate=1e-3, seed=1)
    assert (v1["negative_fraction"], v1["name"], v1["version"], v1["skip"], v1["preset"], v1["init"]) == (
        0.5, "scunet-bac", "1", True, "thesis", None)
    assert main(["train", "scunet", "--init", "scunet-bac:1", "--preset", "thesis-unclipped", "--skip", "black",
                 "--seed", "2", "--n", "80", "--epochs", "3", "--batch-size", "4", "--lr", "3e-4", "--heldout-n",
                 "12", "--eval-seed", "80001", "--workers", "1", "--version", "2", "--device", "cpu"]) == 0
    v2 = recorded.kwargs
    assert v2["config"] == TrainingConfig(epochs=3, batch_size=4, learning_rate=3e-4, seed=2)
    assert v2["heldout_spec"] == recipe.PhantomSpec(seed=80001, count=12)
    assert (v2["skip"], v2["preset"], v2["init"], v2["version"], v2["device"]) == (
        "black", "thesis-unclipped", "scunet-bac:1", "2", "cpu")
    # with no option at all: the recipe's defaults
    assert main(["train", "scunet"]) == 0
    assert recorded.kwargs["train_spec"] == recipe.PhantomSpec(seed=1, count=320)
    assert recorded.kwargs["config"] == TrainingConfig(epochs=30, batch_size=16, learning_rate=1e-3, seed=1)


def test_the_shipped_steatosis_command_still_means_what_it_meant(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import medlim.microscopy.steatosis.recipe as recipe
    from medlim.microscopy.steatosis.train import SteatosisTrainingConfig

    recorded = _Recorded()
    monkeypatch.setattr(recipe, "train_and_register", recorded)
    assert main(["train", "steatosis", "--version", "2"]) == 0
    kwargs = recorded.kwargs
    assert (kwargs["seed"], kwargs["tiles"], kwargs["tile_size"], kwargs["heldout_seed"], kwargs["heldout_n"],
            kwargs["backbone"], kwargs["name"], kwargs["version"]) == (11, 40, 512, 7, 8, "resnet10",
                                                                      "maskrcnn-steatosis", "2")
    assert kwargs["config"] == SteatosisTrainingConfig(iterations=450, batch_size=2, crop=256, learning_rate=5e-4,
                                                       seed=11, threads=1, max_seconds=None)
    assert main(["train", "steatosis", "--max-minutes", "2"]) == 0  # phantoms: the optimisation's budget
    assert recorded.kwargs["config"].max_seconds == 120.0

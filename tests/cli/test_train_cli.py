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

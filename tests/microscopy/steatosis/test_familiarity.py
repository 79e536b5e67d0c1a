"""The steatosis network's "unlike my training data" check (issue 13): fixed-scale H&E features, the shipped record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlim.core.familiarity import image_features
from medlim.microscopy.steatosis.familiarity import BLOCK, assess_he, he_features, training_tiles

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("side", "grid"), [(1024, 256), (2048, 512), (384, 96), (1030, 258)])
def test_features_are_taken_on_blocks_of_four_pixels_whatever_the_size(side: int, grid: int) -> None:
    # grid = ceil(side / 4): a 1024 px tile and a 2048 px field are both described on 4 × 4 px blocks
    image = np.random.default_rng(side).integers(0, 256, (side, side // 2, 3), dtype=np.uint8)
    assert BLOCK == 4
    assert np.array_equal(he_features(image), image_features(image, grid=grid))


def _shipped_check():
    from medlim.core.familiarity import load_familiarity
    from medlim.core.weights import Registry

    entry = Registry.load(ROOT / "weights").get("maskrcnn-steatosis", "2")
    return entry, load_familiarity(entry)


def test_the_shipped_weights_pass_their_samples_and_flag_other_pictures() -> None:
    from PIL import Image

    entry, check = _shipped_check()
    assert check is not None and check.n_calibration == 40 and check.selection["validation"]["seed"] == 5
    for sample in ("he_00000_image.png", "he_00001_image.png"):
        result, warning = assess_he(check, np.asarray(Image.open(ROOT / "data_samples" / "steatosis" / sample)))
        assert not result.flagged and warning is None and result.score <= result.threshold
    grey = np.full((512, 512, 3), 128, np.uint8)
    result, warning = assess_he(check, grey)
    assert result.flagged and result.reason == "score above the limit"
    assert warning is not None and "an H&E image of liver tissue" in warning and f"{result.threshold:.2f}" in warning


def test_training_tiles_are_read_from_the_recorded_command() -> None:
    import dataclasses

    from medlim.core.weights.entry import TrainingProvenance
    from medlim.errors import WeightsError

    entry, _ = _shipped_check()
    tiles = training_tiles(entry)
    assert (tiles.seed, tiles.count, tiles.size) == (11, 40, 512)
    imported = dataclasses.replace(entry, provenance=TrainingProvenance(command="medlim weights import x"))
    with pytest.raises(WeightsError, match="not trained on phantoms medlim can regenerate"):
        training_tiles(imported)


@pytest.mark.slow
def test_the_shipped_check_is_reproduced_by_its_recorded_command(capsys: pytest.CaptureFixture[str]) -> None:
    from medlim.cli import main

    entry, _ = _shipped_check()
    assert entry.familiarity["command"] == "medlim weights calibrate-familiarity maskrcnn-steatosis@2"
    assert main(["weights", "calibrate-familiarity", "maskrcnn-steatosis@2", "--check",
                 "--weights-dir", str(ROOT / "weights")]) == 0
    assert "reproduced exactly" in capsys.readouterr().out

from __future__ import annotations

import numpy as np
import pytest

from medlim.mammography.evaluate import bland_altman, evaluate_image, r_squared, summarise
from medlim.mammography.inference import BacPrediction
from medlim.mammography.preprocess import PreprocessedImage


def test_r_squared_hand_computed() -> None:
    assert r_squared(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])) == pytest.approx(1.0)
    # x = 1,2,3 ; y = 1,3,2 -> r = 0.5 -> r² = 0.25
    assert r_squared(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])) == pytest.approx(0.25)
    assert np.isnan(r_squared(np.array([1.0, 1.0, 1.0]), np.array([1.0, 2.0, 3.0])))


def test_bland_altman_hand_computed() -> None:
    bias, low, high = bland_altman(np.array([10.0, 20.0, 30.0]), np.array([12.0, 22.0, 26.0]))
    # diffs 2, 2, -4: mean 0, sample SD = sqrt((4+4+16)/2) = sqrt(12)
    assert bias == pytest.approx(0.0)
    assert high == pytest.approx(1.96 * np.sqrt(12))
    assert low == pytest.approx(-1.96 * np.sqrt(12))


def _prediction(probability: np.ndarray, grey: np.ndarray) -> BacPrediction:
    pre = PreprocessedImage(grey=grey, breast_mask=grey > 0)
    return BacPrediction(probability=probability, preprocessed=pre, preset="thesis", merge="max", stride=448,
                         patches_total=1, patches_predicted=1, device="cpu", seconds=0.0)


def test_evaluate_image_against_truth() -> None:
    grey = np.full((4, 4), 150, np.uint8)
    grey[0, 0] = 50
    truth = np.zeros((4, 4), bool)
    truth[0, :2] = True  # 2 BAC pixels, intensities 50 and 150
    probability = np.zeros((4, 4), np.float32)
    probability[0, 1] = 0.9  # TP
    probability[3, 3] = 0.8  # FP
    ev = evaluate_image("a", _prediction(probability, grey), truth, threshold=0.5, x=100)
    assert ev.counts == (1, 1, 1, 13)
    assert ev.whole["f1"] == pytest.approx(2 / 4)
    assert ev.whole["jaccard"] == pytest.approx(1 / 3)
    # truth readouts: AM 2, SIM 200, TAM_100 1 (only the 150 pixel; thesis rule '>'), TSIM 150
    assert ev.truth == {"pm": 2.0, "am": 2.0, "sim": 200.0, "tam_x": 1.0, "tsim_x": 150.0}
    assert ev.predicted["pm"] == pytest.approx(1.7)
    assert ev.predicted["am"] == 2.0 and ev.predicted["tam_x"] == 2.0
    summary = summarise([ev], threshold=0.5, x=100)
    assert summary.whole_image_pooled["f1"] == pytest.approx(0.5)
    assert summary.agreement["am"].bias == 0.0


def test_phantom_sweep_gives_one_row_per_cutoff_from_the_same_maps(capsys: pytest.CaptureFixture[str]) -> None:
    """`medlim bac evaluate --thresholds` on phantoms: rows in the order given, fewer pixels at a higher cut-off."""
    import json

    from medlim.cli import main

    assert main(["bac", "evaluate", "--n", "1", "--sizes", "full-small", "--seed", "4242",
                 "--thresholds", "0.9,0.3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["seed"] == 4242 and report["images"] == 1 and "data" not in report
    high, low = report["sweep"]
    assert (high["threshold"], low["threshold"]) == (0.9, 0.3)
    # one probability map thresholded twice: everything above 0.9 is above 0.3
    assert high["recall"] <= low["recall"] and high["tam_relative_bias"] <= low["tam_relative_bias"]
    assert report["chosen"] in (0.9, 0.3)

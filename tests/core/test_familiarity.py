"""The 'unlike my training data' check (issue 13): features, score, fit, file stored with the weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medlim.core import familiarity as fam
from medlim.core.weights import InputContract, Registry, WeightsEntry, save_weights
from medlim.errors import ChecksumError, ParameterError, WeightsError


def _check(**overrides) -> fam.FamiliarityCheck:
    values = dict(
        feature_names=("a", "b"),
        mean=(0.0, 0.0),
        scale=(1.0, 2.0),
        precision=((1.0, 0.0), (0.0, 1.0)),
        threshold=4.0,
        n_calibration=10,
        source="hand-made",
    )
    values.update(overrides)
    return fam.FamiliarityCheck(**values)


# -- features -------------------------------------------------------------------------------


def test_block_mean_by_hand() -> None:
    image = np.array([[0, 2, 4, 6, 9], [2, 4, 6, 8, 9], [10, 10, 0, 0, 9], [10, 10, 0, 4, 9]], dtype=np.uint8)
    # 2×2 blocks of the 4×4 crop: (0+2+2+4)/4, (4+6+6+8)/4 / (10·4)/4, (0+0+0+4)/4; the 5th column is cropped.
    np.testing.assert_allclose(fam._block_mean(image, 2), [[2.0, 6.0], [10.0, 1.0]])
    np.testing.assert_allclose(fam._block_mean(image, 1), image[:, :5].astype(float))


def test_box_mean_matches_a_naive_mean() -> None:
    grid = np.arange(30, dtype=float).reshape(5, 6) ** 1.5
    padded = np.pad(grid, 1, mode="edge")
    naive = np.array([[padded[r:r + 3, c:c + 3].mean() for c in range(6)] for r in range(5)])
    np.testing.assert_allclose(fam._box_mean(grid, 1), naive)


def test_foreground_shape_by_hand() -> None:
    inside = np.zeros((4, 4), dtype=bool)
    inside[:, :2] = True  # the left half: a breast against the chest wall
    inside[0, 3] = True  # one speck
    fraction, fill, border, sides = fam._foreground_shape(inside)
    assert fraction == pytest.approx(9 / 16)
    assert fill == pytest.approx(9 / 16)  # bounding box = the whole grid
    # the four sides' 16 pixels (corners on both of their sides): top 3, bottom 2, left 4, right 1
    assert border == pytest.approx(10 / 16)
    # sides ≥ 25 % covered: top 3/4, bottom 2/4, left 4/4, right 1/4 → all four
    assert sides == 1.0
    assert fam._foreground_shape(np.zeros((3, 3), dtype=bool)) == [0.0, 0.0, 0.0, 0.0]


def test_edge_falloff_by_hand() -> None:
    small = np.full((12, 12), 0.8)
    inside = np.zeros((12, 12), dtype=bool)
    inside[:, :10] = True  # background in the two right columns
    small[:, 6:10] = 0.4  # a darker rim: the 4 columns next to the background
    assert fam._edge_falloff(small, inside, band=4) == pytest.approx(0.4 / 0.8)
    # no background anywhere: no rim, ratio 1
    assert fam._edge_falloff(small, np.ones((12, 12), dtype=bool)) == 1.0


def test_features_of_a_hand_made_image() -> None:
    image = np.zeros((8, 8), dtype=np.uint8)
    image[:, :4] = 102  # 0.4 on the left half
    features = dict(zip(fam.FEATURE_NAMES, fam.image_features(image, foreground=image > 0)))
    assert features["foreground_fraction"] == pytest.approx(0.5)
    assert features["foreground_bbox_fill"] == pytest.approx(1.0)
    assert features["inside_q05"] == pytest.approx(0.4) and features["inside_q95"] == pytest.approx(0.4)
    assert features["outside_mean"] == 0.0
    # flat inside but for the edge column: np.gradient there is |0 − 0.4| / 2 = 0.2 on 8 of the 32 inside pixels
    assert features["gradient_mean"] == pytest.approx(8 * 0.2 / 32)
    assert features["pixel_contrast"] == pytest.approx(0.0)
    assert features["histogram_entropy"] == 0.0  # one level
    assert features["saturation_mean"] == 0.0
    assert features["edge_falloff"] == pytest.approx(1.0)


def test_saturation_of_a_colour_image() -> None:
    red = np.zeros((8, 8, 3), dtype=np.uint8)
    red[..., 0] = 200
    features = dict(zip(fam.FEATURE_NAMES, fam.image_features(red)))
    assert features["saturation_mean"] == pytest.approx(1.0)
    assert features["inside_q50"] == pytest.approx(200 / 255 / 3)


def test_features_are_grid_sized_and_fast_to_compare() -> None:
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (1024, 768), dtype=np.uint8)
    features = fam.image_features(big, foreground=big > 10)
    assert features.shape == (len(fam.FEATURE_NAMES),) and np.all(np.isfinite(features))


def test_features_refuse_bad_inputs() -> None:
    with pytest.raises(ParameterError):
        fam.image_features(np.zeros((4, 4), dtype=np.int32))
    with pytest.raises(ParameterError):
        fam.image_features(np.zeros((4, 4), dtype=np.uint8), foreground=np.ones((3, 3), dtype=bool))
    with pytest.raises(ParameterError):
        fam.image_features(np.zeros((4, 4, 2), dtype=np.uint8))


# -- score, result, JSON --------------------------------------------------------------------


def test_score_is_the_mahalanobis_distance_by_hand() -> None:
    check = _check()
    # z = (3/1, 8/2) = (3, 4); identity precision → 5
    assert check.score(np.array([3.0, 8.0])) == pytest.approx(5.0)
    weighted = _check(precision=((2.0, 0.0), (0.0, 0.5)))
    # z = (1, 2): 2·1 + 0.5·4 = 4 → 2
    assert weighted.score(np.array([1.0, 4.0])) == pytest.approx(2.0)
    flagged = check.evaluate(np.array([3.0, 8.0]))
    assert flagged == fam.FamiliarityResult(score=5.0, threshold=4.0, flagged=True, reason=fam.SCORE_REASON)
    assert check.evaluate(np.array([1.0, 0.0])).flagged is False
    with pytest.raises(ParameterError):
        check.score(np.zeros(3))


def test_result_json_and_warning() -> None:
    result = fam.FamiliarityResult(score=41.234, threshold=12.0, flagged=True, reason=fam.SCORE_REASON)
    assert json.loads(result.to_json()) == {"score": 41.23, "threshold": 12.0, "flagged": True,
                                            "reason": "score above the limit"}
    assert fam.FamiliarityResult.from_dict(result.to_dict()).flagged is True
    assert fam.unlike_training_warning(result, kind="a mammogram") == (
        "This image looks unlike the images the model was trained on (score 41.23, limit 12.00): check that it is "
        "a mammogram of the kind this model expects; the numbers may be wrong."
    )


def test_check_json_round_trip_and_refusals() -> None:
    check = _check(selection={"seed": 2})
    text = check.to_json()
    assert fam.FamiliarityCheck.from_json(text) == check
    assert fam.FamiliarityCheck.from_json(text).to_json() == text  # same check, same bytes
    newer = json.loads(text) | {"format": fam.FAMILIARITY_FORMAT + 1}
    with pytest.raises(WeightsError, match="Update medlim"):
        fam.FamiliarityCheck.from_json(json.dumps(newer))
    with pytest.raises(WeightsError):
        fam.FamiliarityCheck.from_json("{not json")
    with pytest.raises(WeightsError):
        _check(precision=((1.0, 0.0),))
    with pytest.raises(WeightsError):
        _check(scale=(1.0, 0.0))
    with pytest.raises(WeightsError):
        _check(threshold=float("nan"))


def test_check_image_refuses_other_features() -> None:
    with pytest.raises(WeightsError, match="recalibrate"):
        _check().check_image(np.zeros((8, 8), dtype=np.uint8))


# -- fitting --------------------------------------------------------------------------------


def test_ledoit_wolf_matches_scikit_learn() -> None:
    from sklearn.covariance import ledoit_wolf

    rng = np.random.default_rng(1)
    z = rng.normal(size=(40, 5)) @ rng.normal(size=(5, 5))
    z -= z.mean(axis=0)
    expected, _ = ledoit_wolf(z, assume_centered=True)
    np.testing.assert_allclose(fam._ledoit_wolf(z, min_shrinkage=0.0), expected, rtol=1e-10, atol=1e-12)


def test_validation_limit_by_hand() -> None:
    scores = np.arange(1.0, 51.0)  # 50 scores 1..50
    # at most 2 % of 50 = 1 flagged: the limit is the second largest score (only 50 > 49)
    assert fam._validation_limit(scores, 0.02) == 49.0
    assert fam._validation_limit(scores, 0.0) == 50.0
    assert fam._validation_limit(np.arange(1.0, 41.0), 0.02) == 40.0  # 2 % of 40 < 1: nothing may be flagged


def test_fit_on_gaussian_features() -> None:
    rng = np.random.default_rng(2)
    names = ("a", "b", "c")
    cov = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 1.0]])
    train = rng.multivariate_normal([5.0, 5.0, 5.0], cov, size=400)
    validation = rng.multivariate_normal([5.0, 5.0, 5.0], cov, size=100)
    check = fam.fit_familiarity(train, validation=validation, feature_names=names, selection={"seed": 2})
    assert check.n_calibration == 400 and check.selection["seed"] == 2
    assert check.selection["validation_flagged"] <= 0.02
    assert check.threshold >= check.selection["calibration_limit"] and check.threshold >= check.selection["validation_limit"]
    np.testing.assert_allclose(check.mean, [5.0, 5.0, 5.0], atol=0.2)
    # against the correlation: (+2, -2) is far although each value alone is common
    assert check.score(np.array([7.0, 3.0, 5.0])) > check.threshold
    assert check.score(np.array([6.0, 6.0, 5.0])) < check.threshold
    with pytest.raises(ParameterError):
        fam.fit_familiarity(train[:5], feature_names=names)
    with pytest.raises(ParameterError):
        fam.fit_familiarity(train, feature_names=names, quantile=0.2)


def test_a_constant_feature_still_counts_in_floor_units() -> None:
    rng = np.random.default_rng(3)
    train = np.column_stack([rng.normal(0.5, 0.1, 60), np.zeros(60)])
    check = fam.fit_familiarity(train, feature_names=("varies", "always_zero"), trim=0.0)
    assert check.scale[1] == pytest.approx(fam._SCALE_FLOOR_ABS)
    assert check.score(np.array([0.5, 0.3])) > check.threshold


# -- stored with the weights ----------------------------------------------------------------


def _registered(tmp_path: Path) -> WeightsEntry:
    registry = Registry.load(tmp_path)
    fields = dict(name="tiny", version="1", task="bac-segmentation", architecture="none", preset="thesis",
                  input_contract={"channels": 1, "size": [8, 8], "dtype": "float32", "range": [0, 1]},
                  provenance={"command": "hand-made"})
    return save_weights(registry, fields, {"w": torch.zeros(2)}, check_architecture=False)


def test_attach_and_load_beside_the_weights(tmp_path: Path) -> None:
    entry = _registered(tmp_path)
    assert fam.load_familiarity(entry) is None
    check = _check()
    updated = fam.attach_familiarity(entry, check, command="medlim weights calibrate-familiarity tiny@1")
    assert updated.familiarity_path == tmp_path / "tiny-1.familiarity.json"
    assert updated.familiarity["command"] == "medlim weights calibrate-familiarity tiny@1"
    reread = Registry.load(tmp_path).get("tiny", "1")
    assert reread.familiarity == updated.familiarity
    assert fam.load_familiarity(reread) == check
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["models"][0]["familiarity"]["file"] == "tiny-1.familiarity.json"

    path = reread.familiarity_path
    path.write_text(path.read_text().replace('"threshold": 4.0', '"threshold": 40.0'))
    with pytest.raises(ChecksumError, match="does not match"):
        fam.load_familiarity(reread)
    path.unlink()
    with pytest.raises(WeightsError, match="missing"):
        fam.load_familiarity(reread)


def test_the_entry_field_is_validated(tmp_path: Path) -> None:
    entry = _registered(tmp_path)
    data = entry.to_dict()
    assert "familiarity" not in data  # written only when set
    with pytest.raises(WeightsError, match="sha256"):
        WeightsEntry.from_dict({**data, "familiarity": {"file": "x.json", "sha256": "nope"}})
    outside = WeightsEntry.from_dict({**data, "familiarity": {"file": "../x.json", "sha256": "0" * 64}}, root=tmp_path)
    with pytest.raises(WeightsError, match="inside"):
        fam.load_familiarity(outside)


def test_attach_needs_a_registry_folder() -> None:
    entry = WeightsEntry(name="x", version="1", task="t", architecture="a", file="x.safetensors", sha256="0" * 64,
                         preset="thesis", input_contract=InputContract(channels=1))
    with pytest.raises(WeightsError, match="no registry"):
        fam.attach_familiarity(entry, _check())


def test_a_trainer_attaches_the_check_of_its_own_training_images(tmp_path: Path) -> None:
    """Issue 12: :func:`attach_training_check` fits on the run's features, stores the file beside the weights with
    the training command, and refuses nothing when too few images leave nothing to fit."""
    entry = _registered(tmp_path)
    rng = np.random.default_rng(3)
    size = len(fam.FEATURE_NAMES)
    few, progress = rng.normal(0.5, 0.05, (7, size)), []
    same, summary = fam.attach_training_check(entry, few, None, source="seven", progress=progress.append)
    assert same is entry and fam.load_familiarity(same) is None
    assert summary == {"skipped": "7 training images, at least 8 are needed for the 'unlike my training data' "
                                  "check; the model carries none"}
    assert progress == [f"no training-data check: {summary['skipped']}"]

    training, validation = rng.normal(0.5, 0.05, (12, size)), rng.normal(0.5, 0.05, (5, size))
    updated, summary = fam.attach_training_check(entry, training, validation, source="twelve",
                                                 selection={"dataset": "abc"})
    check = fam.load_familiarity(Registry.load(tmp_path).get("tiny", "1"))
    assert updated.familiarity_path == tmp_path / "tiny-1.familiarity.json"
    assert updated.familiarity["command"] == "hand-made"  # the training command reproduces the file
    assert check == fam.fit_familiarity(training, validation=validation, source="twelve", selection={"dataset": "abc"})
    assert (summary["n_calibration"], summary["n_validation"]) == (12, 5)
    assert summary["threshold"] == round(check.threshold, 4)


def test_input_checks_describe_the_images_as_given(tmp_path: Path) -> None:
    entry = _registered(tmp_path)
    images = [np.full((16, 16), k / 20.0) + np.eye(16) * 0.01 * k for k in range(10)]
    entries, summaries = fam.attach_input_checks([entry], images, images[:3], dataset="abc", what="ID images")
    check = fam.load_familiarity(entries[0])
    rows = np.stack([fam.image_features(image) for image in images])
    assert check is not None and check.mean == fam.fit_familiarity(rows, validation=rows[:3]).mean
    assert check.selection["calibration"] == {"images": 10, "role": "ID images"}
    assert check.source == "10 ID images of the user dataset abc, at the model's input size"
    assert summaries["tiny"]["n_validation"] == 3

"""MedShift's acquisition statistics per class (issue 13) on a tiny phantom set."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.curation.shift.acquisition import acquisition_by_class, fit_class_acquisition, fuse_by_class


@pytest.fixture(scope="module")
def hands():
    from medlim.curation.image_statistics import acquisition_features
    from medlim.phantoms.base import rng_for
    from medlim.phantoms.radiograph import render_anatomy

    images = [render_anatomy("hand", rng_for(31, "radiograph", k, "hand")) for k in range(12)]
    return images, np.stack([acquisition_features(image) for image in images[:10]])


def test_a_blurred_phantom_has_less_laplacian_energy(hands) -> None:
    from medlim.curation.image_statistics import ACQUISITION_FEATURES, acquisition_features
    from medlim.phantoms.radiograph_shifts import apply_named_shift

    images, _ = hands
    energy = ACQUISITION_FEATURES.index("laplacian_log_energy")
    blurred = apply_named_shift(images[10], "blur", 0.3, np.random.default_rng(0))
    assert acquisition_features(blurred)[energy] < acquisition_features(images[10])[energy]


def test_the_fused_score_ranks_a_noised_and_a_blurred_phantom_above_a_clean_one(hands) -> None:
    from medlim.curation.image_statistics import acquisition_features
    from medlim.phantoms.radiograph_shifts import apply_named_shift

    images, features = hands
    models = fit_class_acquisition(features, ["hand"] * 10)
    assert set(models.references) == {"hand"} and len(models.internal_scores["hand"]) == 2  # images 5 and 10
    clean = images[11]
    noised = apply_named_shift(clean, "noise", 0.2, np.random.default_rng(1))
    blurred = apply_named_shift(clean, "blur", 0.2, np.random.default_rng(2))
    distance = acquisition_by_class(models, np.stack([acquisition_features(i) for i in (clean, noised, blurred)]),
                                    ["hand"] * 3)
    # the detector cannot tell them apart (one score for all three): the statistics order them
    fused, ratio = fuse_by_class(np.ones(3), {"hand": np.ones(4)}, distance, models.internal_scores, ["hand"] * 3)
    assert fused[1] > fused[0] and fused[2] > fused[0]
    assert np.all(fused >= ratio) and np.all(fused >= 1.0)
    unknown = acquisition_by_class(models, np.stack([acquisition_features(clean)]), ["elbow"])
    assert np.isnan(unknown).all()


@pytest.mark.slow  # two tiny runs: ~1 min on a quiet core
def test_stats_on_keeps_the_detectors_score_as_a_part_and_off_is_the_thesis() -> None:
    from medlim.curation.shift.classifier import ClassifierConfig
    from medlim.curation.shift.data import parse_dataset
    from medlim.curation.shift.detectors import DetectorConfig
    from medlim.curation.shift.pipeline import ShiftConfig, run_shift
    from medlim.curation.shift.report import ShiftReport

    internal = parse_dataset("phantom:internal:11:6:hand,elbow")
    external = parse_dataset("phantom:named0.3-1x0.5:12:6:hand,elbow")
    tiny = dict(detector=DetectorConfig(input_size=32, epochs=1, head_epochs=1), classifier=ClassifierConfig(epochs=1),
                k=2, otdd_repeats=1, otdd_max_samples=8)
    fused = run_shift(internal, external, ShiftConfig(**tiny))
    thesis = run_shift(internal, external, ShiftConfig(**tiny, stats=False))
    assert fused.settings["method"] == "medshift-cvad+stats" and thesis.settings["method"] == "medshift-cvad"
    assert fused.settings["stats"] is True and thesis.settings["stats"] is False
    # the detectors see the same pixels either way (read at 256 px and area-resized, or read at 32 px)
    parts = fused.evidence["auroc_parts"]
    assert set(parts) == {"cvad", "stats"} and "auroc_parts" not in thesis.evidence
    assert parts["cvad"] == pytest.approx(thesis.evidence["auroc"])
    assert set(fused.evidence["shift_types_parts"]) == {"cvad", "stats"}
    # fused ≥ each ratio, so the held-back internal images' median fused score is at least 1
    assert all(np.median(scores) >= 1.0 for scores in fused.internal_scores.values())
    report = ShiftReport.from_result(fused)
    again = ShiftReport.from_json(report.to_json())
    assert again.evidence.auroc_parts == pytest.approx(parts) and set(again.evidence.shift_types_parts) == set(parts)


def test_stats_option_of_shift_run() -> None:
    from medlim.cli import build_parser
    from medlim.curation.shift.service import ShiftRunConfig

    parser = build_parser(("shift",))
    base = ["shift", "run", "--internal", "a", "--external", "b", "--out", "o"]
    assert ShiftRunConfig.from_options(parser.parse_args(base)).stats is True
    off = ShiftRunConfig.from_options(parser.parse_args([*base, "--stats", "off"]))
    assert off.stats is False and off.shift_config().stats is False
    assert ShiftRunConfig.from_options(parser.parse_args([*base, *off.command_options()])) == off
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--stats", "maybe"])

"""Detection per shift type (issue 13): hand-computed rates and AUROCs, the JSON round trip, the CLI's keys."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from medlim.curation.ood.shift_types import ShiftTypeRow, ShiftTypeTable, companion_entries, shift_type_rows
from medlim.errors import ParameterError

#: Four shift types with known scores; reference (ID) scores 0.1, 0.2, 0.3, 0.4; threshold 0.35.
REFERENCE = np.array([0.1, 0.2, 0.3, 0.4])
SHIFTED = {"blur": [0.5, 0.6], "noise": [0.05, 0.15], "grid": [0.3, 0.45], "cast": [0.35, 0.25, 0.1]}
# AUROC = P(shifted > reference), ties one half, counted by hand over the 4 reference scores:
#   blur   0.5, 0.6 beat all four                      → 8/8
#   noise  0.05 beats none; 0.15 beats 0.1             → 1/8
#   grid   0.3 beats 0.1, 0.2, ties 0.3 (2.5); 0.45: 4  → 6.5/8
#   cast   0.35: 3; 0.25: 2; 0.1 ties 0.1 (0.5)         → 5.5/12
EXPECTED = {"blur": (2, 1.0, 1.0), "cast": (3, 1 / 3, 5.5 / 12), "grid": (2, 0.5, 6.5 / 8), "noise": (2, 0.0, 1 / 8)}


def _rows(threshold: float | np.ndarray = 0.35) -> tuple[ShiftTypeRow, ...]:
    kinds = [kind for kind, values in SHIFTED.items() for _ in values]
    scores = np.array([v for values in SHIFTED.values() for v in values])
    return shift_type_rows(detector="tend", scores=scores, shift_types=kinds, reference_scores=REFERENCE,
                           threshold=threshold, severities=np.linspace(0.1, 0.9, len(scores)))


def test_rates_and_auroc_per_shift_type_are_the_hand_computed_ones() -> None:
    rows = _rows()
    assert [row.shift_type for row in rows] == ["blur", "cast", "grid", "noise"]  # sorted
    for row in rows:
        images, detected, auroc = EXPECTED[row.shift_type]
        assert (row.images, row.threshold, row.detector) == (images, 0.35, "tend")
        assert row.detected == pytest.approx(detected, abs=1e-12)
        assert row.auroc == pytest.approx(auroc, abs=1e-12)
    # severities 0.1, 0.2, …, 0.9 over the 9 images in order: blur holds the first two
    assert rows[0].mean_severity == pytest.approx(0.15)


def test_a_threshold_per_image_counts_each_image_against_its_own() -> None:
    # a per-class detector's thresholds: everything at 0.0 is flagged, the row records no single threshold
    rows = _rows(np.zeros(9))
    assert all(row.detected == 1.0 for row in rows) and all(math.isnan(row.threshold) for row in rows)
    assert rows[1].auroc == pytest.approx(5.5 / 12)  # the AUROC does not depend on the threshold


def test_without_reference_images_the_auroc_is_nan_and_bad_input_is_refused() -> None:
    row = shift_type_rows(detector="ae", scores=np.array([0.4]), shift_types=["blur"],
                          reference_scores=np.zeros(0), threshold=0.3)[0]
    assert row.detected == 1.0 and math.isnan(row.auroc)
    with pytest.raises(ParameterError, match="one shift type per score"):
        shift_type_rows(detector="ae", scores=np.array([0.4, 0.5]), shift_types=["blur"],
                        reference_scores=REFERENCE, threshold=0.3)
    with pytest.raises(ParameterError, match="empty one"):
        shift_type_rows(detector="ae", scores=np.array([0.4]), shift_types=[""], reference_scores=REFERENCE,
                        threshold=0.3)


def test_table_round_trips_through_json_and_reads_side_by_side() -> None:
    other = shift_type_rows(detector="ae", scores=np.array([0.0, 0.9]), shift_types=["blur", "blur"],
                            reference_scores=np.zeros(0), threshold=0.5)
    table = ShiftTypeTable(rows=(*_rows(), *other), reference_images={"tend": 4, "ae": 0}, source="hand-made")
    text = json.dumps(table.to_dict())  # NaN written as null: valid JSON
    assert "NaN" not in text
    again = ShiftTypeTable.from_dict(json.loads(text))
    assert again.detectors == ("tend", "ae") and again.shift_types == ("blur", "cast", "grid", "noise")
    assert again.reference_images == {"tend": 4, "ae": 0} and again.source == "hand-made"
    for before, after in zip(table.rows, again.rows):
        assert (before.shift_type, before.detector, before.images) == (after.shift_type, after.detector, after.images)
        assert before.detected == after.detected
        assert (math.isnan(before.auroc) and math.isnan(after.auroc)) or before.auroc == after.auroc
    wide = again.wide_rows()
    assert wide[0] == {"shift type": "blur", "images": 2, "tend detected": 1.0, "tend AUROC": 1.0,
                       "ae detected": 0.5, "ae AUROC": None}
    assert wide[2]["shift type"] == "grid" and wide[2]["tend AUROC"] == round(6.5 / 8, 3)
    assert "ae detected" not in wide[2]
    lines = again.lines()
    assert lines[0].split() == ["shift", "type", "images", "tend", "det", "/", "AUROC", "ae", "det", "/", "AUROC"]
    assert lines[1].split() == ["blur", "2", "1.000", "/", "1.000", "0.500", "/", "n/a"]
    assert lines[2].split() == ["cast", "3", "0.333", "/", "0.458", "—"]


def test_companions_are_the_latest_detectors_of_the_same_classes() -> None:
    from types import SimpleNamespace

    def entry(name: str, version: str, architecture: str, classes: list[str]) -> SimpleNamespace:
        return SimpleNamespace(name=name, version=version, architecture=architecture,
                               params={"id_classes": classes})

    entries = [entry("ae-hand", "1", "ood-autoencoder", ["hand"]), entry("ae-hand", "2", "ood-autoencoder", ["hand"]),
               entry("cvad-hand", "1", "cvad", ["hand"]), entry("cvad-wrist", "1", "cvad", ["wrist"]),
               entry("resnet", "1", "resnet18", ["hand"]), entry("tend-hand", "3", "tend", ["hand"]),
               entry("tend-hand-b", "1", "tend", ["hand"])]
    found = companion_entries(entries, id_classes=("hand",), exclude="tend-hand")  # type: ignore[arg-type]
    assert [(e.name, e.version) for e in found] == [("tend-hand-b", "1"), ("cvad-hand", "1"), ("ae-hand", "2")]


def test_ood_evaluate_prints_the_shift_types_of_each_detector(ood_registry: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Phantoms without --data: held-out ID phantoms under the six named shifts, three detectors side by side."""
    from medlim.cli import main

    args = ["ood", "evaluate", "--detector", "tend-test", "--weights-dir", str(ood_registry), "--n", "2",
            "--n-shift", "2"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    kinds = ["blur", "cast", "exposure", "grid", "lowres", "noise", "tint"]
    assert sorted(report["shift_type_rate"]) == kinds
    assert set(report["shift_type_rate"]["blur"]) == {"images", "detected", "detected_gmean", "auroc"}
    table = ShiftTypeTable.from_dict(report["shift_types"])
    assert table.detectors == ("tend-test@1", "cvad-test@1", "ae-test@1")  # TEND, CVAD, then the AE baseline
    assert table.shift_types == tuple(kinds) and table.reference_images == {name: 2 for name in table.detectors}
    for kind in kinds:  # the evaluated detector's own rates are the table's
        row, rate = table.row(kind, "tend-test@1"), report["shift_type_rate"][kind]
        assert (row.images, row.detected, row.auroc) == (rate["images"], rate["detected"], rate["auroc"]) \
            and row.images == 2 and row.threshold == 0.3
        assert row.mean_severity == pytest.approx((0.05 + 1.0) / 2)
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "detectors side by side" in text and "ae-test@1 det / AUROC" in text
    assert main([*args, "--compare", "none", "--json"]) == 0
    assert ShiftTypeTable.from_dict(json.loads(capsys.readouterr().out)["shift_types"]).detectors == ("tend-test@1",)
    assert main([*args, "--n-shift", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "shift_type_rate" not in report and "shift_types" not in report


def test_the_thesis_distortion_set_leaves_out_the_table_4_5_lookalikes() -> None:
    import argparse

    from medlim.cli.ood import _settings
    from medlim.curation.ood.distortions import (
        EXTRA_DISTORTIONS,
        LOOKALIKES,
        TRAIN_DISTORTIONS,
        VALIDATION_TRANSFORMS,
        distortion_names,
    )

    assert set(LOOKALIKES) == set(EXTRA_DISTORTIONS) and set(LOOKALIKES.values()) <= set(VALIDATION_TRANSFORMS)
    assert distortion_names("thesis") == tuple(TRAIN_DISTORTIONS)
    assert distortion_names("all") == (*TRAIN_DISTORTIONS, *EXTRA_DISTORTIONS)
    assert distortion_names(" barrel, spread ") == ("barrel", "spread")
    given, recorded = _settings(argparse.Namespace(distortions="thesis"), "tend")
    assert given == {"distortions": tuple(TRAIN_DISTORTIONS)}
    assert recorded == [("--distortions", "barrel,perspective,arc,polar,tile,affine")]

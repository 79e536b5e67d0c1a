"""MedShift per shift type (issue 13): hand-computed rows, the report's JSON round trip, named phantom shifts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from medlim.curation.ood.shift_types import ShiftTypeTable
from medlim.curation.shift.pipeline import shift_type_evidence
from medlim.curation.shift.report import ShiftEvidence, ShiftReport

# Class detectors' calibrated thresholds: the maximum held-back internal score, hand 0.3, elbow 0.5.
INTERNAL = {"hand": np.array([0.1, 0.3]), "elbow": np.array([0.5])}
SCORES = np.array([0.2, 0.4, 0.35, 0.45, 0.1])
KINDS = ["", "", "blur", "blur", "noise"]
CLASSES = ["hand", "elbow", "hand", "elbow", "hand"]


def _table() -> ShiftTypeTable:
    return ShiftTypeTable.from_dict(shift_type_evidence(SCORES, KINDS, CLASSES, INTERNAL, method="medshift-cvad",
                                                        severity=np.array([0, 0, 0.2, 0.6, 0.9])))


def test_rows_count_each_image_against_its_class_threshold_and_the_unshifted_images() -> None:
    table = _table()
    assert table.source == "external images without a shift" and table.reference_images == {"medshift-cvad": 2}
    blur, noise = table.row("blur", "medshift-cvad"), table.row("noise", "medshift-cvad")
    # blur: hand 0.35 ≥ 0.3 flagged, elbow 0.45 < 0.5 not → 1/2; AUROC vs (0.2, 0.4): 0.35 beats 1, 0.45 beats 2 → 3/4
    assert (blur.images, blur.detected, blur.auroc, blur.mean_severity) == (2, 0.5, 0.75, pytest.approx(0.4))
    # noise: hand 0.1 < 0.3; beats neither reference score
    assert (noise.images, noise.detected, noise.auroc) == (1, 0.0, 0.0)
    # every external image shifted: the held-back internal images are the reference (0.1, 0.3, 0.5)
    alone = ShiftTypeTable.from_dict(shift_type_evidence(SCORES[2:], KINDS[2:], CLASSES[2:], INTERNAL,
                                                         method="medshift-cvad"))
    # blur 0.35 beats 0.1 and 0.3 (2), 0.45 beats 0.1 and 0.3 (2) → 4/6
    assert alone.source == "held-back internal images"
    assert alone.row("blur", "medshift-cvad").auroc == pytest.approx(4 / 6)


def test_report_round_trips_with_its_shift_type_table() -> None:
    from tests.curation.shift.test_report import _report

    report = _report()
    evidence = dataclasses.replace(report.evidence, shift_types=_table())
    report = dataclasses.replace(report, evidence=evidence)
    text = json.dumps(report.to_json())
    assert "NaN" not in text
    again = ShiftReport.from_json(json.loads(text))
    assert again.to_json() == json.loads(text)
    assert again.evidence.shift_types.to_dict() == _table().to_dict()  # NaN thresholds: compare as JSON
    assert ShiftEvidence.from_json(json.loads(text)["evidence"]).shift_types.shift_types == ("blur", "noise")


def test_stored_run_summary_carries_the_table() -> None:
    from medlim.curation.shift.service import StoredRun
    from tests.curation.shift.test_report import _report

    report = _report()
    plain = StoredRun(name="ext", report=report, scores=())
    assert plain.shift_types is None and "shift_types" not in plain.summary()
    run = StoredRun(name="ext", report=dataclasses.replace(
        report, evidence=dataclasses.replace(report.evidence, shift_types=_table())), scores=())
    assert run.summary()["shift_types"] == _table().to_dict()


def test_named_phantom_shifts_carry_their_type_through_a_folder(tmp_path: Path) -> None:
    from medlim.curation.shift.data import folder_set, parse_dataset, write_image_set
    from medlim.phantoms.radiograph_shifts import NAMED_SHIFTS

    image_set = parse_dataset("phantom:named0.05-1x0.5:3:6:hand,elbow")
    kinds = image_set.shift_types
    assert len(kinds) == 12 and {k for k in kinds if k} <= set(NAMED_SHIFTS) and "" in kinds and any(kinds)
    assert image_set.shifted.tolist() == [bool(k) for k in kinds]
    assert all(0.05 <= s <= 1.0 for s, k in zip(image_set.severity, kinds) if k)
    assert image_set.source == "phantom:named0.05-1x0.5:3:6:hand,elbow"
    assert np.array_equal(image_set.read([0, 1], 32), parse_dataset(image_set.source).read([0, 1], 32))
    back = folder_set(write_image_set(image_set, tmp_path / "named", size=32))
    assert back.shift_types == kinds and back.shifted.tolist() == image_set.shifted.tolist()
    assert parse_dataset("phantom:mixed:3:2:hand").shift_types != ()  # a style counts as the shift type

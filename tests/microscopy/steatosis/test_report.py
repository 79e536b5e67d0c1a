"""The steatosis report and the preset names it carries (medlim.microscopy.steatosis.report)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.microscopy.steatosis.droplets import BUILTIN_PRESETS, DEFAULT_CUTOFFS, THESIS_CUTOFFS, Cutoffs, DropletTable
from medlim.microscopy.steatosis.report import CUSTOM, preset_cutoffs, preset_name, steatosis_report


def _table() -> DropletTable:
    """Four droplets on 1,000 px² of tissue: areas 10, 50, 140, 200 (scores 0.9, 0.9, 0.4, 0.9)."""
    return DropletTable(area=np.array([10.0, 50.0, 140.0, 200.0]), perimeter=np.array([10.0, 30.0, 50.0, 70.0]),
                        eccentricity=np.array([0.05, 0.5, 0.6, 0.85]), score=np.array([0.9, 0.9, 0.4, 0.9]),
                        centroid=np.zeros((4, 2)), tissue_area=1000.0)


def test_report_of_the_default_cutoffs() -> None:
    report = steatosis_report(_table(), DEFAULT_CUTOFFS, model="m:1", detection_seconds=1.23456)
    # Every droplet scores ≥ 0.1 and no feature is limited: 400 px² of 1,000 → 40 %.
    assert (report.detected, report.kept, report.discarded) == (4, 4, 0)
    assert report.steatosis_fraction == 0.4 and report.steatosis_percent == 40.0
    assert report.nash_crn_band.startswith("S2") and report.donor_band == "≥ 30 %"
    assert report.preset == "default" and report.detection_seconds == 1.235
    data = report.to_json()
    assert json.loads(json.dumps(data, allow_nan=False)) == data  # strict JSON: open limits are null
    assert data["cutoffs"]["area"] == [0.0, None]
    assert data["nash_crn_band"] == report.nash_crn_band and data["discarded"] == 0
    assert "kept_flags" not in data


def test_report_of_the_thesis_cutoffs() -> None:
    report = steatosis_report(_table(), THESIS_CUTOFFS, model="m:1")
    # Means of all four: area 100, perimeter 40, eccentricity 0.5. Kept: score ≥ 0.5, area ≤ 600, perimeter in
    # [20, 160], eccentricity in [0.1, 0.75] → only droplet 2 (droplet 1: perimeter 10 and eccentricity 0.05;
    # 3: score 0.4; 4: eccentricity 0.85). Steatosis 50 / 1,000 = 5 % → S1, donor 5–29 %.
    assert report.kept_flags.tolist() == [False, True, False, False]
    assert report.reference == {"area": 100.0, "perimeter": 40.0, "eccentricity": 0.5}
    assert report.steatosis_fraction == 0.05
    assert report.nash_crn_band.startswith("S1") and report.donor_band == "5–29 %"
    assert report.preset == "thesis"


def test_a_preset_name_is_kept_only_while_its_values_are() -> None:
    assert preset_name(THESIS_CUTOFFS) == "thesis"
    assert preset_name(replace(THESIS_CUTOFFS, min_score=0.6)) == CUSTOM == "custom"
    assert preset_name(replace(THESIS_CUTOFFS, reference="scored")) == CUSTOM
    # A user's preset with the thesis's values: the one the user picked is named.
    presets = {**BUILTIN_PRESETS, "mine": THESIS_CUTOFFS}
    assert preset_name(THESIS_CUTOFFS, presets, chosen="mine") == "mine"
    assert preset_name(THESIS_CUTOFFS, presets) == "thesis"
    assert preset_name(replace(THESIS_CUTOFFS, area=(0.01, 6.0)), presets, chosen="mine") == CUSTOM
    report = steatosis_report(_table(), replace(DEFAULT_CUTOFFS, min_score=0.95), model="m")
    assert report.preset == CUSTOM and report.kept == 0 and report.nash_crn_band.startswith("S0")


def test_preset_cutoffs_with_overrides() -> None:
    assert preset_cutoffs() == DEFAULT_CUTOFFS
    assert preset_cutoffs("thesis") == THESIS_CUTOFFS
    changed = preset_cutoffs("thesis", area=(0.001, math.inf), min_score=0.3)
    assert changed == Cutoffs(area=(0.001, math.inf), perimeter=(0.5, 4.0), eccentricity=(0.2, 1.5), min_score=0.3,
                              reference="all-detections", crowded_min_score=None)
    # The crowded-fat floor: the preset's unless given; one at or above the minimum score is none.
    assert preset_cutoffs(min_score=0.3).crowded_min_score == 0.02
    assert preset_cutoffs(crowded_min_score=0.05).crowded_min_score == 0.05
    assert preset_cutoffs(crowded_min_score=0.2).crowded_min_score is None
    assert preset_cutoffs("thesis", crowded_min_score=0.1).crowded_min_score == 0.1
    assert preset_name(changed) == CUSTOM
    with pytest.raises(ParameterError, match="unknown cutoff preset 'strict'"):
        preset_cutoffs("strict")
    with pytest.raises(ParameterError, match="two values"):
        preset_cutoffs(area=(1.0,))
    with pytest.raises(ParameterError, match="low ≤ high"):
        preset_cutoffs(perimeter=(2.0, 1.0))


def test_a_tile_with_little_or_no_tissue_says_its_grade_means_nothing() -> None:
    empty = replace(_table(), tissue_area=0.0)
    report = steatosis_report(empty, DEFAULT_CUTOFFS, model="m:1")
    assert report.steatosis_fraction == 0.0 and report.nash_crn_band.startswith("S0")
    assert any(w.startswith("No tissue was found") and "not as a normal liver" in w for w in report.warnings)
    small = steatosis_report(_table(), DEFAULT_CUTOFFS, model="m:1")  # 1,000 px of tissue
    assert any(w.startswith("Only 1,000 px of tissue were found") for w in small.warnings)
    enough = steatosis_report(replace(_table(), tissue_area=200_000.0), DEFAULT_CUTOFFS, model="m:1")
    assert not any("tissue" in w for w in enough.warnings)

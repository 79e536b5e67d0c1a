"""The options a page hands a whole-slide job give back exactly the page's cutoffs (medlim.microscopy.slide_runs)."""

from __future__ import annotations

import math

import pytest

from medlim.microscopy.slide_runs import steatosis_options
from medlim.microscopy.steatosis.droplets import DEFAULT_CUTOFFS, THESIS_CUTOFFS, Cutoffs
from medlim.microscopy.steatosis.report import preset_cutoffs


def _read_back(options: list[str]) -> Cutoffs:
    """What ``medlim steatosis segment`` makes of the options (its own ``preset_cutoffs`` call)."""
    def value(flag: str, n: int = 1) -> list[float]:
        at = options.index(flag)
        return [float(v) for v in options[at + 1 : at + 1 + n]]

    return preset_cutoffs(options[options.index("--preset") + 1], area=value("--area", 2),
                          perimeter=value("--perimeter", 2), eccentricity=value("--eccentricity", 2),
                          min_score=value("--min-score")[0], crowded_min_score=value("--crowded-min-score")[0])


@pytest.mark.parametrize("cutoffs", [
    DEFAULT_CUTOFFS,
    THESIS_CUTOFFS,
    Cutoffs(min_score=0.3, crowded_min_score=0.05),  # a floor of the pathologist's
    Cutoffs(min_score=0.3, crowded_min_score=None),  # none: one minimum score, even from the default preset
    Cutoffs(area=(0.1, math.inf), min_score=0.5, reference="all-detections", crowded_min_score=0.1),
])
def test_the_job_options_give_back_the_pages_cutoffs(cutoffs: Cutoffs) -> None:
    options = steatosis_options(cutoffs)
    assert options[options.index("--crowded-min-score") + 1] == repr(
        cutoffs.min_score if cutoffs.crowded_min_score is None else cutoffs.crowded_min_score)
    assert _read_back(options) == cutoffs

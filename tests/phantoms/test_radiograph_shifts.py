"""Named single shifts of family-A radiographs (issue 13): exact at severity 0, growing, the same per seed."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.phantoms.base import rng_for
from medlim.phantoms.radiograph import generate_radiograph
from medlim.phantoms.radiograph_shifts import (
    NAMED_SHIFTS,
    apply_named_shift,
    evenly_spread_severities,
    shifted_radiograph,
)


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return generate_radiograph(seed=3, index=0, body_part="humerus").image


def test_the_issue_s_mild_shifts_are_all_offered() -> None:
    assert set(NAMED_SHIFTS) == {"blur", "lowres", "cast", "noise", "grid", "exposure", "tint"}


@pytest.mark.parametrize("name", NAMED_SHIFTS)
def test_severity_zero_is_the_image_and_the_change_grows_with_severity(clean: np.ndarray, name: str) -> None:
    assert np.array_equal(apply_named_shift(clean, name, 0.0, rng_for(0, name)), clean)
    change = []
    for severity in (0.05, 0.5, 1.0):
        shifted = apply_named_shift(clean, name, severity, rng_for(0, name))
        assert shifted.shape == clean.shape and shifted.dtype == np.float32
        assert 0.0 <= shifted.min() and shifted.max() <= 1.0
        change.append(float(np.abs(shifted - clean).mean()))
    assert 0.0 < change[0] < change[1] < change[2], change  # mild is mild, strong is strong


def test_shifted_radiographs_are_the_same_per_seed_and_differ_between_seeds() -> None:
    one = shifted_radiograph(seed=4, index=2, body_part="hand", shift="noise", severity=0.4)
    again = shifted_radiograph(seed=4, index=2, body_part="hand", shift="noise", severity=0.4)
    other = shifted_radiograph(seed=5, index=2, body_part="hand", shift="noise", severity=0.4)
    assert np.array_equal(one, again) and not np.array_equal(one, other)


def test_severities_spread_evenly_and_bad_values_are_refused(clean: np.ndarray) -> None:
    assert evenly_spread_severities(3).tolist() == pytest.approx([0.05, 0.525, 1.0])
    assert evenly_spread_severities(1).tolist() == pytest.approx([0.525])
    with pytest.raises(ParameterError, match="unknown shift"):
        apply_named_shift(clean, "tilt", 0.5, rng_for(0))
    with pytest.raises(ParameterError, match="severity"):
        apply_named_shift(clean, "blur", 1.5, rng_for(0))
    with pytest.raises(ParameterError, match="count"):
        evenly_spread_severities(0)

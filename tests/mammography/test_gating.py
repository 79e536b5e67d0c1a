"""Component gating (hysteresis) of the BAC probability map: hand-computed maps."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.mammography.gating import ComponentGate, gate_components, gate_from_params


def _map() -> np.ndarray:
    p = np.zeros((6, 8), np.float32)
    p[1, 1:4] = [0.4, 0.95, 0.5]   # region A: reaches the seed -> kept whole
    p[4, 1:4] = [0.5, 0.85, 0.6]   # region B: peaks at 0.85 < seed -> dropped
    p[2, 4] = 0.35                 # touches A diagonally (8-connected) -> kept with A
    p[4, 6] = 0.2                  # at or below the floor: no region -> 0
    return p


def test_regions_reaching_the_seed_are_kept_whole_and_the_rest_zeroed() -> None:
    gated = gate_components(_map(), ComponentGate(floor=0.3, seed=0.9))
    expected = np.zeros((6, 8), np.float32)
    expected[1, 1:4] = [0.4, 0.95, 0.5]
    expected[2, 4] = 0.35
    np.testing.assert_array_equal(gated, expected)


def test_a_lower_seed_keeps_both_regions_and_a_cutoff_above_the_floor_tightens_inside_them() -> None:
    gated = gate_components(_map(), ComponentGate(floor=0.3, seed=0.8))
    assert np.count_nonzero(gated) == 7  # A (3) + its diagonal neighbour (1) + B (3)
    assert np.count_nonzero(gated > 0.55) == 3  # 0.95, 0.85, 0.6


def test_nothing_above_the_floor_gives_an_all_zero_map() -> None:
    p = np.full((4, 4), 0.25, np.float32)
    assert not gate_components(p, ComponentGate(0.3, 0.9)).any()


def test_gate_from_params_reads_the_manifest_and_refuses_bad_values() -> None:
    assert gate_from_params({"overlap": 64}) is None
    assert gate_from_params({"gate": {"floor": 0.3, "seed": 0.9}}) == ComponentGate(0.3, 0.9)
    for bad in ({"floor": 0.9, "seed": 0.3}, {"floor": 0.3}, {"floor": "a", "seed": 0.9}, [0.3, 0.9]):
        with pytest.raises(ParameterError):
            gate_from_params({"gate": bad})


def test_describe_names_both_cutoffs() -> None:
    text = ComponentGate(0.3, 0.9).describe()
    assert "p > 0.3" in text and "p > 0.9" in text

"""The cut-off table (medlim.mammography.cutoffs) against quantify_bac as an oracle, and hand-computed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.mammography.analysis import requantify
from medlim.mammography.cutoffs import cutoff_table


def test_table_is_hand_computed_on_the_2x3_image(tiny_analysis) -> None:
    analysis, _ = tiny_analysis()  # p = [[0.9, 0.7, 0.2], [0.95, 0.1, 0.6]], I = [[150, 90, 200], [100, 255, 120]]
    table = cutoff_table(analysis)
    assert table.above.shape == (101, 256)
    # t = 0.5: I ∈ {150, 90, 100, 120}; t = 0.9: only p = 0.95 (0.9 is not > 0.9): I = 100.
    assert np.flatnonzero(table.above[50]).tolist() == [90, 100, 120, 150]
    assert np.flatnonzero(table.above[90]).tolist() == [100]
    metrics = table.metrics(threshold=0.5, x=95.0)
    assert (metrics.am, metrics.sim, metrics.tam_x, metrics.tsim_x) == (4, 460, 3, 370)
    assert metrics.am_mm2 == pytest.approx(0.08) and metrics.pm == pytest.approx(3.45)


@pytest.mark.parametrize("preset", ["thesis", "published"])
def test_table_equals_quantify_bac_on_every_grid_cutoff(tiny_analysis, preset: str) -> None:
    rng = np.random.default_rng(11)
    probability = rng.random((97, 131), dtype=np.float32)
    probability[0, :101] = np.arange(101, dtype=np.float32) / np.float32(100)  # exactly on the grid cut-offs
    probability[1, 0] = np.nan
    grey = rng.integers(0, 256, (97, 131), dtype=np.uint8)
    analysis, _ = tiny_analysis(probability=probability, grey=grey, spacing=(0.07, 0.085), preset=preset)
    table = cutoff_table(analysis)

    def comparable(metrics):  # PM is NaN with a NaN pixel (NaN != NaN); it comes from the analysis either way
        return dataclasses.replace(metrics, pm=0.0)

    for k in range(101):
        threshold = round(k * 0.01, 2)
        for x in (0.0, 99.0, 100.0, 100.5, 255.0):
            fast, full = table.metrics(threshold=threshold, x=x), requantify(analysis, threshold=threshold, x=x)
            assert comparable(fast) == comparable(full), (k, x)
    assert comparable(requantify(analysis, threshold=0.37, x=100.0, table=table)) == comparable(
        requantify(analysis, threshold=0.37, x=100.0))


def test_off_grid_or_non_python_cutoffs_make_the_full_pass(tiny_analysis) -> None:
    analysis, _ = tiny_analysis()
    table = cutoff_table(analysis)
    assert table.covers(0.5) and table.covers(1) and not table.covers(0.505)
    assert not table.covers(np.float64(0.5))  # NumPy would compare a float64 cut-off in float64
    assert requantify(analysis, threshold=0.505, x=100.0, table=table) == requantify(analysis, threshold=0.505, x=100.0)
    with pytest.raises(ParameterError, match="grid"):
        table.metrics(threshold=0.505, x=100.0)
    with pytest.raises(ParameterError, match="X"):
        table.metrics(threshold=0.5, x=300.0)

"""Window/level and LUT formulas against hand-computed values (DICOM PS3.3 C.11.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medlim.core.io.windowing import apply_lut, apply_value_range, apply_window, linear_window_coefficients
from medlim.errors import ParameterError


def test_linear_window_hand_values() -> None:
    # c = 40, w = 400: black edge c - 0.5 - (w - 1)/2 = -160, white edge c - 0.5 + (w - 1)/2 = 239.
    raw = np.array([-1000.0, -160.0, 0.0, 39.5, 239.0, 239.5, 3000.0])
    out = apply_window(raw, center=40, width=400)
    expected = [0.0, 0.0, 160.0 / 399.0, 0.5, 1.0, 1.0, 1.0]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_linear_width_one_is_a_threshold_at_center_minus_half() -> None:
    out = apply_window(np.array([9.0, 9.5, 9.6, 10.0]), center=10, width=1)
    np.testing.assert_array_equal(out, [0.0, 0.0, 1.0, 1.0])


def test_linear_exact_hand_values() -> None:
    out = apply_window(np.array([70.0, 75.0, 87.5, 100.0, 125.0, 130.0]), center=100, width=50, function="linear_exact")
    np.testing.assert_allclose(out, [0.0, 0.0, 0.25, 0.5, 1.0, 1.0], atol=1e-6)


def test_sigmoid_hand_values() -> None:
    out = apply_window(np.array([0.0, 1.0, -1.0, 1e6]), center=0, width=4, function="SIGMOID")
    s = 1.0 / (1.0 + math.exp(-1.0))
    np.testing.assert_allclose(out, [0.5, s, 1.0 - s, 1.0], atol=1e-6)


@pytest.mark.parametrize(
    ("width", "function"), [(0.5, "LINEAR"), (0.0, "LINEAR_EXACT"), (-3.0, "SIGMOID"), (float("nan"), "LINEAR")]
)
def test_invalid_width_is_refused(width: float, function: str) -> None:
    with pytest.raises(ParameterError, match="width"):
        apply_window(np.zeros(3), center=0, width=width, function=function)


def test_unknown_function_is_refused() -> None:
    with pytest.raises(ParameterError, match="GAMMA"):
        apply_window(np.zeros(3), center=0, width=10, function="GAMMA")


def test_lut_hand_values_and_clamping() -> None:
    table = np.array([0, 100, 200, 4095])
    out = apply_lut(np.array([5, 10, 11, 12, 13, 99]), lut=table, first_mapped=10, output_bits=12)
    np.testing.assert_allclose(out, [0.0, 0.0, 100 / 4095, 200 / 4095, 1.0, 1.0], atol=1e-7)
    # Same result for a small integer input (table path) and a float input (rounding path).
    small = apply_lut(np.array([5, 11, 99], dtype=np.int16), lut=table, first_mapped=10, output_bits=12)
    floats = apply_lut(np.array([5.2, 10.6, 99.0]), lut=table, first_mapped=10, output_bits=12)
    np.testing.assert_allclose(small, floats)


def test_lut_entries_above_declared_bits_use_their_own_range() -> None:
    # Descriptor says 8 bits, data reach 4095 (a common encoder error): scale by 4095.
    out = apply_lut(np.array([0, 1]), lut=np.array([0, 4095]), first_mapped=0, output_bits=8)
    np.testing.assert_allclose(out, [0.0, 1.0])


def test_value_range() -> None:
    np.testing.assert_allclose(apply_value_range(np.array([10.0, 20.0, 15.0])), [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(apply_value_range(np.full(4, 7.0)), np.zeros(4))
    np.testing.assert_allclose(apply_value_range(np.array([0.0, 5.0, 20.0]), low=5, high=15), [0.0, 0.0, 1.0])


def test_linear_coefficients_reproduce_the_window() -> None:
    raw = np.linspace(-500.0, 800.0, 27)
    for function, center, width in (("LINEAR", 40.0, 400.0), ("LINEAR_EXACT", 100.0, 50.0)):
        low, scale = linear_window_coefficients(center=center, width=width, function=function)
        np.testing.assert_allclose(
            np.clip((raw - low) * scale, 0, 1), apply_window(raw, center=center, width=width, function=function),
            atol=1e-6,
        )
    assert linear_window_coefficients(center=0.0, width=4.0, function="SIGMOID") is None
    assert linear_window_coefficients(center=0.0, width=1.0, function="LINEAR") is None

"""Golden digests of generated phantoms, recorded per class of CPU.

A phantom is bit-identical from run to run on one machine, but numpy's and OpenCV's float32 maths take other
SIMD paths on a CPU with AVX-512 than on one with AVX2 only, and their results can differ in the last bit; a
sha256 of the image then differs although no random stream moved (on the bundled samples: at most 1 grey level,
on 2 in a million PNG pixels). So each golden digest is recorded for the CPU classes it was computed on, and a
test on a class with none recorded is skipped, saying so, rather than failed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest


def cpu_class() -> str:
    """``"avx512"`` where numpy reports AVX-512F, ``"avx2"`` where it reports AVX2 only, else ``"other"``."""
    from numpy._core._multiarray_umath import __cpu_features__ as features

    if features.get("AVX512F"):
        return "avx512"
    return "avx2" if features.get("AVX2") else "other"


def expect_golden(actual: str, recorded: Mapping[str, str]) -> None:
    """Assert ``actual`` equals the digest recorded for this CPU class (skip where none is recorded)."""
    cpu = cpu_class()
    if cpu not in recorded:
        pytest.skip(f"no golden digest recorded for {cpu} CPUs (recorded: {', '.join(sorted(recorded))})")
    assert actual == recorded[cpu]


def assert_regenerated(stored: np.ndarray, regenerated: np.ndarray) -> None:
    """A committed sample image against the same phantom generated again: equal up to the last bit of float32
    maths, which another CPU class rounds otherwise — at most 1 level apart, on at most 1 in 10,000 pixels."""
    assert stored.shape == regenerated.shape and stored.dtype == regenerated.dtype
    difference = np.abs(stored.astype(np.int64) - regenerated.astype(np.int64))
    assert int(difference.max(initial=0)) <= 1
    assert np.count_nonzero(difference) <= stored.size // 10_000

"""Native decoders run isolated: a crash in the child is an exception in the parent."""

from __future__ import annotations

import os

import numpy as np
import pytest

from medlim.core.io.isolation import IsolatedCrash, IsolatedFailure, run_isolated

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="isolation needs fork")


def test_result_comes_back() -> None:
    np.testing.assert_array_equal(run_isolated(lambda: np.arange(5, dtype=np.uint16)), np.arange(5))


def test_exception_in_child_is_reported() -> None:
    def fails() -> None:
        raise ValueError("bad stream")

    with pytest.raises(IsolatedFailure, match="ValueError: bad stream"):
        run_isolated(fails)


def test_abort_in_child_does_not_kill_the_parent() -> None:
    with pytest.raises(IsolatedCrash):
        run_isolated(os.abort)

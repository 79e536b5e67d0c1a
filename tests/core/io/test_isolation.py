"""Native decoders run isolated: a crash in the child is an exception in the parent."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from medlim.core.io.isolation import IsolatedCrash, IsolatedFailure, IsolatedTimeout, run_isolated

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


def test_a_child_past_its_timeout_is_killed() -> None:
    started = time.monotonic()
    with pytest.raises(IsolatedTimeout, match="did not finish within 0.5 s") as caught:
        run_isolated(lambda: time.sleep(30), timeout_s=0.5)
    assert time.monotonic() - started < 10  # not the 30 s the child wanted
    assert caught.value.timeout_s == 0.5
    assert isinstance(caught.value, IsolatedCrash)  # callers that handle crashes handle it too


def test_a_large_answer_arrives_whole_before_the_timeout() -> None:
    values = run_isolated(lambda: np.arange(3_000_000, dtype=np.int64), timeout_s=60)
    assert values.shape == (3_000_000,) and int(values[-1]) == 2_999_999

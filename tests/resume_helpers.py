"""Helpers of the per-epoch resume tests (issue 15): a worker "killed" right after a checkpoint,
epoch calls counted, state dicts compared bit for bit."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from medlim.core.training_resume import FitCheckpoint


class Crash(BaseException):
    """Stands for the worker dying right after a checkpoint (not caught by the job machinery)."""


def killed_after(monkeypatch: pytest.MonkeyPatch, saves: int) -> list[str]:
    """Make the ``saves``-th checkpoint the last thing the worker does; returns the stages saved."""
    real, saved = FitCheckpoint.save, []

    def save(self: FitCheckpoint, state) -> None:  # noqa: ANN001
        real(self, state)
        saved.append(self.stage)
        if len(saved) == saves:
            raise Crash(f"killed after {saved}")

    monkeypatch.setattr(FitCheckpoint, "save", save)
    return saved


def counting(monkeypatch: pytest.MonkeyPatch, owner: type, *methods: str) -> Counter:
    """Count the calls of ``owner.<method>`` (an epoch each)."""
    calls: Counter = Counter()
    for name in methods:
        real = getattr(owner, name)

        def counted(self, _real=real, _name=name):  # noqa: ANN001, ANN202
            calls[_name] += 1
            return _real(self)

        monkeypatch.setattr(owner, name, counted)
    return calls


def same_tensors(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> bool:
    """The same keys and bit-equal tensors."""
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)

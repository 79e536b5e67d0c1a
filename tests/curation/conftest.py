"""Fixtures shared by the curation tests (OOD, MedShift, retrieval)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    # on a shared 2-core machine two threads contend and run many times slower
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Fixtures shared by the command-line tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

#: The manifest fields of a tiny randomly initialised SCU-Net registered as the BAC default.
RANDOM_SCUNET_FIELDS = {
    "name": "scunet-bac", "version": "0", "task": "bac-segmentation", "architecture": "scunet",
    "preset": "published", "output_type": "probability", "thresholds": {"output": 0.5},
    "input_contract": {"channels": 3, "size": [512, 512], "dtype": "float32", "range": [-2.24, 5.72]},
    "params": {"overlap": 32, "merge": "max", "output_activation": "sigmoid"},
}  # fmt: skip


def _write_random_scunet(folder: Path) -> Path:
    """Register a randomly initialised SCU-Net (seed 0) in ``folder``: the numbers do not matter, the flow does."""
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.mammography.scunet import build_scunet

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(Registry(folder), dict(RANDOM_SCUNET_FIELDS), build_scunet().state_dict())
    return folder


@pytest.fixture(scope="session")
def random_scunet_registry() -> Callable[[Path], Path]:
    """``write(folder) -> folder``: a registry holding a randomly initialised SCU-Net (for module-scoped fixtures)."""
    return _write_random_scunet


@pytest.fixture
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A randomly initialised SCU-Net as the task's default model, found through ``MEDLIM_WEIGHTS_DIR``."""
    folder = _write_random_scunet(tmp_path / "weights")
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(folder))
    return folder

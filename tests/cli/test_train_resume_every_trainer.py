"""Every trainer on a user's folder resumes inside a job with the weights of an uninterrupted run (issue 15).

Each case runs ``medlim train MODEL --data ...`` in the foreground, then again as a
job would run it (``MEDLIM_JOB_CHECKPOINT_DIR`` set), killed right after an
epoch's checkpoint (a :class:`Crash`), and once more: the resumed run registers
each model once, with the same tensors as the uninterrupted run (CPU, same seed).
Slow: a handful of tiny trainings per case (``pytest -m slow``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from medlim.cli import main
from medlim.core.training_resume import ENV_VARIABLE, FitCheckpoint
from medlim.core.weights import Registry
from medlim.core.weights.files import load_state_dict

pytestmark = pytest.mark.slow


class Crash(BaseException):
    """Stands for the worker dying right after a checkpoint."""


def _scunet(root: Path) -> list[str]:
    from tests.mammography.test_folder_training import write_bac_folder

    train, val = write_bac_folder(root / "train", seed=3), write_bac_folder(root / "val", seed=4)
    return ["scunet", "--data", str(train), "--val", str(val), "--epochs", "2", "--steps-per-epoch", "2",
            "--patch-size", "64", "--batch-size", "2"]


def _steatosis(root: Path) -> list[str]:
    from tests.microscopy.steatosis.test_folder_training import write_he_folder

    train, val = write_he_folder(root / "train", seed=21), write_he_folder(root / "val", seed=22)
    return ["steatosis", "--data", str(train), "--val", str(val), "--seed", "3", "--iterations", "2",
            "--steps-per-epoch", "1", "--crop", "64"]


def _cvad(root: Path) -> list[str]:
    from tests.curation.ood.conftest import write_shapes

    return ["cvad", "--data", str(write_shapes(root / "shapes")), "--id-class", "disc", "--width", "2", "--latent",
            "16", "--epochs", "2", "--disc-epochs", "2", "--batch-size", "4"]


def _phantoms(root: Path, kind: str, *args: str) -> Path:
    assert main(["phantom", kind, *args, "--size", "32", "--quiet", "--out", str(root)]) == 0
    return root


def _pms(root: Path) -> list[str]:
    chest = _phantoms(root / "chest", "chest", "--n", "60", "--seed", "3")
    return ["pms", "--data", str(chest), "--input-size", "32", "--width", "4", "--warmup-epochs", "1", "--epochs",
            "2", "--batch-size", "8"]


def _oscars(root: Path) -> list[str]:
    external = _phantoms(root / "external", "radiograph", "--n", "56", "--seed", "3", "--site", "external")
    internal = _phantoms(root / "internal", "radiograph", "--n", "56", "--seed", "4", "--site", "internal")
    return ["oscars", "--data", str(external), "--internal", str(internal), "--detector-epochs", "1",
            "--input-size", "32", "--width", "4", "--epochs", "2"]


#: trainer → (its folder and options, the checkpoint after which the worker dies)
CASES: dict[str, tuple[Callable[[Path], list[str]], int]] = {
    "scunet": (_scunet, 1), "steatosis": (_steatosis, 1), "cvad": (_cvad, 3), "pms": (_pms, 2),
    "oscars": (_oscars, 3),
}


def _tensors(registry: Path) -> dict[tuple[str, str], dict[str, torch.Tensor]]:
    return {(entry.name, entry.version): load_state_dict(entry) for entry in Registry.load(registry).list()}


@pytest.mark.parametrize("trainer", list(CASES))
def test_a_killed_run_resumes_with_the_weights_of_an_uninterrupted_one(
    trainer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make, crash_after = CASES[trainer]
    argv = ["train", *make(tmp_path / "data")]
    assert main([*argv, "--weights-dir", str(tmp_path / "straight")]) == 0
    monkeypatch.setenv(ENV_VARIABLE, str(tmp_path / "job"))
    real, saves = FitCheckpoint.save, []

    def save(self: FitCheckpoint, state) -> None:  # noqa: ANN001
        real(self, state)
        saves.append(self.stage)
        if len(saves) == crash_after:
            raise Crash(f"killed after {saves}")

    with monkeypatch.context() as patch, pytest.raises(Crash):
        patch.setattr(FitCheckpoint, "save", save)
        main([*argv, "--weights-dir", str(tmp_path / "resumed")])
    capsys.readouterr()
    assert main([*argv, "--weights-dir", str(tmp_path / "resumed")]) == 0
    assert "resumed after epoch" in capsys.readouterr().err
    straight, resumed = _tensors(tmp_path / "straight"), _tensors(tmp_path / "resumed")
    assert sorted(resumed) == sorted(straight) and all(version == "1" for _, version in resumed)
    for key, tensors in straight.items():
        assert tensors.keys() == resumed[key].keys()
        for name, value in tensors.items():
            assert torch.allclose(value.float(), resumed[key][name].float(), atol=1e-6, rtol=0), (key, name)

"""The TEND, AE and CVAD training loops of the phantom recipes resume per epoch inside a job (issue 15).

``medlim train tend|cvad`` without ``--data`` trains on phantoms through
:func:`train_autoencoder`, :func:`train_tend` and :func:`train_cvad`. Inside a
job (``MEDLIM_JOB_CHECKPOINT_DIR`` set) and given a key, each stage is saved
after every epoch; a run killed right after the k-th save (a :class:`Crash`)
and started again trains only the epochs after k and ends with the tensors of
an uninterrupted run (CPU, same seed: bit-equal). Tiny sizes: a second each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medlim.core.training_resume import ENV_VARIABLE
from medlim.curation.ood.train import (
    AutoencoderTrainer,
    CvadTrainer,
    OodTrainingConfig,
    TendTrainer,
    train_autoencoder,
    train_cvad,
    train_tend,
)
from tests.resume_helpers import Crash, counting, killed_after, same_tensors

CONFIG = OodTrainingConfig(input_size=64, width=2, embedding=8, latent=8, ae_epochs=2, tend_epochs=3, warmup_epochs=1,
                           cvad_epochs=3, disc_epochs=2, batch_size=4, seed=3)
KEY = ("ood-recipe", "test")


def _images() -> np.ndarray:
    return np.random.default_rng(0).random((10, 64, 64)).astype(np.float32)


def _tend(key: tuple | None) -> dict[str, torch.Tensor]:
    autoencoder = train_autoencoder(_images(), CONFIG, key=key)
    return train_tend(_images(), autoencoder, CONFIG, key=key).state_dict()


def _cvad(key: tuple | None) -> dict[str, torch.Tensor]:
    return train_cvad(_images(), CONFIG, key=key).state_dict()


# AE: 2 saves, then TEND: 3 saves; killed in the AE stage, between the stages, and in TEND
@pytest.mark.parametrize(("crash_after", "ae_left", "tend_left"), [(1, 1, 3), (2, 0, 3), (4, 0, 1)])
def test_tend_recipe_resumes_after_the_last_saved_epoch(crash_after: int, ae_left: int, tend_left: int,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    straight = _tend(KEY)  # outside a job: nothing saved
    monkeypatch.setenv(ENV_VARIABLE, str(tmp_path / "job"))
    with monkeypatch.context() as patch, pytest.raises(Crash):
        killed_after(patch, crash_after)
        _tend(KEY)
    with monkeypatch.context() as patch:
        ae_calls = counting(patch, AutoencoderTrainer, "train_epoch")
        tend_calls = counting(patch, TendTrainer, "train_epoch")
        torch.manual_seed(99)  # a fresh process's global stream: everything used is restored
        resumed = _tend(KEY)
    assert (ae_calls["train_epoch"], tend_calls["train_epoch"]) == (ae_left, tend_left)
    assert same_tensors(resumed, straight)


# generator: 3 saves, then the discriminator: 2
@pytest.mark.parametrize(("crash_after", "generator_left", "discriminator_left"), [(2, 1, 2), (4, 0, 1)])
def test_cvad_recipe_resumes_after_the_last_saved_epoch(crash_after: int, generator_left: int,
                                                        discriminator_left: int, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    straight = _cvad(KEY)
    monkeypatch.setenv(ENV_VARIABLE, str(tmp_path / "job"))
    with monkeypatch.context() as patch, pytest.raises(Crash):
        killed_after(patch, crash_after)
        _cvad(KEY)
    with monkeypatch.context() as patch:
        calls = counting(patch, CvadTrainer, "generator_epoch", "discriminator_epoch")
        resumed = _cvad(KEY)
    assert (calls["generator_epoch"], calls["discriminator_epoch"]) == (generator_left, discriminator_left)
    assert same_tensors(resumed, straight)


def test_without_a_key_nothing_is_saved_even_in_a_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VARIABLE, str(tmp_path / "job"))
    _cvad(None)
    assert not (tmp_path / "job").exists() or not any((tmp_path / "job").iterdir())

"""OSCARS's anomaly detectors and the retrieval phantom recipes resume per epoch inside a job (issue 15).

Each case runs once straight through, then as a job runs it (its folder in
``MEDLIM_JOB_CHECKPOINT_DIR``) killed right after the k-th per-epoch
checkpoint (a :class:`Crash`), then once more: the resumed attempt trains only
the epochs after k and ends with the tensors of the uninterrupted run (CPU,
same seed, bit-equal). Tiny sizes keep each case to a few seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from medlim.core.training import Deadline
from medlim.core.training_resume import ENV_VARIABLE
from medlim.core.weights import Registry
from medlim.core.weights.files import load_state_dict
from medlim.curation.ood.train import CvadTrainer
from medlim.curation.retrieval import anomaly as anomaly_module
from medlim.curation.retrieval import recipe
from medlim.curation.retrieval.anomaly import fit_class_anomaly_within
from medlim.curation.retrieval.train import EmbeddingTrainer, PmsTrainer, RetrievalTrainingConfig
from medlim.curation.shift.detectors import DetectorConfig
from tests.resume_helpers import Crash, counting, killed_after, same_tensors


@pytest.fixture()
def job_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A job's folder, as the job runner names it (outside it nothing is saved)."""
    folder = tmp_path / "job"
    monkeypatch.setenv(ENV_VARIABLE, str(folder))
    return folder


# -------------------------------------------------------------------------------------------------
# the detectors stage of `medlim train oscars --data E --internal I`

_CONFIG = DetectorConfig(kind="cvad", input_size=32, width=2, latent=8, epochs=3, head_epochs=2, batch_size=4,
                         seed=5)
_KEY = ("medlim train oscars --data fingerprint --internal fingerprint", {"plan": 1})


def _internal() -> tuple[np.ndarray, list[str]]:
    """Two classes of 6 images (every fifth held back: 5 train each), 32×32 float32 in [0, 1]."""
    rng = np.random.default_rng(0)
    return rng.random((12, 32, 32)).astype(np.float32), ["hand"] * 6 + ["knee"] * 6


def _detectors(progress: list[str] | None = None) -> anomaly_module.ClassAnomaly:
    images, classes = _internal()
    return fit_class_anomaly_within(images, classes, _CONFIG, deadline=Deadline(None),
                                    progress=None if progress is None else progress.append, key=_KEY)


# per class: 3 generator + 2 discriminator checkpoints; the worker dies in the middle of one class's
# generator, between its two stages, and in the second class
@pytest.mark.parametrize("crash_after", [2, 3, 7])
def test_oscars_detectors_resume_after_the_last_saved_epoch(crash_after: int, job_folder: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VARIABLE)
    straight = _detectors()
    monkeypatch.setenv(ENV_VARIABLE, str(job_folder))
    with monkeypatch.context() as patch, pytest.raises(Crash):
        killed_after(patch, crash_after)
        _detectors()
    lines: list[str] = []
    with monkeypatch.context() as patch:
        epochs = counting(patch, CvadTrainer, "generator_epoch", "discriminator_epoch")
        torch.manual_seed(123)  # a fresh process: other global streams, all restored from the checkpoint
        resumed = _detectors(lines)
    assert sum(epochs.values()) == 2 * (3 + 2) - crash_after  # nothing trained twice
    stage, epoch = ("generator", crash_after) if crash_after <= 3 else ("discriminator", crash_after - 3)
    if crash_after > 5:
        stage, epoch = "generator", crash_after - 5
    name = "hand" if crash_after <= 5 else "knee"
    assert f"anomaly detector {name!r} {stage}: resumed after epoch {epoch} from the job's checkpoint" in lines
    for cls in ("hand", "knee"):
        assert same_tensors(resumed.detectors.detectors[cls].model.state_dict(),
                     straight.detectors.detectors[cls].model.state_dict())
        assert np.array_equal(resumed.detectors.internal_scores[cls], straight.detectors.internal_scores[cls])
    assert resumed.reference == straight.reference


def test_detectors_of_another_run_are_not_resumed(job_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images, classes = _internal()
    with monkeypatch.context() as patch, pytest.raises(Crash):
        killed_after(patch, 2)
        _detectors()
    lines: list[str] = []
    with monkeypatch.context() as patch:
        epochs = counting(patch, CvadTrainer, "generator_epoch", "discriminator_epoch")
        fit_class_anomaly_within(images, classes, _CONFIG, deadline=Deadline(None), progress=lines.append,
                                 key=("another command", {"plan": 1}))
    assert sum(epochs.values()) == 10 and not any("resumed" in line for line in lines)


def test_detectors_outside_a_job_save_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    _detectors()
    assert list(tmp_path.rglob("*.pt")) == []


# -------------------------------------------------------------------------------------------------
# the phantom recipes (`medlim train oscars|pms` without --data)


def _tensors(registry: Path) -> dict[tuple[str, str], dict[str, torch.Tensor]]:
    return {(entry.name, entry.version): load_state_dict(entry) for entry in Registry.load(registry).list()}


def _pms_recipe(registry: Path, log: list[str] | None = None) -> None:
    config = RetrievalTrainingConfig(seed=1, input_size=32, width=4, epochs=2, warmup_epochs=1, branch_dim=8,
                                     bank_size=16, batch_size=16)
    recipe.train_pms_recipe(seed=1, n=32, heldout_n=52, config=config, registry=Registry(registry),
                            command="test", log=None if log is None else log.append)


@pytest.fixture(scope="module")
def straight_pms(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, torch.Tensor]]:
    """The PMS recipe run in the foreground (no job: nothing saved)."""
    registry = tmp_path_factory.mktemp("straight")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(ENV_VARIABLE, raising=False)
        _pms_recipe(registry)
    return _tensors(registry)


@pytest.mark.parametrize("crash_after", [1, 2])  # after the warm-up (bank filled), after a joint epoch
def test_pms_recipe_resumes_with_the_weights_of_an_uninterrupted_run(crash_after: int, tmp_path: Path,
                                                                     job_folder: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     straight_pms: dict) -> None:
    with monkeypatch.context() as patch, pytest.raises(Crash):
        killed_after(patch, crash_after)
        _pms_recipe(tmp_path / "resumed")
    lines: list[str] = []
    with monkeypatch.context() as patch:
        epochs = counting(patch, PmsTrainer, "train_epoch")
        torch.manual_seed(99)
        _pms_recipe(tmp_path / "resumed", lines)
    assert epochs["train_epoch"] == 3 - crash_after
    assert f"pms: resumed after epoch {crash_after} from the job's checkpoint" in lines
    straight, resumed = straight_pms, _tensors(tmp_path / "resumed")
    assert list(resumed) == list(straight) == [("pms-chest", recipe.PMS_VERSION)]
    assert same_tensors(resumed[("pms-chest", recipe.PMS_VERSION)], straight[("pms-chest", recipe.PMS_VERSION)])


def _oscars_recipe(registry: Path) -> None:
    config = RetrievalTrainingConfig(seed=1, input_size=32, width=4, epochs=2, anchors=8)
    recipe.train_oscars_family(seed=1, per_class=4, internal_per_class=5, heldout_per_class=15,
                               methods=("oscars", "triplet"), config=config, registry=Registry(registry),
                               command="test")


@pytest.fixture()
def short_detectors(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """2 + 1 epochs per class's detector; each phantom set generated once for the three runs."""
    import functools

    from medlim.curation.ood import data

    monkeypatch.setattr(anomaly_module, "RETRIEVAL_DETECTOR_EPOCHS", (2, 1))
    monkeypatch.setattr(data, "phantom_set", functools.cache(data.phantom_set))
    yield


def test_oscars_recipe_resumes_after_its_detectors_with_the_same_weights(tmp_path: Path, job_folder: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         short_detectors: None) -> None:
    from medlim.phantoms.radiograph import BODY_PARTS

    monkeypatch.delenv(ENV_VARIABLE)
    _oscars_recipe(tmp_path / "straight")
    monkeypatch.setenv(ENV_VARIABLE, str(job_folder))
    detector_saves = 3 * len(BODY_PARTS)
    with monkeypatch.context() as patch, pytest.raises(Crash):
        saved = killed_after(patch, detector_saves + 1)  # every detector, then OSCARS's first epoch
        _oscars_recipe(tmp_path / "resumed")
    assert saved[-1] == "oscars" and saved[-2] == f"detector-{len(BODY_PARTS) - 1}-discriminator"
    with monkeypatch.context() as patch:
        detector_epochs = counting(patch, CvadTrainer, "generator_epoch", "discriminator_epoch")
        embedding_epochs = counting(patch, EmbeddingTrainer, "train_epoch")
        torch.manual_seed(7)
        _oscars_recipe(tmp_path / "resumed")
    assert sum(detector_epochs.values()) == 0  # the detectors are restored, not trained again
    assert embedding_epochs["train_epoch"] == 1 + 2  # OSCARS's second epoch, the triplet's two
    straight, resumed = _tensors(tmp_path / "straight"), _tensors(tmp_path / "resumed")
    assert sorted(resumed) == sorted(straight) == [("oscars-radiograph", recipe.VERSION),
                                                   ("triplet-radiograph", recipe.VERSION)]
    for key, tensors in straight.items():
        assert same_tensors(resumed[key], tensors), key

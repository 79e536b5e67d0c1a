"""Per-class anomaly scores and their bins: OSCARS's intra-class labels (thesis §6.1.2, "Learning intra-class information").

OSCARS follows MedShift (thesis ch. 5): one anomaly detector per class is
trained on the clean internal data, every external image is scored by its
class's detector, and each class's scores are split into B = 5 bins by 1-D
k-means (bins ordered by ascending score). This module is a thin adapter over
:mod:`medlim.curation.shift` (``fit_class_detectors``, ``class_detector``,
``score_by_class``, ``group_scores``) so that retrieval uses exactly MedShift's
scores, calibration and bins.

On a user's internal folder (``medlim train oscars --data E --internal I``)
the detectors train inside the command's time budget
(:func:`fit_class_anomaly_within`): each class gets an equal share of the
detectors' budget and stops at an epoch boundary when it is spent. Inside a
job every detector epoch is saved and a resumed job goes on from there
(issue 15; :func:`medlim.core.training.run_epochs`).

For the outlier-sensitivity metric S@K the thesis squashes MURA's scores into
[0, 1] with a sigmoid; here each score is first standardised with its class's
internal reference scores (a fixed reference, never the batch being scored):
``A = sigmoid((S − mean_c) / std_c)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlim.errors import ParameterError

__all__ = ["N_BINS", "ClassAnomaly", "fit_class_anomaly", "fit_class_anomaly_within", "anomaly_bins",
           "scaled_anomaly"]

#: OSCARS's number of intra-class bins (thesis: B = 5 by the elbow method).
N_BINS = 5
#: (generator, head) epochs of the per-class detectors behind OSCARS's bins and S@K.
RETRIEVAL_DETECTOR_EPOCHS = (20, 10)


@dataclass(frozen=True)
class ClassAnomaly:
    """Per-class detectors and the reference used to scale their scores.

    Attributes:
        detectors: MedShift's ``ClassDetectors`` (one detector per class).
        reference: class → ``(mean, std)`` of the class's internal reference scores.
    """

    detectors: Any
    reference: Mapping[str, tuple[float, float]]

    def score(self, images: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        """Raw scores of images by their class's detector: ``np.ndarray[N]`` float64."""
        from medlim.curation.shift.detectors import score_by_class

        return score_by_class(self.detectors, np.asarray(images, np.float32), classes)

    def scaled(self, scores: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        """Scores in (0, 1) for S@K (see the module docstring)."""
        return scaled_anomaly(scores, classes, self.reference)


def fit_class_anomaly(
    images: np.ndarray,
    classes: Sequence[str],
    *,
    seed: int = 0,
    kind: str = "cvad",
    log: Callable[[str], None] | None = None,
    key: Sequence[Any] | None = None,
) -> ClassAnomaly:
    """Train MedShift's per-class detectors on internal images (at the detector's input size).

    CVADs (the thesis's and the recipes' choice) train through
    :func:`fit_class_anomaly_within` without a time limit: the same networks as
    MedShift's :func:`~medlim.curation.shift.detectors.fit_class_detectors`,
    saved after every epoch and resumed inside a job when ``key`` is given.

    Args:
        images: internal ``np.ndarray[N, H, W]`` float32 in [0, 1] (resized to the detector size here).
        classes: class of each image.
        seed: training seed.
        kind: ``"cvad"`` (thesis) or ``"tend"``.
        log: training log lines.
        key: what identifies the run (a recipe's settings), for a job's per-epoch checkpoints; ``None``: none.
    """
    from medlim.core.training import Deadline
    from medlim.curation.ood.data import stack_inputs
    from medlim.curation.shift.detectors import DetectorConfig, fit_class_detectors

    # OSCARS keeps the detector schedule its shipped models were trained with
    # (MedShift's own default later rose to 60 + 20 epochs).
    config = DetectorConfig(kind=kind, seed=seed, epochs=RETRIEVAL_DETECTOR_EPOCHS[0],
                            head_epochs=RETRIEVAL_DETECTOR_EPOCHS[1])
    inputs = stack_inputs(np.asarray(images, np.float32), config.input_size)
    if kind == "cvad":
        return fit_class_anomaly_within(inputs, classes, config, deadline=Deadline(None), progress=log,
                                        report_every=1, key=key)
    detectors = fit_class_detectors(inputs, classes, config, log=log)
    reference = {name: (float(np.mean(values)), float(np.std(values)) or 1.0)
                 for name, values in detectors.internal_scores.items()}
    return ClassAnomaly(detectors=detectors, reference=reference)


def _detector_parts(trainer: Any, *names: str) -> Callable[[], dict[str, Any]]:
    """The CVAD trainer's attributes ``names`` (network, optimisers, batch order, counters) for a job's checkpoint."""
    return lambda: {name: getattr(trainer, name) for name in names}


def _detector_apply(trainer: Any) -> Callable[[Mapping[str, Any]], None]:
    def apply(values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            setattr(trainer, name, int(value))

    return apply


def _train_class_cvad(trainer: Any, index: int, name: str, train: np.ndarray, config: Any, *, share: Any,
                      progress: Callable[[str], None] | None, report_every: int,
                      key: Sequence[Any] | None) -> tuple[int, int]:
    """The generator's epochs, then the discriminator's, of one class's CVAD (each saved per epoch in a job)."""
    import hashlib

    import torch

    from medlim.core.training import run_epochs
    from medlim.core.training_resume import fit_resume

    def resume(stage: str, parts: Callable[[], dict[str, Any]]) -> Any:
        if key is None:
            return None
        digest = hashlib.sha256(np.ascontiguousarray(train).tobytes()).hexdigest()
        return fit_resume(f"detector-{index}-{stage}", (*key, name, config.to_dict(), digest), parts,
                          apply=_detector_apply(trainer))

    generator_share = share.share(config.epochs / (config.epochs + config.head_epochs))
    generator = run_epochs(lambda _epoch: trainer.generator_epoch(), epochs=config.epochs, deadline=generator_share,
                           label=f"anomaly detector {name!r} generator", progress=progress,
                           report_every=report_every,
                           resume=resume("generator", _detector_parts(trainer, "model", "optimiser", "order",
                                                                      "generator_done")))
    if trainer.disc_optimiser is None:  # made here rather than in its first epoch, so a checkpoint can hold it
        trainer.disc_optimiser = torch.optim.Adam(trainer.model.discriminator.parameters(), lr=trainer.config.lr)
    parts = _detector_parts(trainer, "model", "optimiser", "disc_optimiser", "order", "generator_done",
                            "discriminator_done")
    discriminator = run_epochs(lambda _epoch: trainer.discriminator_epoch(), epochs=config.head_epochs,
                               deadline=share, label=f"anomaly detector {name!r} discriminator", progress=progress,
                               report_every=report_every, resume=resume("discriminator", parts))
    return generator, discriminator


def fit_class_anomaly_within(images: np.ndarray, classes: Sequence[str], config: Any, *, deadline: Any,
                             budget: Any = None, progress: Callable[[str], None] | None = None,
                             report_every: int = 10, key: Sequence[Any] | None = None) -> ClassAnomaly:
    """MedShift's per-class CVADs on internal images, inside a time budget.

    Each class gets an equal share of what is left of ``deadline`` and trains
    its generator, then its discriminator, epoch by epoch (at least one each)
    until its planned epochs are done or its share is spent. Every fifth image
    of a class is held back for its reference range and scores. The epochs run
    under :func:`medlim.core.training.run_epochs`: inside a job (and with a
    ``key``) each is saved, and a resumed job goes on after the last saved
    epoch — a finished detector is restored, not trained again.

    Args:
        images: internal ``np.ndarray[N, s, s]`` float32 in [0, 1], ``s = config.input_size``.
        classes: class of each image.
        config: :class:`medlim.curation.shift.detectors.DetectorConfig` (``kind="cvad"``).
        deadline: the detectors' :class:`medlim.core.training.Deadline`.
        budget: the whole command's deadline (default ``deadline``): once it is spent no
            further detector starts.
        progress: progress lines.
        report_every: pass on every ``report_every``-th epoch's line (and each stage's last).
        key: what identifies the run (the recorded command and plan, or a recipe's settings) for a job's
            per-epoch checkpoints; ``None``: nothing saved or read.

    Raises:
        ParameterError: a class with fewer than 5 internal images, or images of the wrong size.
        NotValidatedError: the command's budget ran out before every class had its detector.
    """
    from medlim.core.training import NotValidatedError
    from medlim.curation.ood.train import CvadTrainer
    from medlim.curation.shift.detectors import ClassDetectors, class_detector, split_internal

    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(list(classes), dtype=object)
    if images.ndim != 3 or images.shape[1:] != (config.input_size, config.input_size) or len(labels) != len(images):
        raise ParameterError(f"internal images must be [N, {config.input_size}, {config.input_size}] with N classes; "
                             f"shape {images.shape} and {len(labels)} classes are given.")
    held = split_internal(labels.tolist())
    names = sorted(set(labels.tolist()))
    detectors, internal_scores = {}, {}
    for done, name in enumerate(names):
        train, reference = images[(labels == name) & ~held], images[(labels == name) & held]
        if len(train) < 2 or len(reference) < 1:
            raise ParameterError(f"class {name!r} has {int((labels == name).sum())} internal images; "
                                 "its anomaly detector needs at least 5.")
        if (budget or deadline).expired():
            raise NotValidatedError(
                f"the time budget ({(budget or deadline).describe()}) ran out after "
                f"{(budget or deadline).elapsed():.1f} s, before the anomaly detector of class {name!r} (OSCARS's "
                "bins) was trained; nothing was registered. Give more minutes, or fewer or smaller images.")
        share = deadline.share(1.0 / (len(names) - done))
        trainer = CvadTrainer(train, config.training_config())
        ran = _train_class_cvad(trainer, done, name, train, config, share=share, progress=progress,
                                report_every=report_every, key=key)
        detectors[name], internal_scores[name] = class_detector(
            "cvad", trainer.model.eval(), {"input_size": config.input_size, "id_classes": [name]}, reference, name=name)
        if progress is not None:
            progress(f"anomaly detector {done + 1}/{len(names)} ({name}): {ran[0]} generator + {ran[1]} "
                     f"discriminator epochs on {len(train)} internal images")
    fitted = ClassDetectors(kind="cvad", detectors=detectors, internal_scores=internal_scores, config=config)
    reference_stats = {name: (float(np.mean(values)), float(np.std(values)) or 1.0)
                       for name, values in internal_scores.items()}
    return ClassAnomaly(detectors=fitted, reference=reference_stats)


def anomaly_bins(scores: np.ndarray, classes: Sequence[str], *, n_bins: int = N_BINS, seed: int = 0) -> np.ndarray:
    """Bin each class's scores by 1-D k-means (MedShift grouping): ``np.ndarray[N]`` int64, 0 = lowest scores."""
    from medlim.curation.shift.grouping import group_scores

    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ParameterError(f"`n_bins` must be a positive integer, {n_bins!r} is given.")
    return group_scores(np.asarray(scores, np.float64), list(classes), k=n_bins, seed=seed).groups


def scaled_anomaly(scores: np.ndarray, classes: Sequence[str], reference: Mapping[str, tuple[float, float]]) -> np.ndarray:
    """``sigmoid((S − mean_c)/std_c)`` with each class's reference: ``np.ndarray[N]`` float64 in (0, 1)."""
    values = np.asarray(scores, dtype=np.float64)
    labels = list(classes)
    if len(labels) != len(values):
        raise ParameterError(f"{len(values)} scores but {len(labels)} classes are given.")
    from scipy.special import expit

    z = np.empty(len(values))
    for i, (value, name) in enumerate(zip(values, labels)):
        if name not in reference:
            raise ParameterError(f"no anomaly reference for class {name!r}; known: {sorted(reference)}.")
        mean, std = reference[name]
        z[i] = (value - mean) / std
    return expit(z)

"""One anomaly detector per internal class (thesis ch. 5, MedShift steps 1–2).

Each class of the internal dataset gets its own CVAD (default) or TEND,
trained on that class's internal images only with the training loops of
:mod:`medlim.curation.ood.train`. The MedShift score of an external image is its
class detector's score (:func:`medlim.curation.ood.scoring.combine_parts`):

* CVAD: ``S = 0.5·(rec/(rec_max − rec_min) + dis)`` = ½(S_rec + S_dis) with
  S_rec the reconstruction error scaled by a fixed reference range measured on
  the class's held-back internal images (so one image's score never depends on
  the other external images) and S_dis the discriminator's probability;
* TEND: ``S = λ·p + (1 − λ)·d/R``.

Default sizes (64×64 inputs, width 4, CVAD latent 32 / TEND embedding 64,
20 generator or autoencoder epochs + 10 discriminator or head epochs, batch 16)
train 7 classes × 96 images in about 3–10 CPU minutes on one core (measured
under heavy load; ``benchmarks/bench_shift.py``); smaller inputs (32, CVAD only)
are faster but lose the fine shifts (noise, markers, thin detector lines).
Every fifth internal image of a class (by file order) is held back
for the reference range and the internal score histogram.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from medlim.errors import ParameterError

__all__ = ["SHIFT_DETECTORS", "DetectorConfig", "ClassDetectors", "split_internal", "class_detector",
           "fit_class_detectors", "score_by_class"]

SHIFT_DETECTORS: tuple[str, ...] = ("cvad", "tend")
Log = Callable[[str], None]


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of the per-class detectors.

    Attributes:
        kind: ``"cvad"`` or ``"tend"``.
        input_size: square input side (a multiple of 32).
        width: base channel count of the networks.
        latent: CVAD latent size K; embedding: TEND embedding size.
        epochs: CVAD generator epochs / TEND autoencoder epochs (default 60:
            on validation phantoms — internal seed 103, external seed 204 —
            CVAD AUROC against the known shift rose from 0.834 at 20 + 10
            epochs to 0.981 at 60 + 20).
        head_epochs: CVAD discriminator epochs / TEND head epochs (default 20).
        batch_size, lr, seed, threads: training settings.
    """

    kind: str = "cvad"
    input_size: int = 64
    width: int = 4
    latent: int = 32
    embedding: int = 64
    epochs: int = 60
    head_epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.kind not in SHIFT_DETECTORS:
            raise ParameterError(f"`detector` must be one of {SHIFT_DETECTORS}, {self.kind!r} is given.")
        multiple = 64 if self.kind == "tend" else 32
        if isinstance(self.input_size, bool) or not isinstance(self.input_size, int) or self.input_size % multiple \
                or self.input_size < multiple:
            raise ParameterError(f"{self.kind} needs `input_size` a positive multiple of {multiple}, "
                                 f"{self.input_size!r} is given.")
        if self.kind == "tend" and self.head_epochs < 2:
            raise ParameterError(f"TEND needs `head_epochs` ≥ 2 (one warm-up epoch), {self.head_epochs!r} is given.")

    def training_config(self) -> Any:
        """The :class:`medlim.curation.ood.train.OodTrainingConfig` these settings mean."""
        from medlim.curation.ood.train import OodTrainingConfig

        return OodTrainingConfig(
            input_size=self.input_size, width=self.width, embedding=self.embedding, latent=self.latent,
            ae_epochs=self.epochs, tend_epochs=max(2, self.head_epochs), warmup_epochs=min(2, self.head_epochs - 1),
            cvad_epochs=self.epochs, disc_epochs=self.head_epochs, batch_size=self.batch_size, lr=self.lr,
            seed=self.seed, threads=self.threads)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClassDetectors:
    """The trained detectors and the internal reference scores.

    Attributes:
        kind: detector kind.
        detectors: class → :class:`medlim.curation.ood.scoring.Detector`.
        internal_scores: class → ``np.ndarray[M]`` scores of the held-back internal images.
        config: the settings used.
    """

    kind: str
    detectors: Mapping[str, Any]
    internal_scores: Mapping[str, np.ndarray]
    config: DetectorConfig


def split_internal(classes: Sequence[str], *, every: int = 5) -> np.ndarray:
    """Boolean ``np.ndarray[N]``: the held-back images (every ``every``-th of each class, by order)."""
    labels = np.asarray(list(classes), dtype=object)
    held = np.zeros(len(labels), bool)
    for name in set(labels.tolist()):
        rows = np.nonzero(labels == name)[0]
        held[rows[every - 1 :: every]] = True
    return held


def _train_one(images: np.ndarray, config: DetectorConfig, log: Log | None) -> tuple[Any, dict[str, Any]]:
    from medlim.curation.ood.train import train_autoencoder, train_cvad, train_tend

    training = config.training_config()
    params: dict[str, Any] = {"input_size": config.input_size}
    if config.kind == "cvad":
        return train_cvad(images, training, log=log), params
    autoencoder = train_autoencoder(images, training, log=log)
    params.update(weight=training.weight, margin=float(training.margin))
    return train_tend(images, autoencoder, training, log=log), params


def class_detector(kind: str, model: Any, params: Mapping[str, Any], reference: np.ndarray, *,
                   name: str) -> tuple[Any, np.ndarray]:
    """A class's trained detector calibrated on its held-back images, and their scores.

    The range makes one image's score independent of the other images scored
    (thesis eq. 4.8 with a fixed reference, not the authors' min-max over the
    test set). When the reference images are too few or too alike for a range
    (span under a tenth of the maximum), the error is scaled by the maximum alone.

    Args:
        kind: ``"cvad"`` or ``"tend"`` (TEND needs no range).
        model: the trained network.
        params: score parameters with ``input_size`` and ``id_classes``.
        reference: the class's held-back internal images, ``np.ndarray[M, s, s]`` float32 in [0, 1].
        name: the class (the detector is named ``f"{kind}-{name}"``).

    Returns:
        ``(detector, reference scores)``: a :class:`medlim.curation.ood.scoring.Detector`
        whose threshold is the reference maximum (unused by MedShift: its groups
        replace it), and the ``np.ndarray[M]`` float64 scores of the reference images.
    """
    from medlim.curation.ood.scoring import Detector

    calibrated = dict(params)
    if kind == "cvad":
        raw = Detector("cvad", model, {**calibrated, "rec_min": 0.0, "rec_max": 1.0}, threshold=0.0, name=name)
        rec = raw.parts(reference)["rec"]
        low, high = float(rec.min()), float(rec.max())
        if high - low < 0.1 * high:
            low = 0.0
        calibrated["rec_min"], calibrated["rec_max"] = low, max(high, low + 1e-12)
    detector = Detector(kind, model, calibrated, threshold=float("inf"), name=f"{kind}-{name}")
    scores = detector.score(reference).score
    detector.threshold = float(scores.max())
    return detector, scores


def fit_class_detectors(
    images: np.ndarray,
    classes: Sequence[str],
    config: DetectorConfig,
    *,
    log: Log | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ClassDetectors:
    """Train one detector per class on internal images.

    Args:
        images: internal ``np.ndarray[N, s, s]`` float32 in [0, 1], ``s = config.input_size``.
        classes: class of each image.
        config: detector settings.
        log: training log lines.
        progress: ``progress(classes done, classes)``.

    Returns:
        :class:`ClassDetectors`.
    """
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(list(classes), dtype=object)
    if images.ndim != 3 or images.shape[1:] != (config.input_size, config.input_size) or len(labels) != len(images):
        raise ParameterError(f"internal images must be [N, {config.input_size}, {config.input_size}] with N classes; "
                             f"shape {images.shape} and {len(labels)} classes are given.")
    held = split_internal(labels)
    names = sorted(set(labels.tolist()))
    detectors: dict[str, Any] = {}
    internal_scores: dict[str, np.ndarray] = {}
    for done, name in enumerate(names):
        train = images[(labels == name) & ~held]
        reference = images[(labels == name) & held]
        if len(train) < 2 or len(reference) < 1:
            raise ParameterError(f"class {name!r} has {int((labels == name).sum())} internal images; "
                                 "a detector needs at least 5.")
        if log:
            log(f"{config.kind} detector for {name!r}: {len(train)} training, {len(reference)} reference images")
        model, params = _train_one(train, config, log)
        detectors[name], internal_scores[name] = class_detector(
            config.kind, model, {**params, "id_classes": [name]}, reference, name=name)
        if progress is not None:
            progress(done + 1, len(names))
    return ClassDetectors(kind=config.kind, detectors=detectors, internal_scores=internal_scores, config=config)


def score_by_class(models: ClassDetectors, images: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Score each image with its class's detector: ``np.ndarray[N]`` float64 (NaN for an unknown class)."""
    labels = np.asarray(list(classes), dtype=object)
    scores = np.full(len(labels), np.nan)
    for name in set(labels.tolist()):
        rows = labels == name
        detector = models.detectors.get(name)
        if detector is not None:
            scores[rows] = detector.score(images[rows]).score
    return scores

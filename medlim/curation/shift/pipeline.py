"""The MedShift pipeline: internal models → streamed external scores → groups, TOP-k and OTDD (thesis ch. 5).

Three stages, each usable on its own so that a page can show progress and
keep results between reruns:

1. :func:`fit_internal` reads the internal dataset (it has to be in memory to
   train on), trains one detector per class and the classifier G, and keeps a
   capped random sample of internal features for OTDD.
2. :func:`score_external` streams the external dataset in batches: every batch
   is scored by its classes' detectors and by G, and only the images of a
   random OTDD pool (at most ``otdd_pool``) keep their features. Memory is
   bounded by the batch, the per-image numbers (score and C probabilities)
   and the pool — not by the size of the dataset. Its per-batch work is
   :func:`score_images`; with a Ray engine (:mod:`medlim.core.engines`, issue 15)
   the images are read in Ray tasks (:func:`read_external_image`) and the same
   :func:`score_images` runs in model actors (:func:`score_read_images`).
With ``ShiftConfig.stats`` on (the default; a stated deviation, issue 13) the
images are read at ``stats_size`` (256 px), their acquisition statistics
(:mod:`medlim.curation.image_statistics`) are scored against a per-class
reference (:mod:`.acquisition`) and fused with the class detector's score;
the detectors still see the images area-resized to their input side.
``stats=False`` is the thesis's MedShift (the detector's score alone).

3. :func:`analyse` groups the scores per class (one k, the elbow rule of
   :mod:`.grouping`), evaluates G on TOP k … TOP 1 and measures OTDD between
   the internal pool and each TOP-j part of the external pool.

:func:`run_shift` runs all three. Progress goes to ``progress(stage, done, total)``.

An image whose pixels do not decode (a truncated PNG passes the listing's
first-bytes test) is left out when stage 1 or 2 reads it, once, with the reader's
message: a :class:`~medlim.curation.shift.check.LeftOutImage` in the result and a
``log`` line, and the run goes on with the rest (an internal class left with too
few images still stops it, saying so).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from medlim.curation.image_statistics import FUSION_RULES, STATS_SIZE, acquisition_feature_matrix
from medlim.curation.shift.acquisition import ClassAcquisition, acquisition_by_class, fit_class_acquisition, fuse_by_class
from medlim.curation.shift.check import MIN_CLASS_IMAGES, LeftOutImage, too_few_images
from medlim.curation.shift.classifier import (
    ClassifierConfig,
    TopKRow,
    predict,
    topk_table,
    train_classifier,
)
from medlim.curation.shift.data import ImageSet, iter_batches
from medlim.curation.shift.detectors import (
    ClassDetectors,
    DetectorConfig,
    fit_class_detectors,
    score_by_class,
    split_internal,
)
from medlim.curation.shift.grouping import GROUP_ANCHORS, GROUP_SCALES, Grouping, group_scores
from medlim.curation.shift.otdd import FEATURES, OtddResult, otdd_repeated
from medlim.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.engines import Engine

__all__ = [
    "FEATURES",
    "ShiftConfig",
    "InternalModels",
    "ExternalScores",
    "ShiftResult",
    "fit_internal",
    "score_external",
    "ScoringModels",
    "score_images",
    "read_external_image",
    "score_read_images",
    "analyse",
    "run_shift",
    "shift_evidence",
    "shift_type_evidence",
]

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]


@dataclass(frozen=True)
class ShiftConfig:
    """Settings of a MedShift run.

    Attributes:
        detector: per-class detector settings (its ``input_size`` is the side images are read at).
        classifier: G's settings.
        classifier_size: G's input side (images are area-resized from the detector side).
        k: ``"auto"`` (elbow rule) or the number of groups.
        k_range: candidate k for the elbow curve.
        group_scale: ``"log"`` (default; k-means on log scores — a stated
            deviation, see :mod:`medlim.curation.shift.grouping`) or ``"raw"`` (the thesis).
        group_anchor: ``"threshold"`` (default; each class's lowest group is exactly its
            images below the class detector's calibrated threshold, k-means groups the rest —
            a stated deviation, :mod:`medlim.curation.shift.grouping`) or ``"none"`` (the thesis).
        features: OTDD features, ``"embedding"`` (G's pooled features) or ``"pixels"``.
        otdd_max_samples: per-repeat cap on each side's samples.
        otdd_repeats: repeats (thesis 10).
        otdd_pool: at most this many internal and external images keep features.
        batch_size: images read per streamed batch.
        seed: seed of k-means, the OTDD pools and the OTDD subsamples.
        stats: fuse the detector's score with the acquisition-statistics score
            (default on, a stated deviation chosen on validation phantoms — see
            :mod:`medlim.curation.shift.acquisition`); ``False``: the thesis.
        fusion: how the two are fused, ``"max"`` or ``"mean"`` of the calibrated ratios.
        stats_size: side in px the statistics are computed at (images are read at it).
    """

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    classifier_size: int = 32
    k: int | str = "auto"
    k_range: tuple[int, int] = (1, 8)
    group_scale: str = "log"
    group_anchor: str = "threshold"
    features: str = "embedding"
    otdd_max_samples: int = 500
    otdd_repeats: int = 10
    otdd_pool: int = 5000
    batch_size: int = 256
    seed: int = 0
    stats: bool = True
    fusion: str = "max"
    stats_size: int = STATS_SIZE

    def __post_init__(self) -> None:
        if not isinstance(self.stats, bool):
            raise ParameterError(f"`stats` must be True or False, {self.stats!r} is given.")
        if self.fusion not in FUSION_RULES:
            raise ParameterError(f"`fusion` must be one of {FUSION_RULES}, {self.fusion!r} is given.")
        if isinstance(self.stats_size, bool) or not isinstance(self.stats_size, int) or self.stats_size < 16:
            raise ParameterError(f"`stats_size` must be an integer ≥ 16, {self.stats_size!r} is given.")
        if self.group_scale not in GROUP_SCALES:
            raise ParameterError(f"`group_scale` must be one of {GROUP_SCALES}, {self.group_scale!r} is given.")
        if self.group_anchor not in GROUP_ANCHORS:
            raise ParameterError(f"`group_anchor` must be one of {GROUP_ANCHORS}, {self.group_anchor!r} is given.")
        if self.features not in FEATURES:
            raise ParameterError(f"`features` must be one of {FEATURES}, {self.features!r} is given.")
        if not (self.k == "auto" or (isinstance(self.k, int) and not isinstance(self.k, bool) and self.k >= 1)):
            raise ParameterError(f"`k` must be 'auto' or a positive integer, {self.k!r} is given.")
        for name in ("otdd_max_samples", "otdd_repeats", "otdd_pool", "batch_size", "classifier_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"`{name}` must be a positive integer, {value!r} is given.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def read_size(self) -> int:
        """Side in px images are read at: the larger of ``stats_size`` and the detector's with the statistics on."""
        return max(self.stats_size, self.detector.input_size) if self.stats else self.detector.input_size

    @property
    def method(self) -> str:
        """What scores the images, for reports: ``"medshift-cvad"`` or ``"medshift-cvad+stats"``."""
        return f"medshift-{self.detector.kind}{'+stats' if self.stats else ''}"


@dataclass(frozen=True)
class InternalModels:
    """What the internal dataset teaches.

    Attributes:
        detectors: the per-class detectors and held-back internal scores.
        classifier: G (eval mode).
        class_names: G's classes, in label order (sorted internal classes).
        features: ``np.ndarray[P, F]`` float32 OTDD features of the internal pool.
        labels: ``np.ndarray[P]`` int class indices of the pool.
        heldout_accuracy: G's accuracy on the held-back internal images.
        n_images: internal images.
        acquisition: the per-class acquisition references (``None`` with the statistics off).
        internal_scores: class → held-back internal MedShift scores (fused with the
            statistics on, else the detectors').
        left_out: the internal folder's files not used: no image (the listing's) or not decodable.
    """

    detectors: ClassDetectors
    classifier: Any
    class_names: tuple[str, ...]
    features: np.ndarray
    labels: np.ndarray
    heldout_accuracy: float
    n_images: int
    acquisition: ClassAcquisition | None = None
    internal_scores: Mapping[str, np.ndarray] | None = None
    left_out: tuple[LeftOutImage, ...] = ()

    @property
    def scores_of_internal(self) -> Mapping[str, np.ndarray]:
        """class → held-back internal MedShift scores."""
        return self.internal_scores if self.internal_scores is not None else self.detectors.internal_scores


@dataclass(frozen=True)
class ExternalScores:
    """Streamed results of the external dataset (images of unknown classes left out).

    Attributes:
        positions: ``np.ndarray[N]`` int positions in the external :class:`ImageSet`.
        scores: ``np.ndarray[N]`` float64 MedShift scores.
        probabilities: ``np.ndarray[N, C]`` float64 G's class probabilities.
        labels: ``np.ndarray[N]`` int true class indices (external folder classes).
        pool: ``np.ndarray[P]`` int indices into ``positions`` of the OTDD pool.
        pool_features: ``np.ndarray[P, F]`` float32.
        skipped: external images whose class the internal data lacks.
        parts: with the statistics on, ``"detector"`` (the class detector's score) and
            ``"stats"`` (the acquisition ratio), each ``np.ndarray[N]``; else empty.
        left_out: the external folder's files not scored: no image (the listing's) or not decodable.
    """

    positions: np.ndarray
    scores: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray
    pool: np.ndarray
    pool_features: np.ndarray
    skipped: int
    parts: Mapping[str, np.ndarray] = field(default_factory=dict)
    left_out: tuple[LeftOutImage, ...] = ()


@dataclass(frozen=True)
class ShiftResult:
    """A MedShift analysis.

    Attributes:
        internal_name, external_name: dataset names.
        files, classes: the scored external images (``tuple[str, ...]`` of length N).
        scores: ``np.ndarray[N]``; groups: ``np.ndarray[N]`` int (0 = lowest scores).
        grouping: the k-means result with the elbow curve.
        topk: G on TOP k … TOP 1.
        otdd: ``((level, OtddResult), …)`` TOP k … TOP 1.
        internal_scores: class → held-back internal scores (for the histograms).
        evidence: ground-truth checks when the external set knows its shifted images, else ``None``.
        settings: the run's settings and sizes.
        left_out: the folder files the run did not use (internal, then external), each with why.
    """

    internal_name: str
    external_name: str
    files: tuple[str, ...]
    classes: tuple[str, ...]
    scores: np.ndarray
    groups: np.ndarray
    grouping: Grouping
    topk: tuple[TopKRow, ...]
    otdd: tuple[tuple[int, OtddResult], ...]
    internal_scores: Mapping[str, np.ndarray]
    evidence: Mapping[str, Any] | None
    settings: Mapping[str, Any]
    left_out: tuple[LeftOutImage, ...] = ()

    @property
    def macro_f1_series(self) -> list[float]:
        """Macro-F1 of G at TOP k, …, TOP 1."""
        return [row.macro.f1 for row in self.topk]

    @property
    def otdd_series(self) -> list[float]:
        """Mean OTDD at TOP k, …, TOP 1."""
        return [result.mean for _, result in self.otdd]


def _report(progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


def _listed_out(dataset: str, image_set: ImageSet) -> list[LeftOutImage]:
    """The files the listing of ``image_set`` left out (no image)."""
    return [LeftOutImage(dataset=dataset, file=file, why=why) for file, why in image_set.left_out]


def _leave_out(dataset: str, image_set: ImageSet, into: list[LeftOutImage],
               log: Log | None) -> Callable[[int, str], None]:
    """``on_unreadable`` of :func:`iter_batches`: the file goes into ``into`` and one ``log`` line says so."""

    def leave_out(position: int, why: str) -> None:
        item = LeftOutImage(dataset=dataset, file=image_set.files[position], why=why)
        into.append(item)
        if log:
            log(item.line())

    return leave_out


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if images.shape[1:] == (size, size):
        return images
    interpolation = cv2.INTER_AREA if images.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(image, (size, size), interpolation=interpolation) for image in images]) \
        if len(images) else np.zeros((0, size, size), np.float32)


def _features(model: Any, images: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    probabilities, embedding = predict(model, images, embed=kind == "embedding")
    if kind == "pixels":
        embedding = images.reshape(len(images), -1).astype(np.float32)
    return probabilities, embedding


def fit_internal(internal: ImageSet, config: ShiftConfig, *, log: Log | None = None,
                 progress: Progress | None = None) -> InternalModels:
    """Stage 1: read the internal set, train the detectors and G, keep the internal OTDD pool.

    Args:
        internal: the internal dataset (≥ 5 images per class, ≥ 2 classes).
        config: settings.
        log: training log lines.
        progress: ``progress(stage, done, total)`` with stages ``"read internal"``,
            ``"detectors"`` and ``"classifier"``.
    """
    size = config.detector.input_size
    class_names = internal.class_names
    if len(class_names) < 2:
        raise ParameterError(f"the internal dataset needs at least 2 classes, {list(class_names)} is given.")
    chunks, statistics, read = [], [], []
    unreadable: list[LeftOutImage] = []
    for positions, pixels in iter_batches(internal, size=config.read_size, batch_size=config.batch_size,
                                          progress=_report(progress, "read internal"),
                                          on_unreadable=_leave_out("internal", internal, unreadable, log)):
        if config.stats:  # at the statistics' side, then down to the detectors' (one read of each image)
            statistics.append(acquisition_feature_matrix(_resize(pixels, config.stats_size)))
        chunks.append(_resize(pixels, size))
        read.append(positions)
    if unreadable:
        internal = _decoded_part(internal, read, unreadable)
    images = np.concatenate(chunks)
    classes = np.asarray(internal.classes, dtype=object)
    detectors = fit_class_detectors(images, internal.classes, config.detector, log=log,
                                    progress=_report(progress, "detectors"))
    acquisition, fused_internal = None, None
    if config.stats:
        acquisition = fit_class_acquisition(np.concatenate(statistics), internal.classes)
        fused_internal = {name: fuse_by_class(detectors.internal_scores[name], detectors.internal_scores,
                                              acquisition.internal_scores[name], acquisition.internal_scores,
                                              [name] * len(detectors.internal_scores[name]), rule=config.fusion)[0]
                          for name in detectors.internal_scores}
        if log:
            log("acquisition statistics: one reference per class, fused with the detectors by "
                f"{config.fusion!r} of the calibrated ratios")
    labels = np.array([class_names.index(c) for c in internal.classes], dtype=np.int64)
    held = split_internal(classes)
    if progress:
        progress("classifier", 0, 1)
    small = _resize(images, config.classifier_size)
    classifier = train_classifier(small[~held], labels[~held], len(class_names), config.classifier, log=log)
    probabilities, _ = predict(classifier, small[held])
    accuracy = float((probabilities.argmax(1) == labels[held]).mean()) if held.any() else float("nan")
    if log:
        log(f"classifier: held-back internal accuracy {accuracy:.3f}")
    if progress:
        progress("classifier", 1, 1)
    rng = np.random.default_rng(config.seed)
    pool = np.sort(rng.permutation(len(images))[: config.otdd_pool])
    _, features = _features(classifier, small[pool], config.features)
    return InternalModels(detectors=detectors, classifier=classifier, class_names=class_names,
                          features=features, labels=labels[pool], heldout_accuracy=accuracy, n_images=len(images),
                          acquisition=acquisition, internal_scores=fused_internal,
                          left_out=(*_listed_out("internal", internal), *unreadable))


def _decoded_part(internal: ImageSet, read: Sequence[np.ndarray], unreadable: Sequence[LeftOutImage]) -> ImageSet:
    """The internal images that decoded; an internal class left with too few stops the run, saying why."""
    decoded = np.zeros(len(internal), bool)
    decoded[np.concatenate(read) if read else np.zeros(0, np.int64)] = True
    class_of = dict(zip(internal.files, internal.classes))
    lost = Counter(class_of[item.file] for item in unreadable)
    classes = np.asarray(internal.classes, dtype=object)
    for name in internal.class_names:
        count = int((decoded & (classes == name)).sum())
        if count < MIN_CLASS_IMAGES:
            raise ParameterError(too_few_images(name, count, left_out=lost.get(name, 0)))
    return internal.subset(decoded)


@dataclass(frozen=True)
class ScoringModels:
    """What scoring external images needs (stage 2's model step; sent once to each Ray model worker).

    Attributes:
        detectors: the per-class detectors.
        classifier: G (eval mode).
        classifier_size: G's input side in px.
        features: OTDD features, ``"embedding"`` or ``"pixels"``.
        acquisition: the per-class acquisition references (``None``: the detectors' scores alone).
        fusion: how the statistics are fused (see :class:`ShiftConfig`).
        stats_size: side in px the statistics are computed at.
    """

    detectors: ClassDetectors
    classifier: Any
    classifier_size: int
    features: str
    acquisition: ClassAcquisition | None = None
    fusion: str = "max"
    stats_size: int = STATS_SIZE


def score_images(models: ScoringModels, pixels: np.ndarray, classes: Sequence[str]) -> tuple[np.ndarray, ...]:
    """Scores, G's probabilities, OTDD features and score parts of a batch of external images.

    Args:
        models: the internal models.
        pixels: ``np.ndarray[B, s, s]`` float32 in [0, 1], at the detectors' input size, or at
            the statistics' side (``read_size``) when ``models.acquisition`` is set.
        classes: the class of each image (its detector).

    Returns:
        ``np.ndarray[B]`` float64 scores, ``np.ndarray[B, C]`` probabilities, ``np.ndarray[B, F]`` float32
        features, and ``np.ndarray[B, 2]`` float64 parts (the detector's score and the acquisition
        ratio; NaN with the statistics off).
    """
    size = models.detectors.config.input_size
    detector_pixels = _resize(pixels, size)
    deep = score_by_class(models.detectors, detector_pixels, classes)
    parts = np.full((len(pixels), 2), np.nan)
    scores = deep
    if models.acquisition is not None:
        statistics = acquisition_feature_matrix(_resize(pixels, models.stats_size))
        distance = acquisition_by_class(models.acquisition, statistics, classes)
        scores, ratio = fuse_by_class(deep, models.detectors.internal_scores, distance,
                                      models.acquisition.internal_scores, classes, rule=models.fusion)
        parts = np.stack([deep, ratio], axis=1)
    probabilities, features = _features(models.classifier, _resize(detector_pixels, models.classifier_size),
                                        models.features)
    return scores, probabilities, features, parts


def read_external_image(name: str, source: tuple[int, str], *, image_set: ImageSet, size: int) -> tuple[np.ndarray, str]:
    """The pixels (``np.ndarray[size, size]`` float32) and class of the image at ``source = (position, class)``."""
    position, class_name = source
    return image_set.read([position], size)[0], class_name


def score_read_images(
    models: ScoringModels, names: Sequence[str], decoded: Sequence[tuple[np.ndarray, str]]
) -> list[tuple[float, np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`score_images` of read images, one ``(score, probabilities, features, parts)`` per image in order."""
    scores, probabilities, features, parts = score_images(models, np.stack([pixels for pixels, _ in decoded]),
                                                          [class_name for _, class_name in decoded])
    return [(float(scores[i]), probabilities[i], features[i], parts[i]) for i in range(len(decoded))]


def _scored_batches(
    scoring: ScoringModels, external: ImageSet, positions: np.ndarray, config: ShiftConfig, *,
    engine: Engine | None, progress: Progress | None, on_unreadable: Callable[[int, str], None],
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``(positions scored, scores, probabilities, features, parts)`` of each batch of ``positions``, in order.

    An image whose pixels do not decode is left out (``on_unreadable(position, why)``), here or in an engine's
    reading task alike.
    """
    size = config.read_size
    if engine is None or engine.name == "local":
        for chunk, pixels in iter_batches(external, size=size, batch_size=config.batch_size, positions=positions,
                                          progress=_report(progress, "score external"), on_unreadable=on_unreadable):
            scores, probabilities, features, parts = score_images(scoring, pixels,
                                                                  [external.classes[p] for p in chunk])
            yield chunk, scores, probabilities, features, parts
        return
    from medlim import errors
    from medlim.core.engines import FileWork, given

    work = FileWork(read=partial(read_external_image, image_set=external, size=size), infer=score_read_images,
                    load_model=partial(given, scoring), batch=config.batch_size)
    items = ((external.files[p] if external.files else str(p), (int(p), external.classes[p])) for p in positions)
    done: list[tuple[int, Any]] = []  # (position, score_read_images's (score, probabilities, features, parts))
    for attempt in engine.attempts(work, items, model=scoring):
        position = int(positions[attempt.index - 1])
        if attempt.failure is not None:
            error = getattr(errors, attempt.failure["error"], errors.MedlimError)
            if isinstance(error, type) and issubclass(error, errors.InputError):  # the file: left out, as locally
                on_unreadable(position, attempt.failure["message"])
            else:
                raise error(attempt.failure["message"])
        else:
            done.append((position, attempt.result))
        last = attempt.index == len(positions)
        if done and (len(done) == config.batch_size or last):
            yield (np.array([p for p, _ in done], np.int64), np.array([d[0] for _, d in done]),
                   np.stack([d[1] for _, d in done]), np.stack([d[2] for _, d in done]),
                   np.stack([d[3] for _, d in done]))
            done = []
            if progress is not None:
                progress("score external", attempt.index, len(positions))
        elif last and progress is not None:
            progress("score external", attempt.index, len(positions))


def score_external(models: InternalModels, external: ImageSet, config: ShiftConfig, *,
                   progress: Progress | None = None, engine: Engine | None = None,
                   log: Log | None = None) -> ExternalScores:
    """Stage 2: stream the external set through the detectors and G (stage ``"score external"``).

    ``engine`` says where the images are read and scored (None: this process; a Ray
    engine reads in tasks and scores in model actors, with the same results). An
    image whose pixels do not decode is left out (in ``left_out``, one ``log`` line).
    """
    known = np.array([c in models.class_names for c in external.classes], dtype=bool)
    positions = np.nonzero(known)[0]
    if len(positions) == 0:
        raise ParameterError(f"no external image belongs to an internal class {list(models.class_names)}; "
                             f"external classes: {list(external.class_names)}.")
    rng = np.random.default_rng(config.seed + 1)
    in_pool = np.zeros(len(positions), bool)
    in_pool[rng.permutation(len(positions))[: config.otdd_pool]] = True
    scores = np.empty(len(positions))
    parts = np.full((len(positions), 2), np.nan)
    probabilities = np.empty((len(positions), len(models.class_names)))
    scored = np.zeros(len(positions), bool)
    pool_rows: list[np.ndarray] = []
    pool_features: list[np.ndarray] = []
    unreadable: list[LeftOutImage] = []
    scoring = ScoringModels(detectors=models.detectors, classifier=models.classifier,
                            classifier_size=config.classifier_size, features=config.features,
                            acquisition=models.acquisition, fusion=config.fusion, stats_size=config.stats_size)
    for chunk, batch_scores, probs, features, batch_parts in _scored_batches(
            scoring, external, positions, config, engine=engine, progress=progress,
            on_unreadable=_leave_out("external", external, unreadable, log)):
        rows = np.searchsorted(positions, chunk)  # positions ascend; a batch may lack the images left out
        scored[rows] = True
        scores[rows] = batch_scores
        parts[rows] = batch_parts
        probabilities[rows] = probs
        wanted = in_pool[rows]
        if wanted.any():
            pool_rows.append(rows[wanted])
            pool_features.append(features[wanted])
    if not scored.any():
        raise ParameterError(f"no external image of an internal class could be read ({len(unreadable)} left out); "
                             f"the first: {unreadable[0].why}")
    pool = np.concatenate(pool_rows) if pool_rows else np.zeros(0, np.int64)
    if not scored.all():  # rows of the images left out go; the pool's rows are renumbered
        pool = (np.cumsum(scored) - 1)[pool]
        positions, scores, parts, probabilities = positions[scored], scores[scored], parts[scored], probabilities[scored]
    labels = np.array([models.class_names.index(external.classes[p]) for p in positions], dtype=np.int64)
    width = models.features.shape[1]
    return ExternalScores(positions=positions, scores=scores, probabilities=probabilities, labels=labels,
                          pool=pool,
                          pool_features=np.concatenate(pool_features) if pool_features else np.zeros((0, width), np.float32),
                          skipped=int((~known).sum()),
                          parts={"detector": parts[:, 0], "stats": parts[:, 1]} if models.acquisition is not None else {},
                          left_out=(*_listed_out("external", external), *unreadable))


def shift_evidence(scores: np.ndarray, groups: np.ndarray, shifted: np.ndarray, k: int,
                   classes: Sequence[str] | None = None) -> dict[str, Any]:
    """Ground-truth checks: AUROC of the score against the shifted flag and the shifted share of each group.

    Args:
        scores: ``np.ndarray[N]``; groups: ``np.ndarray[N]`` (0 = lowest); shifted: ``np.ndarray[N]`` bool.
        k: number of groups.
        classes: class of each image, for the per-class AUROC (each class has its own detector,
            so scores of different classes are not on one scale).

    Returns:
        ``auroc`` (all classes pooled), ``auroc_per_class`` and its mean
        ``auroc_class_mean``, ``shifted_fraction_by_group`` (group 0 … k−1, all
        classes pooled; NaN for an empty group), ``lowest_group_shifted``,
        ``highest_group_shifted``, ``n_shifted`` and ``n``.
    """
    from sklearn.metrics import roc_auc_score

    def auroc_of(mask: np.ndarray) -> float:
        flags = shifted[mask]
        return float(roc_auc_score(flags, scores[mask])) if 0 < flags.sum() < len(flags) else float("nan")

    shifted = np.asarray(shifted, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    fractions = [float(shifted[groups == g].mean()) if (groups == g).any() else float("nan") for g in range(k)]
    per_class: dict[str, float] = {}
    if classes is not None:
        labels = np.asarray(list(classes), dtype=object)
        per_class = {name: auroc_of(labels == name) for name in sorted(set(labels.tolist()))}
    defined = [v for v in per_class.values() if np.isfinite(v)]
    return {"auroc": auroc_of(np.ones(len(shifted), bool)), "auroc_per_class": per_class,
            "auroc_class_mean": float(np.mean(defined)) if defined else float("nan"),
            "shifted_fraction_by_group": fractions, "lowest_group_shifted": fractions[0],
            "highest_group_shifted": fractions[-1], "n_shifted": int(shifted.sum()), "n": int(len(shifted))}


def shift_type_evidence(scores: np.ndarray, shift_types: Sequence[str], classes: Sequence[str],
                        internal_scores: Mapping[str, np.ndarray], *, method: str,
                        severity: np.ndarray | None = None) -> dict[str, Any]:
    """Per shift type: images, the share above their class detector's calibrated threshold, AUROC.

    The threshold of a class detector is the maximum score of its held-back internal images
    (:func:`medlim.curation.shift.detectors.class_detector`); the AUROC sets the images of a shift
    type against the external images without a shift (against the held-back internal images when
    every external image is shifted). Returns a
    :meth:`medlim.curation.ood.shift_types.ShiftTypeTable.to_dict`.
    """
    from medlim.curation.ood.shift_types import ShiftTypeTable, shift_type_rows

    scores = np.asarray(scores, dtype=np.float64)
    kinds = np.asarray([str(k) for k in shift_types], dtype=object)
    moved = kinds != ""
    cut = np.array([float(np.max(internal_scores[c])) if len(internal_scores.get(c, ())) else np.inf
                    for c in classes], dtype=np.float64)
    reference = scores[~moved] if (~moved).any() else np.concatenate(
        [np.asarray(internal_scores[c], np.float64) for c in sorted(set(classes)) if c in internal_scores] or [[]])
    rows = shift_type_rows(detector=method, scores=scores[moved], shift_types=kinds[moved].tolist(),
                           reference_scores=reference, threshold=cut[moved],
                           severities=None if severity is None else np.asarray(severity)[moved])
    where = "external images without a shift" if (~moved).any() else "held-back internal images"
    return ShiftTypeTable(rows=rows, reference_images={method: int(len(reference))}, source=where).to_dict()


def analyse(models: InternalModels, scored: ExternalScores, external: ImageSet, config: ShiftConfig, *,
            internal_name: str = "internal", progress: Progress | None = None) -> ShiftResult:
    """Stage 3: groups, TOP-k table and the OTDD curve (stage ``"otdd"`` reports levels done)."""
    classes = tuple(external.classes[p] for p in scored.positions)
    floors = ({name: float(np.max(values)) for name, values in models.scores_of_internal.items() if len(values)}
              if config.group_anchor == "threshold" else None)
    grouping = group_scores(scored.scores, classes, k=config.k, k_range=config.k_range, seed=config.seed,
                            scale=config.group_scale, floors=floors)
    k = grouping.k
    topk = topk_table(scored.labels, scored.probabilities, grouping.groups, models.class_names, k)
    curve = []
    pool_groups = grouping.groups[scored.pool]
    pool_labels = scored.labels[scored.pool]
    for done, level in enumerate(range(k, 0, -1)):
        keep = pool_groups < level
        if keep.any():
            result = otdd_repeated(models.features, models.labels, scored.pool_features[keep], pool_labels[keep],
                                   max_samples=config.otdd_max_samples, repeats=config.otdd_repeats,
                                   seed=config.seed + level)
        else:  # an empty TOP level (anchored: nothing scored like the internal data); OTDD is undefined
            result = OtddResult(mean=math.nan, std=math.nan, values=(), n_a=0, n_b=0, repeats=0)
        curve.append((level, result))
        if progress:
            progress("otdd", done + 1, k)
    shifted = external.shifted
    evidence = None
    if shifted is not None:
        evidence = shift_evidence(scored.scores, grouping.groups, shifted[scored.positions], k, classes)
        if external.shift_types:  # issue 13: detection per shift type
            kinds = [external.shift_types[p] for p in scored.positions]
            severity = None if external.severity is None else external.severity[scored.positions]
            # labelled by what scored the images ("medshift-cvad+stats" when the statistics are fused), so the
            # table never passes the fused score off as CVAD alone; the parts below give each view alone
            evidence["shift_types"] = shift_type_evidence(scored.scores, kinds, classes, models.scores_of_internal,
                                                          method=config.method, severity=severity)
            if models.acquisition is not None and scored.parts:  # each view alone, beside the fused score
                evidence["shift_types_parts"] = {
                    config.detector.kind: shift_type_evidence(
                        scored.parts["detector"], kinds, classes, models.detectors.internal_scores,
                        method=config.detector.kind, severity=severity),
                    "stats": shift_type_evidence(
                        scored.parts["stats"], kinds, classes,
                        {name: scores / max(float(np.median(scores)), 1e-12)
                         for name, scores in models.acquisition.internal_scores.items()},
                        method="stats", severity=severity)}
        if scored.parts:
            evidence["auroc_parts"] = {
                config.detector.kind: shift_evidence(scored.parts["detector"], grouping.groups,
                                                     shifted[scored.positions], k, classes)["auroc"],
                "stats": shift_evidence(scored.parts["stats"], grouping.groups, shifted[scored.positions], k,
                                        classes)["auroc"]}
    files = tuple(external.files[p] for p in scored.positions)
    settings = {**config.to_dict(), "external_source": external.source, "n_internal": models.n_images, "n_external": len(files),
                "skipped_unknown_class": scored.skipped, "class_names": list(models.class_names),
                "left_out_internal": len(models.left_out), "left_out_external": len(scored.left_out),
                "method": config.method,
                "classifier_heldout_accuracy": models.heldout_accuracy,
                "otdd_pool_internal": int(len(models.labels)), "otdd_pool_external": int(len(scored.pool))}
    return ShiftResult(internal_name=internal_name, external_name=external.name, files=files, classes=classes,
                       scores=scored.scores, groups=grouping.groups, grouping=grouping, topk=topk, otdd=tuple(curve),
                       internal_scores=dict(models.scores_of_internal), evidence=evidence, settings=settings,
                       left_out=(*models.left_out, *scored.left_out))


def run_shift(internal: ImageSet, external: ImageSet, config: ShiftConfig | None = None, *,
              log: Log | None = None, progress: Progress | None = None, engine: Engine | None = None) -> ShiftResult:
    """Train on ``internal``, score, group and measure ``external`` (all three stages; ``engine``: stage 2's)."""
    config = config or ShiftConfig()
    models = fit_internal(internal, config, log=log, progress=progress)
    scored = score_external(models, external, config, progress=progress, engine=engine, log=log)
    return analyse(models, scored, external, config, internal_name=internal.name, progress=progress)

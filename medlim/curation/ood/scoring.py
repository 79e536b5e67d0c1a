"""Scoring single images with a trained OOD detector (thesis §4.1.2 "Anomaly score", eq. 4.8).

Scores, higher = more out-of-distribution:

* AE baseline: ``rec`` = mean squared reconstruction error.
* TEND: ``S = λ·p + (1 − λ)·d/R`` with the classifier probability ``p``, the
  squared distance ``d = ‖c − O‖²`` to the stored centre and the margin ``R``.
* CVAD (eq. 4.8): ``S = 0.5·(rec/(rec_max − rec_min) + dis)``, ``rec`` the mean
  squared error of the combined reconstruction (latent means, no sampling),
  ``dis`` the discriminator's probability, and ``rec_min``/``rec_max`` a fixed
  reference range measured on internal validation data at training time.

Every quantity of an image depends only on that image and the stored weights
and calibration: the networks run in eval mode, and nothing is normalised over
the batch (the authors' min-max over the test set cannot score one image).
So files can be scored anywhere in any grouping: :func:`scored_batches` runs
its two steps, :func:`read_model_input` and :func:`score_model_inputs`, on a
:mod:`medlim.core.engines` engine (this process, or Ray tasks and actors; issue 15).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlim.errors import ParameterError, WeightsError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from medlim.core.batch import Attempt
    from medlim.core.engines import Engine
    from medlim.core.weights import Registries, Registry, WeightsEntry
    from medlim.curation.image_statistics import AcquisitionReference

__all__ = [
    "DETECTOR_KINDS",
    "PART_NAMES",
    "ARCHITECTURE_OF",
    "OodScores",
    "Detector",
    "combine_parts",
    "load_detector",
    "score_files",
    "ScoredBatch",
    "scored_batches",
    "read_model_input",
    "score_model_inputs",
    "detector_for_worker",
]

#: Detector kind → registry architecture name.
ARCHITECTURE_OF: dict[str, str] = {"ae": "ood-autoencoder", "tend": "tend", "cvad": "cvad"}
DETECTOR_KINDS: tuple[str, ...] = tuple(ARCHITECTURE_OF)
#: Detector kind → names of the parts its score combines (the columns of a score table).
PART_NAMES: dict[str, tuple[str, ...]] = {"ae": ("rec",), "tend": ("p", "d"), "cvad": ("rec", "dis")}
_CHUNK = 64


@dataclass(frozen=True)
class OodScores:
    """Scores of a set of images.

    Attributes:
        score: ``np.ndarray[N]`` float64, higher = more OOD.
        threshold: the decision threshold t (OOD when ``score ≥ t``).
        parts: named parts of the score, each ``np.ndarray[N]`` float64
            (TEND ``p``, ``d``; CVAD ``rec``, ``dis``; AE ``rec``).
        files: names of the images (may be empty strings).
    """

    score: np.ndarray
    threshold: float
    parts: Mapping[str, np.ndarray] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    @property
    def is_ood(self) -> np.ndarray:
        """``np.ndarray[N]`` bool: ``score ≥ threshold``."""
        return self.score >= self.threshold

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-able dict per image: ``file, score, threshold, is_ood`` and the parts."""
        files = self.files or ("",) * len(self.score)
        out = []
        for i, name in enumerate(files):
            row: dict[str, Any] = {"file": name, "score": float(self.score[i]), "threshold": float(self.threshold),
                                   "is_ood": bool(self.is_ood[i])}
            row.update({k: float(v[i]) for k, v in self.parts.items()})
            out.append(row)
        return out


def combine_parts(kind: str, parts: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> np.ndarray:
    """The detector's score from its parts.

    Args:
        kind: ``"ae"``, ``"tend"`` or ``"cvad"``.
        parts: as :attr:`OodScores.parts`.
        params: ``weight`` (λ) and ``margin`` (R) for TEND; ``rec_min`` and
            ``rec_max`` for CVAD.

    Returns:
        ``np.ndarray[N]`` float64.
    """
    if kind == "ae":
        return np.asarray(parts["rec"], dtype=np.float64)
    if kind == "tend":
        weight, margin = float(params["weight"]), float(params["margin"])
        return weight * np.asarray(parts["p"], np.float64) + (1.0 - weight) * np.asarray(parts["d"], np.float64) / margin
    if kind == "cvad":
        span = float(params["rec_max"]) - float(params["rec_min"])
        if not span > 0:
            raise ParameterError(
                f"CVAD reference range must be positive, {params['rec_min']}..{params['rec_max']} is given.")
        return 0.5 * (np.asarray(parts["rec"], np.float64) / span + np.asarray(parts["dis"], np.float64))
    raise ParameterError(f"unknown detector kind {kind!r}; known: {', '.join(DETECTOR_KINDS)}.")


def _parts(kind: str, model: "torch.nn.Module", batch: "torch.Tensor") -> dict[str, "torch.Tensor"]:
    if kind == "ae":
        return {"rec": ((model(batch) - batch) ** 2).mean(dim=(1, 2, 3))}
    if kind == "tend":
        p, c = model(batch)
        return {"p": p, "d": model.distance(c)}
    if kind == "cvad":
        recon = model.generator(batch, sample=False).image
        return {"rec": ((recon - batch) ** 2).mean(dim=(1, 2, 3)), "dis": model.discriminator(batch)}
    raise ParameterError(f"unknown detector kind {kind!r}; known: {', '.join(DETECTOR_KINDS)}.")


class Detector:
    """A trained detector with its calibration: scores images one by one or in batches.

    Args:
        kind: ``"ae"``, ``"tend"`` or ``"cvad"``.
        model: the network (put in eval mode here).
        params: score parameters (see :func:`combine_parts`) plus ``input_size``
            and ``id_classes``.
        threshold: calibrated decision threshold (G-mean on internal validation data) of the detector alone.
        name: label for display.
        stats: fuse the detector's score with the acquisition statistics stored in ``params["acquisition"]``
            (:mod:`medlim.curation.ood.acquisition`) when it has them; then images are read at the statistics'
            side and :attr:`threshold` is the fused score's. ``False``: the detector alone (the thesis).
    """

    def __init__(self, kind: str, model: "torch.nn.Module", params: Mapping[str, Any], *, threshold: float,
                 name: str = "", stats: bool = True) -> None:
        from medlim.curation.ood.acquisition import COMPANION_KEY, AcquisitionCompanion

        if kind not in DETECTOR_KINDS:
            raise ParameterError(f"unknown detector kind {kind!r}; known: {', '.join(DETECTOR_KINDS)}.")
        self.kind = kind
        self.model = model.eval()
        self.params = dict(params)
        self.name = name or kind
        self.input_size = int(self.params["input_size"])
        stored = self.params.get(COMPANION_KEY)
        self.acquisition = AcquisitionCompanion.from_json(stored) if stats and stored else None
        self.threshold = float(threshold) if self.acquisition is None else self.acquisition.threshold

    @property
    def fused(self) -> bool:
        """Whether scores are fused with the acquisition statistics."""
        return self.acquisition is not None

    @property
    def has_statistics(self) -> bool:
        """Whether the detector was trained with acquisition statistics (used or not)."""
        from medlim.curation.ood.acquisition import COMPANION_KEY

        return bool(self.params.get(COMPANION_KEY))

    @property
    def read_size(self) -> int:
        """The side images are read at: the statistics' (256 px) when fused, else the input side."""
        return self.acquisition.size if self.acquisition is not None else self.input_size

    @property
    def part_names(self) -> tuple[str, ...]:
        """The parts of a score (the columns of a score table); ``stats`` is the statistics distance when fused."""
        return PART_NAMES[self.kind] + (("stats",) if self.fused else ())

    def combine(self, parts: Mapping[str, np.ndarray]) -> np.ndarray:
        """The score from its parts: :func:`combine_parts`, fused with ``parts["stats"]`` when :attr:`fused`."""
        score = combine_parts(self.kind, parts, self.params)
        if self.acquisition is None:
            return score
        return self.acquisition.fuse(score, parts["stats"])

    @property
    def id_classes(self) -> tuple[str, ...]:
        """The in-distribution classes the detector was trained on."""
        return tuple(self.params.get("id_classes", ()))

    @property
    def margin(self) -> float | None:
        """TEND's margin R (``None`` for other kinds)."""
        return float(self.params["margin"]) if self.kind == "tend" else None

    def parts(self, images: Sequence[np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Raw parts for images (any size; the preset resizes them).

        Args:
            images: ``np.ndarray[N, H, W]`` or a sequence of ``[H, W]`` / ``[H, W, 3]``
                float arrays in [0, 1].
        """
        import torch

        from medlim.curation.ood.data import stack_inputs

        inputs = stack_inputs(images, self.input_size)
        device = next(self.model.parameters()).device
        collected: dict[str, list[np.ndarray]] = {}
        if self.acquisition is not None:
            collected["stats"] = [self.acquisition.distances(images)]
        with torch.no_grad():
            for start in range(0, len(inputs), _CHUNK):
                batch = torch.from_numpy(inputs[start : start + _CHUNK]).unsqueeze(1).to(device)
                for key, value in _parts(self.kind, self.model, batch).items():
                    collected.setdefault(key, []).append(value.double().cpu().numpy())
        if not len(inputs):
            return {key: np.zeros(0) for key in self.part_names}
        return {key: np.concatenate(values) for key, values in collected.items()}

    def score(self, images: Sequence[np.ndarray] | np.ndarray, *, files: Sequence[str] = (),
              threshold: float | None = None) -> OodScores:
        """Score images; ``threshold`` overrides the calibrated one."""
        parts = self.parts(images)
        return OodScores(score=self.combine(parts),
                         threshold=self.threshold if threshold is None else float(threshold),
                         parts=parts, files=tuple(str(f) for f in files))


def score_files(
    detector: Detector,
    files: Iterable[tuple[str, Path | bytes]],
    *,
    threshold: float | None = None,
    chunk: int = 32,
    progress: Callable[[int, str, float], None] | None = None,
    pseudonymised: bool = False,
    engine: Engine | None = None,
) -> Iterator[dict[str, Any]]:
    """Score image files in small batches: one row per file, a file that cannot be read as an error row.

    Each file is read and brought to the input size at once, so at most
    ``chunk`` small inputs (never a full-size image) are held, whatever the number
    of files; a row's score does not depend on the other files (see the module
    docstring), so the batch size does not change it.

    Args:
        detector: from :func:`load_detector`.
        files: ``(display name, path or file bytes)`` pairs.
        threshold: overrides the calibrated threshold.
        chunk: files read before they are scored together (≥ 1).
        progress: ``progress(index, name, seconds)`` after each file is read.
        pseudonymised: the names are labels; a path's real name is kept out of error messages.
        engine: where files are read and scored (None: this process).

    Yields:
        In file order, :meth:`OodScores.rows` rows plus ``warnings`` (the reader's),
        or :func:`medlim.core.batch.error_row` rows (``file``, ``error``, ``message``).
    """
    for batch in scored_batches(detector, files, threshold=threshold, chunk=chunk, progress=progress,
                                pseudonymised=pseudonymised, engine=engine):
        yield from batch.rows()


#: What :func:`score_model_inputs` gives per file: the model input, the reader's warnings and the score's parts.
ScoredInput = tuple[np.ndarray, list[str], dict[str, float]]


@dataclass(frozen=True)
class ScoredBatch:
    """One batch of :func:`scored_batches`: the attempts and the scores of the readable files.

    Attributes:
        attempts: every file of the batch, in order (failed reads carry their error row;
            a read file's ``result`` is its :data:`ScoredInput`).
        scores: scores of the readable files, in order.
        inputs: ``np.ndarray[M, s, s]`` float32, the readable files at the detector's :attr:`Detector.read_size`
            (the model input side; the statistics' 256 px when the detector scores fused).
    """

    attempts: tuple["Attempt[ScoredInput]", ...]
    scores: OodScores
    inputs: np.ndarray

    def rows(self) -> Iterator[dict[str, Any]]:
        """:func:`score_files` rows of the batch, in file order."""
        scored = iter(self.scores.rows())
        for attempt in self.attempts:
            if attempt.ok:
                yield {**next(scored), "warnings": attempt.result[1]}
            else:
                yield attempt.failure


def read_model_input(name: str, source: Path | bytes, *, size: int) -> tuple[np.ndarray, list[str]]:
    """One file read and brought to the model input (the reading step of scoring; no model).

    Returns:
        ``np.ndarray[size, size]`` float32 in [0, 1] and the reader's warnings.
    """
    from medlim.core.io import read_image
    from medlim.curation.ood.data import to_model_input

    record = read_image(source, name=Path(name).name)
    return to_model_input(record.pixels, size), list(record.metadata.warnings)


def score_model_inputs(
    detector: Detector, names: Sequence[str], prepared: Sequence[tuple[np.ndarray, list[str]]]
) -> list[ScoredInput]:
    """The score's parts of read files, scored together (the model step of scoring), one per file in order."""
    parts = detector.parts(np.stack([inputs for inputs, _ in prepared]))
    return [(inputs, warnings, {key: float(values[i]) for key, values in parts.items()})
            for i, (inputs, warnings) in enumerate(prepared)]


def detector_for_worker(detector: Detector) -> Detector:
    """The detector as a worker process uses it: on its GPU when it has one (Ray sets which)."""
    import torch

    if torch.cuda.is_available():
        detector.model.to(torch.device("cuda"))
    return detector


def scored_batches(
    detector: Detector,
    files: Iterable[tuple[str, Path | bytes]],
    *,
    threshold: float | None = None,
    chunk: int = 32,
    progress: Callable[[int, str, float], None] | None = None,
    pseudonymised: bool = False,
    engine: Engine | None = None,
) -> Iterator[ScoredBatch]:
    """Read and score files ``chunk`` at a time (the work behind :func:`score_files`; same arguments)."""
    from medlim.core.batch import real_names
    from medlim.core.engines import FileWork, LocalEngine

    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ParameterError(f"`chunk` must be a positive integer, {chunk!r} is given.")
    work = FileWork(read=partial(read_model_input, size=detector.read_size), infer=score_model_inputs,
                    load_model=partial(detector_for_worker, detector), batch=chunk)
    pending: list[Attempt[ScoredInput]] = []
    for attempt in (engine or LocalEngine()).attempts(work, files, model=detector, progress=progress,
                                                       hidden=real_names if pseudonymised else None):
        pending.append(attempt)
        if len(pending) >= chunk:
            yield _scored_batch(detector, pending, threshold)
            pending = []
    if pending:
        yield _scored_batch(detector, pending, threshold)


def _scored_batch(
    detector: Detector, attempts: Sequence["Attempt[ScoredInput]"], threshold: float | None
) -> ScoredBatch:
    """The scores of the readable files of ``attempts``, from their parts (:func:`combine_parts`)."""
    read = [a.result for a in attempts if a.ok and a.result is not None]
    size = detector.read_size
    inputs = np.stack([r[0] for r in read]) if read else np.zeros((0, size, size), np.float32)
    parts = {key: np.array([r[2][key] for r in read], dtype=np.float64) for key in detector.part_names}
    scores = OodScores(score=detector.combine(parts),
                       threshold=detector.threshold if threshold is None else float(threshold),
                       parts=parts, files=tuple(a.name for a in attempts if a.ok))
    return ScoredBatch(attempts=tuple(attempts), scores=scores, inputs=inputs)


def _kind_of(entry: "WeightsEntry") -> str:
    for kind, architecture in ARCHITECTURE_OF.items():
        if entry.architecture == architecture:
            return kind
    raise WeightsError(f"weights {entry.label} ({entry.architecture}) are not an OOD detector.")


def detector_from_entry(entry: "WeightsEntry", *, device: "torch.device | str | None" = "cpu",
                        stats: bool = True) -> Detector:
    """A :class:`Detector` for a registry entry (checksum verified, strict load); ``stats``: see :class:`Detector`."""
    from medlim.core.weights import build_model

    kind = _kind_of(entry)
    if "score" not in entry.thresholds:
        raise WeightsError(f"weights {entry.label} carry no calibrated 'score' threshold.")
    return Detector(kind, build_model(entry, device=device), entry.params, threshold=entry.thresholds["score"],
                    name=entry.label, stats=stats)


def load_detector(name: str, *, version: str | None = None, registry: "Registry | Registries | None" = None,
                  device: "torch.device | str | None" = "cpu", stats: bool = True) -> Detector:
    """Load the detector registered as ``name`` (latest version unless given).

    ``registry`` defaults to the shipped and the user registry together
    (:class:`medlim.core.weights.Registries`); ``stats``: see :class:`Detector`.
    """
    from medlim.core.weights import Registries

    registry = registry if registry is not None else Registries.load()
    return detector_from_entry(registry.get(name, version), device=device, stats=stats)


def list_detectors(registry: "Registry | Registries | None" = None) -> list["WeightsEntry"]:
    """Registry entries that are OOD detectors, sorted by name (default: shipped and user registry)."""
    from medlim.core.weights import Registries

    registry = registry if registry is not None else Registries.load()
    return [e for e in registry.list() if e.architecture in ARCHITECTURE_OF.values()]


@dataclass(frozen=True)
class AcquisitionDetector:
    """The acquisition statistics alone as an OOD detector (the shape
    :func:`medlim.curation.ood.shift_types.compare_shift_types` takes).

    Attributes:
        name: label in tables; id_classes: the ID classes its reference was fitted on.
        reference: the fitted reference; threshold: the largest held-back ID distance
            (OOD when ``score ≥ threshold``, as the other detectors' calibrated threshold).
        input_size: the side images are given at (:data:`STATS_SIZE`).
    """

    name: str
    id_classes: tuple[str, ...]
    reference: "AcquisitionReference"
    threshold: float
    input_size: int = 256

    def score(self, images: np.ndarray | Sequence[np.ndarray]) -> Any:
        """:class:`medlim.curation.ood.scoring.OodScores` of ``images`` (``[N, s, s]`` float in [0, 1])."""
        from medlim.curation.image_statistics import acquisition_feature_matrix

        return OodScores(score=self.reference.score(acquisition_feature_matrix(images)), threshold=self.threshold)


def fit_acquisition_detector(images: np.ndarray, *, id_classes: Sequence[str], name: str = "stats",
                             every: int = 5) -> AcquisitionDetector:
    """Fit :class:`AcquisitionDetector` on ID images: every ``every``-th image is held back for the threshold.

    Args:
        images: ``np.ndarray[N, s, s]`` float in [0, 1] ID images at :data:`STATS_SIZE` px, N ≥ 2·``every``.
        id_classes: the classes they show; name: the detector's label.
    """
    from medlim.curation.image_statistics import acquisition_feature_matrix, fit_acquisition_reference

    array = np.asarray(images, dtype=np.float32)
    if array.ndim != 3 or len(array) < 2 * every:
        raise ParameterError(f"need at least {2 * every} ID images [N, s, s]; shape {array.shape} is given.")
    held = np.zeros(len(array), bool)
    held[every - 1 :: every] = True
    features = acquisition_feature_matrix(array)
    reference = fit_acquisition_reference(features[~held])
    return AcquisitionDetector(name=name, id_classes=tuple(id_classes), reference=reference,
                               threshold=float(reference.score(features[held]).max()), input_size=array.shape[1])


__all__ += ["detector_from_entry", "list_detectors", "AcquisitionDetector", "fit_acquisition_detector"]

"""MedShift's acquisition-statistics companion: one reference per internal class (issue 13, a stated deviation).

The thesis scores an external image by its class's CVAD (or TEND) alone. On
external data whose shifts are mild — a little blur, lost resolution, noise,
grid lines, exposure, a brightness ramp — those 64 px detectors score shifted
images barely above clean ones (validation phantoms, internal seed 103,
external ``named0.05-1x0.5`` seed 204, humerus/forearm/hand: CVAD AUROC 0.509).
With ``ShiftConfig.stats`` on (the default of ``medlim shift run``; ``--stats off``
is the thesis), every class also gets an
:class:`~medlim.curation.image_statistics.AcquisitionReference` fitted on the
acquisition statistics (:mod:`medlim.curation.image_statistics`, at 256 px) of
its internal training images, and the MedShift score becomes
:func:`~medlim.curation.image_statistics.fused_scores` of the two: each score
divided by the median of its class's held-back internal scores, the larger
ratio kept (``fusion="max"``) — an image is as unusual as its more unusual
view, so what CVAD sees (the strong site styles) is kept. On the validation
phantoms the fused score reached AUROC 1.000 with the elbow rule's lowest
group 6.8 % shifted (the geometric ``"mean"`` rule: 1.000 and 5.6 %; ``"max"`` was kept
because it cannot dilute a strong CVAD alarm).
The held-back images are the detectors' (every fifth of a class,
:func:`~medlim.curation.shift.detectors.split_internal`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from medlim.curation.image_statistics import (
    AcquisitionReference,
    fit_acquisition_reference,
    fused_scores,
    score_ratio,
)
from medlim.curation.shift.detectors import split_internal
from medlim.errors import ParameterError

__all__ = ["ClassAcquisition", "fit_class_acquisition", "acquisition_by_class", "fuse_by_class"]


@dataclass(frozen=True)
class ClassAcquisition:
    """Per-class acquisition references and their held-back internal scores.

    Attributes:
        references: class → :class:`AcquisitionReference` fitted on the class's training images.
        internal_scores: class → ``np.ndarray[M]`` distances of the class's held-back images.
    """

    references: Mapping[str, AcquisitionReference]
    internal_scores: Mapping[str, np.ndarray]


def fit_class_acquisition(features: np.ndarray, classes: Sequence[str]) -> ClassAcquisition:
    """Fit one reference per class on its training images; score its held-back images.

    Args:
        features: ``np.float64[N, F]`` acquisition features of the internal images.
        classes: class of each image.

    Raises:
        ParameterError: a class with fewer than 3 training or no held-back images.
    """
    matrix = np.asarray(features, dtype=np.float64)
    labels = np.asarray(list(classes), dtype=object)
    if matrix.ndim != 2 or len(matrix) != len(labels):
        raise ParameterError(f"need one feature row per internal image; {matrix.shape} rows for {len(labels)} images.")
    held = split_internal(list(classes))
    references: dict[str, AcquisitionReference] = {}
    scores: dict[str, np.ndarray] = {}
    for name in sorted(set(labels.tolist())):
        train, reference = (labels == name) & ~held, (labels == name) & held
        if train.sum() < 3 or not reference.any():
            raise ParameterError(f"class {name!r} has {int((labels == name).sum())} internal images; "
                                 "the acquisition statistics need at least 5.")
        references[name] = fit_acquisition_reference(matrix[train])
        scores[name] = references[name].score(matrix[reference])
    return ClassAcquisition(references=references, internal_scores=scores)


def acquisition_by_class(models: ClassAcquisition, features: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Each image's distance to its class's reference: ``np.ndarray[N]`` float64 (NaN for an unknown class)."""
    labels = np.asarray(list(classes), dtype=object)
    scores = np.full(len(labels), np.nan)
    for name in set(labels.tolist()):
        rows = labels == name
        if name in models.references:
            scores[rows] = models.references[name].score(np.asarray(features)[rows])
    return scores


def fuse_by_class(deep: np.ndarray, deep_internal: Mapping[str, np.ndarray], stats: np.ndarray,
                  stats_internal: Mapping[str, np.ndarray], classes: Sequence[str], *, rule: str = "max",
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Fused scores and the acquisition ratio of images of several classes.

    Args:
        deep, stats: ``np.ndarray[N]`` the class detector's score and the acquisition distance.
        deep_internal, stats_internal: class → held-back internal scores of each.
        classes: class of each image.
        rule: :data:`~medlim.curation.image_statistics.FUSION_RULES`.

    Returns:
        ``(fused, stats ratio)``, both ``np.ndarray[N]`` float64 (NaN for an unknown class).
    """
    labels = np.asarray(list(classes), dtype=object)
    fused = np.full(len(labels), np.nan)
    ratio = np.full(len(labels), np.nan)
    for name in set(labels.tolist()):
        rows = labels == name
        if name in deep_internal and name in stats_internal:
            fused[rows] = fused_scores(np.asarray(deep)[rows], deep_internal[name], np.asarray(stats)[rows],
                                       stats_internal[name], rule=rule)
            ratio[rows] = score_ratio(np.asarray(stats)[rows], stats_internal[name])
    return fused, ratio

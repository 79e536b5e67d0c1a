"""Per-class anomaly scores and their bins: OSCARS's intra-class labels (thesis §6.1.2, "Learning intra-class information").

OSCARS follows MedShift (thesis ch. 5): one anomaly detector per class is
trained on the clean internal data, every external image is scored by its
class's detector, and each class's scores are split into B = 5 bins by 1-D
k-means (bins ordered by ascending score). This module is a thin adapter over
:mod:`medlim.curation.shift` (``fit_class_detectors``, ``score_by_class``,
``group_scores``) so that retrieval uses exactly MedShift's scores and bins.

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

__all__ = ["N_BINS", "ClassAnomaly", "fit_class_anomaly", "anomaly_bins", "scaled_anomaly"]

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
) -> ClassAnomaly:
    """Train MedShift's per-class detectors on internal images (at the detector's input size).

    Args:
        images: internal ``np.ndarray[N, H, W]`` float32 in [0, 1] (resized to the detector size here).
        classes: class of each image.
        seed: training seed.
        kind: ``"cvad"`` (thesis) or ``"tend"``.
        log: training log lines.
    """
    from medlim.curation.ood.data import stack_inputs
    from medlim.curation.shift.detectors import DetectorConfig, fit_class_detectors

    # OSCARS keeps the detector schedule its shipped models were trained with
    # (MedShift's own default later rose to 60 + 20 epochs).
    config = DetectorConfig(kind=kind, seed=seed, epochs=RETRIEVAL_DETECTOR_EPOCHS[0],
                            head_epochs=RETRIEVAL_DETECTOR_EPOCHS[1])
    inputs = stack_inputs(np.asarray(images, np.float32), config.input_size)
    detectors = fit_class_detectors(inputs, classes, config, log=log)
    reference = {name: (float(np.mean(values)), float(np.std(values)) or 1.0)
                 for name, values in detectors.internal_scores.items()}
    return ClassAnomaly(detectors=detectors, reference=reference)


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

"""Evaluating BAC segmentation and quantification on held-out phantoms (thesis §3.3.2).

Segmentation (eq. 3.6–3.7, pixel-wise): recall, precision, accuracy, F1/Dice
and Jaccard, per patch (grid patches of 512 px that contain calcification, as
the thesis evaluated its validation patches) and per whole image (mean ± std
over images, and pooled over all pixels).

Quantification: each of PM, AM, SIM, TAM_X and TSIM_X computed from the
network's map is compared with the same metric computed from the ground-truth
mask (p = 1 on BAC pixels, 0 elsewhere, with the same preprocessed intensities
and X): the coefficient of determination R² of the least-squares line of
predicted on true values (the "R² correlation" of thesis Fig. 3.11), and the
Bland–Altman bias and 95 % limits of agreement (bias ± 1.96 SD of the
differences).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from medlim.errors import ParameterError

__all__ = [
    "READOUTS",
    "Agreement",
    "ImageEvaluation",
    "BacEvaluation",
    "r_squared",
    "bland_altman",
    "evaluate_image",
    "summarise",
    "evaluate_bac",
    "sweep_thresholds",
]

#: The five readouts compared against ground truth.
READOUTS = ("pm", "am", "sim", "tam_x", "tsim_x")


@dataclass(frozen=True)
class Agreement:
    """Agreement of one readout with ground truth over images.

    Attributes:
        r2: R² of the least-squares line predicted ~ true (NaN with < 3 images or no spread).
        bias: mean of (predicted − true).
        loa_low, loa_high: bias ∓ 1.96 × SD of the differences.
    """

    r2: float
    bias: float
    loa_low: float
    loa_high: float


@dataclass(frozen=True)
class ImageEvaluation:
    """One image: pixel metrics, patch metrics and both sets of readouts."""

    name: str
    whole: dict[str, float]
    patches: tuple[dict[str, float], ...]
    predicted: dict[str, float]
    truth: dict[str, float]
    counts: tuple[int, int, int, int]


@dataclass(frozen=True)
class BacEvaluation:
    """Summary over images (the figures written into a weights manifest)."""

    images: int
    patches: int
    whole_image: dict[str, float]
    whole_image_std: dict[str, float]
    whole_image_pooled: dict[str, float]
    patch_wise: dict[str, float]
    agreement: dict[str, Agreement]
    threshold: float
    x: float

    def to_dict(self) -> dict:
        return asdict(self)


def r_squared(truth: np.ndarray, predicted: np.ndarray) -> float:
    """R² of the least-squares line ``predicted = a·truth + b`` (squared Pearson r).

    Args:
        truth, predicted: ``np.ndarray[N]`` float.

    Returns:
        R² in [0, 1], or NaN when N < 3 or either side is constant.
    """
    truth = np.asarray(truth, np.float64)
    predicted = np.asarray(predicted, np.float64)
    if truth.shape != predicted.shape:
        raise ParameterError(f"truth {truth.shape} and predicted {predicted.shape} differ in shape.")
    if truth.size < 3 or np.ptp(truth) == 0 or np.ptp(predicted) == 0:
        return float("nan")
    r = np.corrcoef(truth, predicted)[0, 1]
    return float(r * r)


def bland_altman(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float]:
    """Bland–Altman bias and 95 % limits of agreement of ``predicted − truth``.

    Returns:
        ``(bias, low, high)``; the SD is the sample SD (ddof = 1), 0 for one image.
    """
    diff = np.asarray(predicted, np.float64) - np.asarray(truth, np.float64)
    if diff.size == 0:
        raise ParameterError("Bland–Altman needs at least one image.")
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1)) if diff.size > 1 else 0.0
    return bias, bias - 1.96 * sd, bias + 1.96 * sd


def _metric_dict(m) -> dict[str, float]:
    return {"recall": m.recall, "precision": m.precision, "accuracy": m.accuracy, "f1": m.f1, "jaccard": m.jaccard}


def evaluate_image(
    name: str,
    prediction: "BacPrediction",  # noqa: F821
    truth_mask: np.ndarray,
    *,
    threshold: float,
    x: float,
    patch_size: int = 512,
    stride: int = 448,
) -> ImageEvaluation:
    """Compare one prediction with its ground-truth mask.

    Args:
        name: image name.
        prediction: inference result (probability map and preprocessed image).
        truth_mask: ``np.bool_[H, W]`` ground-truth BAC.
        threshold: probability cut-off t.
        x: intensity threshold X.
        patch_size, stride: grid of the patch-wise evaluation (thesis: 512, 64 px overlap).
    """
    from medlim.core.metrics import confusion_counts, pixel_metrics
    from medlim.core.tiling import patch_grid
    from medlim.mammography.quantify import quantify_prediction, quantify_bac

    probability = prediction.probability
    if truth_mask.shape != probability.shape:
        raise ParameterError(f"mask {truth_mask.shape} and prediction {probability.shape} differ in shape.")
    predicted_mask = probability > threshold
    whole = _metric_dict(pixel_metrics(truth_mask, predicted_mask))
    patches = []
    rows, cols = probability.shape
    if rows >= patch_size and cols >= patch_size:
        for top, left in patch_grid((rows, cols), patch=patch_size, stride=stride):
            t = truth_mask[top : top + patch_size, left : left + patch_size]
            if t.any():
                p = predicted_mask[top : top + patch_size, left : left + patch_size]
                patches.append(_metric_dict(pixel_metrics(t, p)))
    pred = quantify_prediction(prediction, threshold=threshold, x=x)
    true = quantify_bac(
        truth_mask.astype(np.float32),
        prediction.preprocessed.grey,
        threshold=0.5,
        x=x,
        breast_mask=prediction.preprocessed.breast_mask,
        intensity_rule=pred.intensity_rule,
    )
    return ImageEvaluation(
        name=name,
        whole=whole,
        patches=tuple(patches),
        predicted={k: float(getattr(pred, k)) for k in READOUTS},
        truth={k: float(getattr(true, k)) for k in READOUTS},
        counts=confusion_counts(truth_mask, predicted_mask),
    )


def summarise(evaluations: Iterable[ImageEvaluation], *, threshold: float, x: float) -> BacEvaluation:
    """Aggregate per-image evaluations (only images with BAC count towards the whole-image mean)."""
    evaluations = list(evaluations)
    if not evaluations:
        raise ParameterError("No images to evaluate.")
    keys = ("recall", "precision", "accuracy", "f1", "jaccard")
    with_bac = [e for e in evaluations if e.counts[0] + e.counts[2] > 0] or evaluations
    whole = {k: float(np.mean([e.whole[k] for e in with_bac])) for k in keys}
    whole_std = {k: float(np.std([e.whole[k] for e in with_bac])) for k in keys}
    tp, fp, fn, tn = (int(sum(e.counts[i] for e in evaluations)) for i in range(4))
    pooled = {
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "accuracy": (tp + tn) / (tp + fp + fn + tn),
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan"),
        "jaccard": tp / (tp + fp + fn) if tp + fp + fn else float("nan"),
    }
    all_patches = [p for e in evaluations for p in e.patches]
    patch_wise = {k: float(np.mean([p[k] for p in all_patches])) if all_patches else float("nan") for k in keys}
    agreement = {}
    for key in READOUTS:
        truth = np.array([e.truth[key] for e in evaluations])
        predicted = np.array([e.predicted[key] for e in evaluations])
        bias, low, high = bland_altman(truth, predicted)
        agreement[key] = Agreement(r2=r_squared(truth, predicted), bias=bias, loa_low=low, loa_high=high)
    return BacEvaluation(
        images=len(evaluations),
        patches=len(all_patches),
        whole_image=whole,
        whole_image_std=whole_std,
        whole_image_pooled=pooled,
        patch_wise=patch_wise,
        agreement=agreement,
        threshold=threshold,
        x=x,
    )


def evaluate_bac(
    bac_model: "BacModel",  # noqa: F821
    samples: Iterable[tuple[str, np.ndarray, np.ndarray]],
    *,
    threshold: float | None = None,
    x: float | None = None,
    progress: Callable[[int, str], None] | None = None,
) -> tuple[BacEvaluation, list[ImageEvaluation]]:
    """Run the model on annotated images and summarise at one cut-off.

    Args:
        bac_model: loaded weights (:func:`medlim.mammography.analysis.load_bac_model`).
        samples: ``(name, image np.uint8[H, W], truth np.bool_[H, W])`` triples.
        threshold, x: cut-off and X (None: the weights').
        progress: ``progress(done, name)`` after each image.
    """
    t = bac_model.threshold if threshold is None else threshold
    summaries, per_image = sweep_thresholds(bac_model, samples, thresholds=(t,), x=x, progress=progress)
    return summaries[t], per_image[t]


def sweep_thresholds(
    bac_model: "BacModel",  # noqa: F821
    samples: Iterable[tuple[str, np.ndarray, np.ndarray]],
    *,
    thresholds: Sequence[float],
    x: float | None = None,
    progress: Callable[[int, str], None] | None = None,
) -> tuple[dict[float, BacEvaluation], dict[float, list[ImageEvaluation]]]:
    """Evaluate several cut-offs from one inference per image (the maps are reused).

    This is how a set of weights' cut-off is chosen on validation phantoms,
    before the held-out evaluation (``medlim bac evaluate --thresholds``).
    """
    from medlim.mammography.inference import predict_probability_map
    from medlim.mammography.preprocess import get_preset

    if not thresholds:
        raise ParameterError("Give at least one probability cut-off.")
    for t in thresholds:
        if not 0.0 <= t <= 1.0:
            raise ParameterError(f"probability cut-offs must be in [0, 1]; {t} is given.")
    xx = bac_model.x if x is None else x
    preset = get_preset(bac_model.preset)
    per_image: dict[float, list[ImageEvaluation]] = {t: [] for t in thresholds}
    for done, (name, image, truth) in enumerate(samples, start=1):
        prediction = predict_probability_map(
            image,
            bac_model.model,
            preset=preset,
            stride=bac_model.stride,
            merge=bac_model.merge,
            skip=bac_model.skip,
            output_activation=bac_model.output_activation,
        )
        for t in thresholds:
            per_image[t].append(
                evaluate_image(name, prediction, truth, threshold=t, x=xx, patch_size=preset.patch_size, stride=448)
            )
        if progress:
            progress(done, name)
    summaries = {t: summarise(per_image[t], threshold=t, x=xx) for t in thresholds}
    return summaries, per_image

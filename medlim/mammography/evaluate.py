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

Two figures a reader of a BAC burden asks first (issue 13): the relative bias
of the summed burden, ``(Σ predicted TAM_100 − Σ true TAM_100) / Σ true
TAM_100`` over the images, and the false calcified area on views without BAC
(median AM in mm² over the BAC-free views, when the files carry a pixel
spacing; in pixels always).

:func:`evaluate_bac_data` runs the same protocol on a user's folder of
annotated views (``image,mask`` manifest or a Decathlon ``dataset.json``): the
figures of ``medlim bac evaluate --data DIR`` (several cut-offs at once:
:mod:`medlim.mammography.sweep`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlim.core.datasets import TRAINING_ONLY_PROBLEMS
from medlim.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.datasets import Dataset
    from medlim.mammography.analysis import BacModel
    from medlim.mammography.gating import ComponentGate
    from medlim.mammography.inference import BacPrediction
    from medlim.mammography.regions import RegionFilter
    from medlim.mammography.spacing import ScaledPrediction

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
    "sweep_gates",
    "sweep_cutoffs_and_gates",
    "sweep_region_filter",
    "predict_view",
    "AnnotatedView",
    "read_annotated_view",
    "BacDataEvaluation",
    "evaluate_bac_data",
    "evaluation_table_lines",
    "check_evaluation_folder",
    "annotated_samples",
    "number_text",
    "view_progress",
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
    """One image: pixel metrics, patch metrics and both sets of readouts.

    Attributes:
        name: image name.
        whole: whole-image pixel metrics.
        patches: pixel metrics of each grid patch holding BAC.
        predicted, truth: the five readouts from the map and from the mask.
        counts: ``(tp, fp, fn, tn)`` pixels.
        tam_100: ``(predicted, true)`` TAM_100 (X = 100 whatever X the readouts use).
        pixel_area_mm2: area of one pixel in mm², or ``None`` without a spacing.
        unlike_training: whether the weights' training-data check flagged the view
            (``None``: the weights carry no check).
    """

    name: str
    whole: dict[str, float]
    patches: tuple[dict[str, float], ...]
    predicted: dict[str, float]
    truth: dict[str, float]
    counts: tuple[int, int, int, int]
    tam_100: tuple[float, float] = (math.nan, math.nan)
    pixel_area_mm2: float | None = None
    unlike_training: bool | None = None

    @property
    def has_bac(self) -> bool:
        """True when the ground truth holds a BAC pixel."""
        return self.counts[0] + self.counts[2] > 0


@dataclass(frozen=True)
class BacEvaluation:
    """Summary over images (the figures written into a weights manifest).

    Attributes:
        images: images evaluated; ``patches``: grid patches holding BAC.
        whole_image, whole_image_std: mean and SD over the images with BAC.
        whole_image_pooled: metrics of all pixels pooled.
        patch_wise: mean over the BAC patches.
        agreement: readout → :class:`Agreement` with ground truth.
        threshold, x: cut-off t and intensity threshold X.
        tam_relative_bias: ``(Σ predicted − Σ true) / Σ true`` of TAM_100 (NaN when Σ true is 0).
        bac_free_images: images whose mask holds no BAC.
        false_am_px_median: median predicted AM (px) over those (NaN without any).
        false_am_mm2_median: the same in mm² over those whose file gives a pixel
            spacing (``None`` when none does).
        unlike_training_checked, unlike_training_flagged: views the weights'
            training-data check scored, and those it flagged as unlike the
            training data (issue 13: a model's own kind of images should rarely be).
    """

    images: int
    patches: int
    whole_image: dict[str, float]
    whole_image_std: dict[str, float]
    whole_image_pooled: dict[str, float]
    patch_wise: dict[str, float]
    agreement: dict[str, Agreement]
    threshold: float
    x: float
    tam_relative_bias: float = math.nan
    bac_free_images: int = 0
    false_am_px_median: float = math.nan
    false_am_mm2_median: float | None = None
    unlike_training_checked: int = 0
    unlike_training_flagged: int = 0

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
    prediction: BacPrediction,
    truth_mask: np.ndarray,
    *,
    threshold: float,
    x: float,
    patch_size: int = 512,
    stride: int = 448,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
) -> ImageEvaluation:
    """Compare one prediction with its ground-truth mask.

    Args:
        name: image name.
        prediction: inference result (probability map and preprocessed image).
        truth_mask: ``np.bool_[H, W]`` ground-truth BAC.
        threshold: probability cut-off t.
        x: intensity threshold X.
        patch_size, stride: grid of the patch-wise evaluation (thesis: 512, 64 px overlap).
        pixel_spacing_mm: the file's pixel spacing (one number or (row, column)), or ``None``.
    """
    from medlim.core.metrics import confusion_counts, pixel_metrics
    from medlim.core.tiling import patch_grid
    from medlim.mammography.quantify import quantify_bac, quantify_prediction

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
    if x == 100.0:
        tam_100 = (float(pred.tam_x), float(true.tam_x))
    else:
        tam_100 = (float(quantify_prediction(prediction, threshold=threshold, x=100.0).tam_x),
                   float(quantify_bac(truth_mask.astype(np.float32), prediction.preprocessed.grey, threshold=0.5,
                                      x=100.0, breast_mask=prediction.preprocessed.breast_mask,
                                      intensity_rule=pred.intensity_rule).tam_x))
    return ImageEvaluation(
        name=name,
        whole=whole,
        patches=tuple(patches),
        predicted={k: float(getattr(pred, k)) for k in READOUTS},
        truth={k: float(getattr(true, k)) for k in READOUTS},
        counts=confusion_counts(truth_mask, predicted_mask),
        tam_100=tam_100,
        pixel_area_mm2=_pixel_area(pixel_spacing_mm),
    )


def _pair(spacing: float | tuple[float, float]) -> tuple[float, float]:
    """(row, column) from one number or a pair (a sample's spacing)."""
    from medlim.core.spacing import spacing_pair

    return spacing_pair(spacing)


def _pixel_area(pixel_spacing_mm: float | tuple[float, float] | None) -> float | None:
    """mm² of one pixel, or ``None`` without a usable spacing."""
    if pixel_spacing_mm is None:
        return None
    pair = (pixel_spacing_mm, pixel_spacing_mm) if np.isscalar(pixel_spacing_mm) else tuple(pixel_spacing_mm)
    if len(pair) != 2 or not all(math.isfinite(float(v)) and float(v) > 0 for v in pair):
        raise ParameterError(f"pixel spacing must be one positive number or (row, column) in mm; {pixel_spacing_mm!r}.")
    return float(pair[0]) * float(pair[1])


def _burden_figures(evaluations: Sequence[ImageEvaluation]) -> dict[str, Any]:
    """TAM_100 relative bias over all images and the false AM of the BAC-free ones (issue 13)."""
    predicted = float(sum(e.tam_100[0] for e in evaluations))
    true = float(sum(e.tam_100[1] for e in evaluations))
    free = [e for e in evaluations if not e.has_bac]
    in_mm2 = [e.predicted["am"] * e.pixel_area_mm2 for e in free if e.pixel_area_mm2 is not None]
    return {
        "tam_relative_bias": (predicted - true) / true if true > 0 else math.nan,
        "bac_free_images": len(free),
        "false_am_px_median": float(np.median([e.predicted["am"] for e in free])) if free else math.nan,
        "false_am_mm2_median": float(np.median(in_mm2)) if in_mm2 else None,
        "unlike_training_checked": sum(1 for e in evaluations if e.unlike_training is not None),
        "unlike_training_flagged": sum(1 for e in evaluations if e.unlike_training),
    }


def summarise(evaluations: Iterable[ImageEvaluation], *, threshold: float, x: float) -> BacEvaluation:
    """Aggregate per-image evaluations (only images with BAC count towards the whole-image mean)."""
    evaluations = list(evaluations)
    if not evaluations:
        raise ParameterError("No images to evaluate.")
    keys = ("recall", "precision", "accuracy", "f1", "jaccard")
    with_bac = [e for e in evaluations if e.has_bac] or evaluations
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
        **_burden_figures(evaluations),
    )


def evaluate_bac(
    bac_model: BacModel,
    samples: Iterable[tuple[Any, ...]],
    *,
    threshold: float | None = None,
    x: float | None = None,
    progress: Callable[[int, str], None] | None = None,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
) -> tuple[BacEvaluation, list[ImageEvaluation]]:
    """Run the model on annotated images and summarise at one cut-off.

    Args:
        bac_model: loaded weights (:func:`medlim.mammography.analysis.load_bac_model`).
        samples: ``(name, image np.uint8[H, W], truth np.bool_[H, W])`` triples, or quadruples
            with the pixel spacing in mm (one number, ``(row, column)`` or ``None``) last, or quintuples
            with the DICOM presentation intent after it (a For-Processing view is counted as flagged).
        threshold, x: cut-off and X (None: the weights').
        progress: ``progress(done, name)`` after each image.
        pixel_spacing_mm: the spacing the person states for every image, overriding the samples'.
    """
    t = bac_model.threshold if threshold is None else threshold
    summaries, per_image = sweep_thresholds(bac_model, samples, thresholds=(t,), x=x, progress=progress,
                                            pixel_spacing_mm=pixel_spacing_mm)
    return summaries[t], per_image[t]


def sweep_thresholds(
    bac_model: BacModel,
    samples: Iterable[tuple[Any, ...]],
    *,
    thresholds: Sequence[float],
    x: float | None = None,
    progress: Callable[[int, str], None] | None = None,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
) -> tuple[dict[float, BacEvaluation], dict[float, list[ImageEvaluation]]]:
    """Evaluate several cut-offs from one inference per image (the maps are reused).

    This is how a set of weights' cut-off is chosen on validation phantoms,
    before the held-out evaluation (``medlim bac evaluate --thresholds``).
    Each image is resampled to the weights' pixel spacing for inference when its
    own (``pixel_spacing_mm`` when given, else the sample's) lies outside their
    training range, and compared with its mask on its own grid (issue 13).
    """
    if not thresholds:
        raise ParameterError("Give at least one probability cut-off.")
    for t in thresholds:
        if not 0.0 <= t <= 1.0:
            raise ParameterError(f"probability cut-offs must be in [0, 1]; {t} is given.")
    xx = bac_model.x if x is None else x
    per_image = _sweep(bac_model, samples, {t: (t, None, None) for t in thresholds}, x=xx, progress=progress,
                       pixel_spacing_mm=pixel_spacing_mm)
    summaries = {t: summarise(per_image[t], threshold=t, x=xx) for t in thresholds}
    return summaries, per_image


def sweep_gates(
    bac_model: BacModel,
    samples: Iterable[tuple[Any, ...]],
    *,
    gates: Sequence[ComponentGate],
    progress: Callable[[int, str], None] | None = None,
) -> dict[ComponentGate, list[ImageEvaluation]]:
    """Evaluate several gates (:mod:`medlim.mammography.gating`), each at its floor as the cut-off, from one
    ungated inference per image (the weights' own gate and region filter, if any, are set aside)."""
    if not gates:
        raise ParameterError("Give at least one gate.")
    return _sweep(replace(bac_model, gate=None, region_filter=None), samples, {g: (g.floor, g, None) for g in gates},
                  x=bac_model.x, progress=progress, pixel_spacing_mm=None)


def sweep_cutoffs_and_gates(
    bac_model: BacModel,
    samples: Iterable[tuple[Any, ...]],
    *,
    cutoffs: Sequence[float],
    gates: Sequence[ComponentGate],
    progress: Callable[[int, str], None] | None = None,
) -> tuple[dict[float, list[ImageEvaluation]], dict[ComponentGate, list[ImageEvaluation]]]:
    """Plain cut-offs and gates (each at its floor) from one ungated inference per image (the weights' own gate and
    region filter set aside): what :func:`sweep_thresholds` and :func:`sweep_gates` give, for half the inference —
    the trainer's choice of a cut-off and a gate (:mod:`medlim.mammography.selection`) made on a folder at once."""
    if not cutoffs or not gates:
        raise ParameterError("Give at least one probability cut-off and one gate.")
    settings: dict[Any, tuple[float, ComponentGate | None, RegionFilter | None]] = {
        ("cutoff", t): (t, None, None) for t in cutoffs}
    settings.update({("gate", g): (g.floor, g, None) for g in gates})
    per = _sweep(replace(bac_model, gate=None, region_filter=None), samples, settings, x=bac_model.x,
                 progress=progress, pixel_spacing_mm=None)
    return ({key[1]: views for key, views in per.items() if key[0] == "cutoff"},
            {key[1]: views for key, views in per.items() if key[0] == "gate"})


def sweep_region_filter(
    bac_model: BacModel,
    samples: Iterable[tuple[Any, ...]],
    *,
    region_filter: RegionFilter,
    cutoff: float,
    gate: ComponentGate | None = None,
    progress: Callable[[int, str], None] | None = None,
) -> dict[bool, list[ImageEvaluation]]:
    """The views evaluated at ``cutoff`` after ``gate``, with (``True``) and without (``False``) ``region_filter``
    (:mod:`medlim.mammography.regions`), from one inference per image (the weights' own gate and filter set aside)."""
    return _sweep(replace(bac_model, gate=None, region_filter=None), samples,
                  {True: (cutoff, gate, region_filter), False: (cutoff, gate, None)}, x=bac_model.x,
                  progress=progress, pixel_spacing_mm=None)


def _sweep(
    bac_model: BacModel,
    samples: Iterable[tuple[Any, ...]],
    settings: Mapping[Any, tuple[float, ComponentGate | None, RegionFilter | None]],
    *,
    x: float,
    progress: Callable[[int, str], None] | None,
    pixel_spacing_mm: float | tuple[float, float] | None,
) -> dict[Any, list[ImageEvaluation]]:
    """key → per-image evaluations at that key's ``(cut-off, gate, region filter)``, one inference per image."""
    from medlim.mammography.preprocess import get_preset
    from medlim.mammography.spacing import on_image_grid

    preset = get_preset(bac_model.preset)
    per_image: dict[Any, list[ImageEvaluation]] = {key: [] for key in settings}
    for done, (name, image, truth, *rest) in enumerate(samples, start=1):
        scaled, spacing = predict_view(bac_model, image, rest[0] if rest else None, pixel_spacing_mm=pixel_spacing_mm)
        flagged = _flagged(bac_model, scaled.model_view, rest[1] if len(rest) > 1 else None)
        shape = (int(image.shape[0]), int(image.shape[1]))
        for key, (cutoff, gate, region_filter) in settings.items():
            prediction = scaled.prediction
            if gate is not None or region_filter is not None:  # as the weights apply them (medlim.mammography.spacing)
                prediction, _ = on_image_grid(scaled.network or scaled.prediction, shape, gate=gate,
                                              region_filter=region_filter, spacing_mm=scaled.decision.pixel_spacing_mm)
            evaluation = evaluate_image(name, prediction, truth, threshold=cutoff, x=x,
                                        patch_size=preset.patch_size, stride=448, pixel_spacing_mm=spacing)
            per_image[key].append(replace(evaluation, unlike_training=flagged))
        if progress:
            progress(done, name)
    return per_image


def predict_view(
    bac_model: BacModel,
    image: np.ndarray,
    file_spacing: float | tuple[float, float] | None,
    *,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
) -> tuple[ScaledPrediction, tuple[float, float] | None]:
    """One annotated view's inference as ``medlim bac evaluate`` runs it, and the spacing its areas are in.

    Args:
        image: ``np.uint8[H, W]`` the view.
        file_spacing: the file's pixel spacing (mm), or ``None``.
        pixel_spacing_mm: a spacing the person states for every view, overriding the file's.

    Returns:
        ``(scaled prediction, spacing)``: the prediction on the view's own grid (resampled to the weights'
        spacing for inference when needed; the weights' gate applied) and the view's spacing in mm — ``None``
        when only the weights' own spacing was assumed (areas then stay in pixels).
    """
    from medlim.core.spacing import MODEL_DEFAULT
    from medlim.mammography.spacing import bac_spacing, predict_at_model_spacing

    decision = bac_spacing(bac_model, file_spacing_mm=None if file_spacing is None else _pair(file_spacing),
                           file_source="file", pixel_spacing_mm=pixel_spacing_mm,
                           shape=(int(image.shape[0]), int(image.shape[1])))
    scaled = predict_at_model_spacing(image, bac_model, decision)
    # mm² only where the spacing is known (a stated or file spacing), never an assumed one
    return scaled, None if decision.spacing_source == MODEL_DEFAULT else decision.pixel_spacing_mm


def _flagged(bac_model: BacModel, model_view: Any, presentation_intent: str | None = None) -> bool | None:
    """Whether the weights' training-data check flags a view as inference saw it (``None``: no check); a
    For-Processing file is flagged whatever its score, as on the page and in ``bac quantify``."""
    if bac_model.familiarity is None:
        return None
    from medlim.mammography.familiarity import assess_mammogram

    return bool(assess_mammogram(bac_model.familiarity, model_view,
                                 presentation_intent=presentation_intent)[0].flagged)


# -------------------------------------------------------------------------------------------------
# a user's annotated views (``medlim bac evaluate --data DIR``)


@dataclass(frozen=True)
class AnnotatedView:
    """One view of a user's folder, read once.

    Attributes:
        name: the file, relative to the folder (for progress lines; never recorded in a manifest).
        image: ``np.uint8[H, W]`` the reader's 8-bit grey image (DICOM windowing and
            MONOCHROME1 applied; a colour export turned to its channel mean).
        mask: ``np.bool_[H, W]`` ground-truth BAC (any non-zero mask pixel).
        pixel_spacing_mm: ``(row, column)`` mm, or ``None`` when the file has none.
        presentation_intent: a DICOM file's ``"FOR PRESENTATION"``/``"FOR PROCESSING"``, else ``None``.
    """

    name: str
    image: np.ndarray
    mask: np.ndarray
    pixel_spacing_mm: tuple[float, float] | None
    presentation_intent: str | None = None

    def sample(self) -> tuple[str, np.ndarray, np.ndarray, tuple[float, float] | None, str | None]:
        """The tuple :func:`evaluate_bac` takes (with the presentation intent the training-data check uses)."""
        return self.name, self.image, self.mask, self.pixel_spacing_mm, self.presentation_intent


def read_annotated_view(dataset: "Dataset", index: int) -> AnnotatedView:
    """Read item ``index`` of a ``segmentation_mask`` or ``msd`` dataset.

    Raises:
        MedlimError: a file cannot be read; InputError: the mask is not the image's size.
    """
    from medlim.core.io import read_image, read_labels
    from medlim.errors import InputError

    item = dataset.items[index]
    name = dataset.display_name(item.image)
    record = read_image(item.image, name=name)
    image = record.to_uint8()
    if image.ndim == 3:
        image = np.rint(image.astype(np.float32).mean(axis=2)).astype(np.uint8)
    if item.mask is None:
        raise InputError(f"{name} has no mask; the BAC tasks need an image,mask manifest or a dataset.json.")
    mask = read_labels(item.mask, name=dataset.display_name(item.mask))[1]
    mask = (mask.max(axis=2) if mask.ndim == 3 else mask) != 0
    if mask.shape != image.shape:
        raise InputError(f"the mask of {name} is {mask.shape[0]}×{mask.shape[1]} px, its image "
                         f"{image.shape[0]}×{image.shape[1]} px.")
    spacing = record.metadata.pixel_spacing_mm
    return AnnotatedView(name=name, image=image, mask=mask,
                         pixel_spacing_mm=None if spacing is None else (float(spacing[0]), float(spacing[1])),
                         presentation_intent=record.metadata.presentation_intent)


@dataclass(frozen=True)
class BacDataEvaluation:
    """``medlim bac evaluate --data DIR``: the thesis protocol on a user's annotated views.

    Attributes:
        weights: ``name@version`` of the weights evaluated.
        fingerprint: the folder's dataset fingerprint id (names the data, never a path).
        summary: the figures (:class:`BacEvaluation`, as for phantoms).
        views_with_spacing: views whose file carries a pixel spacing.
        dropped: rows left out by ``--skip-bad``.
    """

    weights: str
    fingerprint: str
    summary: BacEvaluation
    views_with_spacing: int
    dropped: int = 0
    per_image: tuple[ImageEvaluation, ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        """Strict-JSON summary: today's keys (``images``, ``whole_image.f1``, ``agreement``, …) and
        ``tam_relative_bias``, ``false_am_mm2_median``; non-finite numbers as ``null``."""
        from medlim.core.weights.entry import json_safe

        return json_safe({"weights": self.weights, "data": {"fingerprint": self.fingerprint,
                                                            "views_with_spacing": self.views_with_spacing,
                                                            "dropped": self.dropped},
                          **self.summary.to_dict()})

    def table_lines(self) -> list[str]:
        """The text report: the phantom evaluation's tables for the user's views."""
        head = (f"{self.weights} on {self.summary.images} annotated views of dataset {self.fingerprint}, "
                f"t={self.summary.threshold:g}, X={self.summary.x:g}")
        return evaluation_table_lines(self.summary, head)


def number_text(value: float | None, fmt: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, fmt)


def evaluation_table_lines(summary: BacEvaluation, head: str) -> list[str]:
    """The segmentation and agreement tables of a :class:`BacEvaluation` (phantoms or a user's views)."""
    lines = [head, f"{'':14}{'recall':>9}{'precision':>11}{'accuracy':>10}{'F1/Dice':>9}{'Jaccard':>9}"]
    for label, values in (("patch-wise", summary.patch_wise), ("whole image", summary.whole_image),
                          ("pooled", summary.whole_image_pooled)):
        lines.append(f"{label:14}" + "".join(f"{number_text(values[k], '.3f'):>{w}}" for k, w in
                                               (("recall", 9), ("precision", 11), ("accuracy", 10), ("f1", 9),
                                                ("jaccard", 9))))
    lines.append(f"{'readout':10}{'R2':>8}{'bias':>14}{'LoA low':>14}{'LoA high':>14}")
    for key, a in summary.agreement.items():
        lines.append(f"{key:10}{number_text(a.r2, '.3f'):>8}{number_text(a.bias, '.1f'):>14}{number_text(a.loa_low, '.1f'):>14}"
                     f"{number_text(a.loa_high, '.1f'):>14}")
    bias = summary.tam_relative_bias
    lines.append(f"TAM_100 relative bias (Σpredicted − Σtrue)/Σtrue: "
                 f"{'n/a (no BAC in the masks)' if not math.isfinite(bias) else f'{100 * bias:+.1f} %'}")
    if summary.bac_free_images:
        area = ("" if summary.false_am_mm2_median is None else f"{summary.false_am_mm2_median:.2f} mm², ")
        lines.append(f"false AM on {summary.bac_free_images} BAC-free views (median): {area}"
                     f"{summary.false_am_px_median:.0f} px")
    else:
        lines.append("false AM: no BAC-free view to measure it on")
    if summary.unlike_training_checked:
        lines.append(f"training-data check: {summary.unlike_training_flagged} of {summary.unlike_training_checked} "
                     "views flagged as unlike the weights' training data")
    return lines


def annotated_samples(dataset: "Dataset") -> Iterator[tuple[str, np.ndarray, np.ndarray, tuple[float, float] | None]]:
    for index in range(len(dataset)):
        yield read_annotated_view(dataset, index).sample()


def check_evaluation_folder(
    directory: str | Path, *, skip_bad: bool, progress: Callable[[str], None] | None
) -> tuple["Dataset", str, int]:
    """The folder checked as ``medlim data check --task bac`` checks it (a small one is fine), its fingerprint id
    and the number of rows ``skip_bad`` left out."""
    from medlim.core.datasets import dataset_fingerprint
    from medlim.core.training import check_folder

    dataset, check, dropped = check_folder(directory, task="bac", what="evaluation folder", skip_bad=skip_bad,
                                           ignore=TRAINING_ONLY_PROBLEMS, progress=progress)
    return dataset, dataset_fingerprint(dataset, check=check).id, 0 if dropped is None else len(dropped.dropped)


def view_progress(progress: Callable[[str], None] | None, total: int) -> Callable[[int, str], None] | None:
    """``progress(done, name)`` of the evaluation as ``"[done/total] name"`` lines for ``progress`` (or ``None``)."""
    return None if progress is None else lambda done, name: progress(f"[{done}/{total}] {name}")


def evaluate_bac_data(
    bac_model: BacModel,
    directory: str | Path,
    *,
    threshold: float | None = None,
    x: float | None = None,
    skip_bad: bool = False,
    progress: Callable[[str], None] | None = None,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
) -> BacDataEvaluation:
    """Evaluate BAC weights on a user's annotated views with the phantom protocol.

    The folder is checked as ``medlim data check --task bac`` checks it (a
    small folder is fine here); problems are refused unless ``skip_bad``
    leaves out the rows that have them.

    Args:
        bac_model: loaded weights (:func:`medlim.mammography.analysis.load_bac_model`).
        directory: an ``image,mask`` manifest folder or a Decathlon ``dataset.json`` folder.
        threshold, x: cut-off and X (None: the weights').
        skip_bad: leave out rows with problems.
        progress: receives one line per view.
        pixel_spacing_mm: the spacing the person states for every view (mm), overriding the files'.

    Returns:
        :class:`BacDataEvaluation`.

    Raises:
        DatasetProblemsError: the folder has problems (exit 2 at the command line).
    """
    dataset, fingerprint, dropped = check_evaluation_folder(directory, skip_bad=skip_bad, progress=progress)
    summary, per_image = evaluate_bac(bac_model, annotated_samples(dataset), threshold=threshold, x=x,
                                      pixel_spacing_mm=pixel_spacing_mm,
                                      progress=view_progress(progress, len(dataset)))
    return BacDataEvaluation(weights=bac_model.label, fingerprint=fingerprint, summary=summary,
                             views_with_spacing=sum(1 for e in per_image if e.pixel_area_mm2 is not None),
                             dropped=dropped, per_image=tuple(per_image))

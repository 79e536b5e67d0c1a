"""BAC analysis of one mammogram, as the page and the CLI both run it (thesis §3.3).

``load_bac_model`` turns a weights name (registry) or the path of an authors'
checkpoint (imported on the fly with the ``published`` preset) into a
:class:`BacModel` that knows its preprocessing preset, overlap, merge rule,
skip rule, cut-off and output activation from the weights' manifest.
``analyse_mammogram`` checks that the image is a plausible mammogram, runs
whole-image inference once — at the weights' pixel spacing, resampling the
image when its own lies outside their training range and mapping the maps back
(issue 13; :mod:`.spacing`) — scores the image the model saw against the
training-data check stored with the weights (issue 13; :mod:`.familiarity`) and
quantifies; ``requantify`` recomputes the
readouts for another cut-off or X from the cached probability map (no
re-inference), which is what the page's sliders call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medlim.core.io.record import ImageRecord
from medlim.errors import ParameterError, WrongModalityError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from medlim.core.familiarity import FamiliarityCheck, FamiliarityResult
    from medlim.core.weights import Registries, Registry, WeightsEntry
    from medlim.mammography.cutoffs import CutoffTable
    from medlim.mammography.gating import ComponentGate
    from medlim.mammography.inference import BacPrediction
    from medlim.mammography.preprocess import PreprocessedImage
    from medlim.mammography.quantify import BacMetrics
    from medlim.mammography.regions import FilterEffect, RegionFilter

__all__ = [
    "BAC_TASK",
    "DEFAULT_BAC_WEIGHTS",
    "default_bac_weights",
    "MIN_BINNED_SIDE",
    "MIN_MAMMOGRAM_SIDE",
    "MIN_MAMMOGRAM_SIDE_MM",
    "SECONDARY_CAPTURE_NOTE",
    "BacModel",
    "BacAnalysis",
    "load_bac_model",
    "bac_model_from_entry",
    "check_mammogram",
    "analyse_mammogram",
    "requantify",
]

#: Registry task of SCU-Net BAC weights.
BAC_TASK = "bac-segmentation"

#: Registry name of the project's own SCU-Net weights (used when no entry is marked as the task's default).
DEFAULT_BAC_WEIGHTS = "scunet-bac"

#: Smallest side (pixels) accepted as a mammogram: one SCU-Net patch.
MIN_MAMMOGRAM_SIDE = 512
#: Said of a DICOM of modality OT (a secondary capture): taken, as some archives store exports so, but doubted.
SECONDARY_CAPTURE_NOTE = (
    "This DICOM is a secondary capture (modality OT: an export or screenshot), not the original mammogram: its "
    "grey levels, size and any burned-in text depend on how it was made, so the readouts may differ from the "
    "original's. Use the original (modality MG) where you can."
)
#: With a known spacing, a smaller (binned) view is a mammogram when its shorter side covers this much (mm):
#: what 512 px cover at a detector's 0.07 mm ...
MIN_MAMMOGRAM_SIDE_MM = 35.84
#: ... and holds at least this many pixels.
MIN_BINNED_SIDE = 256


@dataclass(frozen=True)
class BacModel:
    """A loaded SCU-Net with the settings its weights carry.

    Attributes:
        entry: the weights' manifest entry (name, version, preset, ...).
        model: the network, in eval mode, on its device.
        preset: preprocessing preset name.
        stride: patch stride (512 − overlap).
        merge: overlap merge rule.
        skip: background patches skipped by the preset's rule (True), only
            black ones (``"black"``), or none (False).
        output_activation: ``"identity"`` or ``"sigmoid"``.
        threshold: default probability cut-off t.
        x: default intensity threshold X.
        familiarity: the "unlike my training data" check stored with the weights
            (:func:`medlim.core.familiarity.load_familiarity`, sha256 checked), or
            ``None`` when the weights carry none (e.g. an authors' checkpoint).
        gate: hysteresis of the probability map (:mod:`medlim.mammography.gating`; the
            manifest's ``params.gate``), or ``None``: the thesis's single cut-off.
        region_filter: regions that look like tissue dropped after the gate (:mod:`medlim.mammography.regions`;
            the manifest's ``params.region_filter``), or ``None``.
    """

    entry: WeightsEntry
    model: torch.nn.Module
    preset: str
    stride: int
    merge: str
    skip: bool | str
    output_activation: str
    threshold: float
    x: float
    familiarity: FamiliarityCheck | None = None
    gate: ComponentGate | None = None
    region_filter: RegionFilter | None = None

    @property
    def label(self) -> str:
        """``name v<version>`` for reports."""
        return f"{self.entry.name} v{self.entry.version}"


@dataclass(frozen=True)
class BacAnalysis:
    """One mammogram analysed.

    Attributes:
        name: file name.
        prediction: the inference result (probability map, preprocessed image, breast mask).
        metrics: readouts at the weights' default cut-off and X.
        view: ``"CC"``/``"MLO"``/None; laterality ``"L"``/``"R"``/None; study_date ISO or None;
        patient_key: pseudonymous key or None.
        pixel_spacing_mm / spacing_source: physical scale of the image as given and where
            it came from: ``"user"``, the file's tag (``"PixelSpacing"`` …) or
            ``"model-default"`` (the file states none; the weights' own is assumed),
            ``None`` when neither the file nor the weights have one.
        weights: ``name v<version>`` of the weights used.
        warnings: plain-language warnings (e.g. "For Processing" image, unlike the training data).
        seconds: wall-clock seconds of inference plus quantification.
        unlike_training: the training-data check's score, limit and flag, or
            ``None`` when the weights carry no check.
        model_spacing_mm: the weights' spacing when the image was resampled to it for
            inference (issue 13; maps and readouts are back on the image's grid), else ``None``.
        region_filter: what the weights' region filter dropped from this view, or ``None`` when they carry none.
    """

    name: str
    prediction: BacPrediction
    metrics: BacMetrics
    view: str | None
    laterality: str | None
    study_date: str | None
    patient_key: str | None
    pixel_spacing_mm: tuple[float, float] | None
    spacing_source: str | None
    weights: str
    warnings: tuple[str, ...]
    seconds: float
    unlike_training: FamiliarityResult | None = None
    model_spacing_mm: tuple[float, float] | None = None
    region_filter: FilterEffect | None = None

    def mask(self, threshold: float | None = None) -> np.ndarray:
        """``np.uint8[H, W]`` BAC mask, 255 where ``p > threshold`` (default: the analysis cut-off)."""
        t = self.metrics.threshold if threshold is None else threshold
        return np.where(self.prediction.probability > t, np.uint8(255), np.uint8(0))


def _skip_setting(value: object) -> bool | str:
    """The manifest's skip rule: true / a mapping of the preset's bounds (imported checkpoints), false, or "black"."""
    if isinstance(value, dict):
        return True
    if value in ("black", True, False):
        return value  # type: ignore[return-value]
    raise ParameterError(f"the weights' skip rule must be true, false or 'black'; {value!r} is given.")


def bac_model_from_entry(entry: WeightsEntry, model: torch.nn.Module) -> BacModel:
    """A :class:`BacModel` from a manifest entry and its loaded network (settings read from the entry).

    The training-data check named by the entry is read and its sha256 checked here.

    Raises:
        WeightsError: the entry's check file is missing or malformed.
        ChecksumError: the check file does not match the manifest.
    """
    from medlim.core.familiarity import load_familiarity
    from medlim.mammography.gating import gate_from_params
    from medlim.mammography.preprocess import get_preset
    from medlim.mammography.regions import region_filter_from_params

    preset = get_preset(entry.preset)
    params = dict(entry.params)
    overlap = int(params.get("overlap", preset.overlap))
    if not 0 <= overlap < preset.patch_size:
        raise ParameterError(f"overlap must be in [0, {preset.patch_size}); the weights give {overlap}.")
    activation = str(params.get("output_activation", "identity"))
    return BacModel(
        entry=entry,
        model=model,
        preset=preset.name,
        stride=preset.patch_size - overlap,
        merge=str(params.get("merge", preset.merge)),
        skip=_skip_setting(params.get("skip", True)),
        output_activation=activation,
        threshold=float(entry.thresholds.get("output", preset.threshold)),
        x=float(params.get("x", preset.intensity_x)),
        familiarity=load_familiarity(entry),
        gate=gate_from_params(params),
        region_filter=region_filter_from_params(params),
    )


def default_bac_weights(registry: Registries | None = None) -> str:
    """``name@version`` of the BAC weights used when none are named.

    The task's default (:meth:`medlim.core.weights.Registries.default`: the
    user's own choice on the Models page while it exists, else the shipped entry
    marked ``"default": true``); without one, the highest version of
    :data:`DEFAULT_BAC_WEIGHTS`.

    Args:
        registry: the shipped and user registries (None: from the settings).
    """
    from medlim.core.weights import Registries

    registry = Registries.load() if registry is None else registry
    entry = registry.default(BAC_TASK)
    return DEFAULT_BAC_WEIGHTS if entry is None else f"{entry.name}@{entry.version}"


def load_bac_model(
    weights: str | Path | None = None,
    *,
    registry: Registry | Registries | None = None,
    device: str | torch.device | None = None,
) -> BacModel:
    """Load SCU-Net weights by registry name or from an authors' checkpoint file.

    Args:
        weights: a registry name (``NAME``, ``NAME@VERSION`` or ``NAME:VERSION``),
            the path of a ``.pt``/``.pth`` checkpoint of the authors (imported in
            memory with the ``scunet-published`` importer and ``published``
            preset), or None for the task's default (:func:`default_bac_weights`).
        registry: where names are looked up (None: the shipped and user
            registries of the settings, :class:`medlim.core.weights.Registries`).
        device: torch device (None: CUDA when present, else CPU).

    Raises:
        WeightsError: unknown name, checksum mismatch, or a checkpoint that does not map.
    """
    from medlim.core.weights import Registries, build_model, parse_model_spec
    from medlim.core.weights.importing import load_checkpoint_in_memory

    if weights is not None:
        path = Path(str(weights))
        if path.suffix.lower() in {".pt", ".pth", ".ckpt"} and path.is_file():
            loaded = load_checkpoint_in_memory(
                path, importer="scunet-published", device=device, name="published-checkpoint"
            )
            return bac_model_from_entry(loaded.entry, loaded.model)
    registry = Registries.load() if registry is None else registry
    if weights is None:
        weights = default_bac_weights(registry) if isinstance(registry, Registries) else DEFAULT_BAC_WEIGHTS
    spec = parse_model_spec(str(weights))
    entry = registry.get(spec.name, spec.version)
    return bac_model_from_entry(entry, build_model(entry, device=device))


#: Share of the breast that the file's display window may show as black before a warning names the window.
WINDOW_CLIP_SHARE = 0.1


def window_clip_share(record: ImageRecord) -> float | None:
    """Share of the breast that the file's display window (VOI window or LUT) shows as black, or ``None``.

    The thesis, and the breast mask of every preset, take the breast as the pixels above black on the presented
    image, so a window narrower than the breast's values turns fatty tissue into "air": on a phantom view a narrow
    window left 0.7 % of the pixels above black instead of 24 %, and AM went from 642 to 165 px. The breast is
    found in the stored values instead: the pixels that differ from the air — the border strip that looks darkest,
    its median ± 4 robust SD, at least 1 % of the stored range — and the share of them shown black is returned.
    ``None`` when the reader applied no window (a value-range stretch cannot clip) or the view shows no breast.
    The view is read on a grid of at most about 1,024 px a side.
    """
    from medlim.mammography.preprocess import border_strips

    window = record.metadata.display_window
    if window is None or window.kind not in ("window", "lut"):
        return None
    raw, shown = np.asarray(record.raw), np.asarray(record.pixels)
    if raw.ndim != 2 or shown.shape[:2] != raw.shape:
        return None
    step = max(1, min(raw.shape) // 1024)
    raw, shown = raw[::step, ::step].astype(np.float32), shown[::step, ::step]
    darkest = min(border_strips(*raw.shape), key=lambda strip: float(np.median(shown[strip])))
    air = raw[darkest].ravel()
    centre = float(np.median(air))
    band = max(4.0 * 1.4826 * float(np.median(np.abs(air - centre))), 0.01 * float(raw.max() - raw.min()))
    breast = np.abs(raw - centre) > band
    if band <= 0 or breast.mean() < 0.01:
        return None
    return float(np.count_nonzero(breast & (shown <= 0)) / np.count_nonzero(breast))


def window_clip_note(record: ImageRecord) -> str | None:
    """The warning for a display window that shows a tenth or more of the breast as black (else ``None``)."""
    share = window_clip_share(record)
    if share is None or share < WINDOW_CLIP_SHARE:
        return None
    window = record.metadata.display_window
    named = (f" (centre {window.center:g}, width {window.width:g})"
             if window is not None and window.kind == "window" else "")
    return (f"The file's display window{named} shows {share:.0%} of the breast as black, so that part counts as "
            "background: the breast and its calcification are measured on the rest, and the numbers depend on the "
            "window. Export the view with a window that shows the whole breast.")


#: Radiography modalities a mammogram is sometimes stored as (computed radiography cassettes, some DR exports).
RADIOGRAPHY_MODALITIES = frozenset({"CR", "DX"})
#: View positions (ViewPosition, or its code's meaning) only mammography uses: a CR or DX file naming one is a
#: mammogram; a chest's AP / PA / LL is not.
MAMMOGRAPHY_VIEWS = frozenset({"CC", "MLO", "ML", "LM", "LMO", "SIO", "XCCL", "XCCM", "FB", "CV", "AT", "RCC", "LCC",
                               "RMLO", "LMLO"})


def check_mammogram(record: ImageRecord, *, pixel_spacing_mm: tuple[float, float] | None = None) -> tuple[str, ...]:
    """Refuse images that cannot be mammograms; return warnings for doubtful ones.

    Args:
        record: the image.
        pixel_spacing_mm: its known spacing (the file's or a stated one, plausible), or ``None``. With it, a
            binned view smaller than 512 px (0.28–0.5 mm) is taken when it covers a breast
            (:data:`MIN_MAMMOGRAM_SIDE_MM`): it is resampled to the weights' spacing.

    Raises:
        WrongModalityError: a DICOM of another modality (e.g. CT, MR), a colour
            image, or an image smaller than one 512-pixel patch (without a spacing) or than a breast.

    Returns:
        Warnings to show (e.g. "For Processing" images, missing view/laterality).
    """
    meta = record.metadata
    modality = (meta.modality or "").upper()
    radiography_mammogram = modality in RADIOGRAPHY_MODALITIES and (meta.view or "").upper() in MAMMOGRAPHY_VIEWS
    if modality and modality not in {"MG", "OT"} and not radiography_mammogram:
        raise WrongModalityError(
            f"{record.name or 'This image'} is a {meta.modality} image, not a mammogram (modality MG). "
            "Upload a mammography view (CC or MLO)."
        )
    if record.is_color:
        raise WrongModalityError(
            f"{record.name or 'This image'} is a colour image; mammograms are grey-scale. Upload the DICOM or a grey PNG export."
        )
    rows, cols = record.pixels.shape[:2]
    binned = pixel_spacing_mm is not None and min(rows, cols) >= MIN_BINNED_SIDE and min(
        rows * pixel_spacing_mm[0], cols * pixel_spacing_mm[1]) >= MIN_MAMMOGRAM_SIDE_MM
    if min(rows, cols) < MIN_MAMMOGRAM_SIDE and not binned:
        raise WrongModalityError(
            f"{record.name or 'This image'} is {rows}×{cols} pixels; a full-field mammogram is at least "
            f"{MIN_MAMMOGRAM_SIDE} pixels on each side (typically 4096×3328 or 3328×2560). Upload the full-resolution image."
        )
    if max(rows, cols) / min(rows, cols) > 3.0:
        raise WrongModalityError(
            f"{record.name or 'This image'} is {rows}×{cols} pixels, far from a mammogram's shape; upload a single view."
        )
    warnings = list(meta.warnings)
    if modality == "OT":
        warnings.append(SECONDARY_CAPTURE_NOTE)
    if radiography_mammogram:
        warnings.append(f"The file is recorded as {modality} (radiography), not MG; it is read as a mammogram because "
                        f"its header names the mammography view {meta.view}.")
    clipped = window_clip_note(record)
    if clipped:
        warnings.append(clipped)
    if meta.view is None or meta.laterality is None:
        warnings.append(
            "View or laterality is not recorded in the file; the exam readout needs both (set them on the page)."
        )
    return tuple(dict.fromkeys(warnings))


def analyse_mammogram(
    record: ImageRecord,
    bac_model: BacModel,
    *,
    threshold: float | None = None,
    x: float | None = None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
) -> BacAnalysis:
    """Run SCU-Net on one mammogram and compute the five readouts.

    An image whose spacing lies outside the weights' training range is resampled
    to the weights' spacing for inference and its maps brought back
    (:mod:`medlim.mammography.spacing`); readouts count pixels of the image as given.

    Args:
        record: the image from :func:`medlim.core.io.read_image`.
        bac_model: from :func:`load_bac_model`.
        threshold: probability cut-off t (None: the weights').
        x: intensity threshold X (None: the weights').
        batch_size: patches per forward pass.
        progress: ``progress(done, total)`` over grid patches.
        pixel_spacing_mm: the spacing the person states (mm; one number or (row, column)),
            overriding the file's; ``None``: the file's, else the weights' own (with a warning).

    Returns:
        :class:`BacAnalysis`.
    """
    from medlim.core.spacing import MODEL_DEFAULT
    from medlim.mammography.spacing import bac_spacing, predict_at_model_spacing

    started = time.perf_counter()
    meta = record.metadata
    rows, cols = record.pixels.shape[:2]
    decision = bac_spacing(bac_model, file_spacing_mm=meta.pixel_spacing_mm, file_source=meta.pixel_spacing_source,
                           pixel_spacing_mm=pixel_spacing_mm, shape=(int(rows), int(cols)))
    known = None if decision.spacing_source in (None, MODEL_DEFAULT) else decision.pixel_spacing_mm
    warnings = check_mammogram(record, pixel_spacing_mm=known)
    if decision.warning:
        warnings = (*warnings, decision.warning)
    scaled = predict_at_model_spacing(record.to_uint8(), bac_model, decision, batch_size=batch_size,
                                      progress=progress)
    prediction = scaled.prediction
    unlike_training, warning = _unlike_training(bac_model, scaled.model_view, record)
    if warning:
        warnings = (*warnings, warning)
    metrics = _quantify(
        prediction,
        threshold=bac_model.threshold if threshold is None else threshold,
        x=bac_model.x if x is None else x,
        pixel_spacing_mm=decision.pixel_spacing_mm,
        spacing_source=decision.spacing_source,
    )
    return BacAnalysis(
        name=record.name,
        prediction=prediction,
        metrics=metrics,
        view=meta.view,
        laterality=meta.laterality,
        study_date=meta.study_date,
        patient_key=meta.patient_key,
        pixel_spacing_mm=decision.pixel_spacing_mm,
        spacing_source=decision.spacing_source,
        weights=bac_model.label,
        warnings=warnings,
        seconds=time.perf_counter() - started,
        unlike_training=unlike_training,
        model_spacing_mm=decision.model_spacing_mm,
        region_filter=scaled.region_filter,
    )


def _unlike_training(
    bac_model: BacModel, model_view: PreprocessedImage, record: ImageRecord
) -> tuple[FamiliarityResult | None, str | None]:
    """The weights' training-data check on the image inference already preprocessed, on the
    model's grid (no second pass)."""
    if bac_model.familiarity is None:
        return None, None
    from medlim.mammography.familiarity import assess_mammogram

    return assess_mammogram(bac_model.familiarity, model_view,
                            presentation_intent=record.metadata.presentation_intent)


def _quantify(
    prediction: BacPrediction,
    *,
    threshold: float,
    x: float,
    pixel_spacing_mm: tuple[float, float] | None,
    spacing_source: str | None,
) -> BacMetrics:
    from medlim.mammography.quantify import quantify_prediction

    if not 0.0 <= threshold <= 1.0:
        raise ParameterError(f"probability cut-off must be in [0, 1]; {threshold} is given.")
    if not 0.0 <= x <= 255.0:
        raise ParameterError(f"intensity threshold X must be in [0, 255]; {x} is given.")
    return quantify_prediction(
        prediction, threshold=threshold, x=x, pixel_spacing_mm=pixel_spacing_mm, spacing_source=spacing_source
    )


def requantify(
    analysis: BacAnalysis,
    *,
    threshold: float,
    x: float,
    table: CutoffTable | None = None,
) -> BacMetrics:
    """Readouts for another cut-off ``threshold`` (in [0, 1]) and intensity threshold ``x``
    (in [0, 255]), from the cached probability map of ``analysis`` (no re-inference).

    Args:
        analysis: the analysis whose map is re-read.
        threshold: probability cut-off t.
        x: intensity threshold X.
        table: the analysis' :class:`~medlim.mammography.cutoffs.CutoffTable`, when
            kept: a cut-off on its grid is answered from it in microseconds, with
            the same numbers (the page's sliders); others make the full pass.
    """
    if table is not None and table.covers(threshold):
        return table.metrics(threshold=threshold, x=x)
    return _quantify(
        analysis.prediction,
        threshold=threshold,
        x=x,
        pixel_spacing_mm=analysis.pixel_spacing_mm,
        spacing_source=analysis.spacing_source,
    )

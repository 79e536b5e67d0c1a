"""BAC inference at the pixel spacing SCU-Net was trained at (issue 13, "Pixel spacing").

SCU-Net's filters are tuned to calcified arteries of a physical width at the
training images' spacing (the shipped weights: phantoms at 0.07 and 0.085 mm
at the breast, ``input.pixel_spacing_mm`` and ``input.spacing_range_mm`` of the
manifest). :func:`bac_spacing` settles an image's spacing
(:func:`medlim.core.spacing.decide_spacing`: the person's, else the file's,
else the model's own with a warning); :func:`predict_at_model_spacing`
resamples the 8-bit image to the model's spacing when it lies outside the
training range, runs whole-image inference there, and maps the probability
map, the preprocessed image and the breast mask back to the original grid, so
every readout counts pixels of the image as given (and mm² at its spacing).

Deviation from the thesis: §3.3 runs SCU-Net on the images at whatever spacing
they have (its data came from one site); resampling is medlim's addition, as
nnU-Net and MONAI's ``Spacing`` do it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from medlim.core.spacing import SpacingDecision, decide_spacing, implausible_spacing, resample_to_shape, spacing_pair
from medlim.errors import ImageTooLargeError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.tiling import MergeRule
    from medlim.core.weights import WeightsEntry
    from medlim.mammography.gating import ComponentGate
    from medlim.mammography.inference import BacPrediction, OutputActivation
    from medlim.mammography.preprocess import PreprocessedImage
    from medlim.mammography.regions import FilterEffect, RegionFilter

__all__ = ["ScaledPrediction", "bac_spacing", "model_spacing", "on_image_grid", "predict_at_model_spacing",
           "to_original_grid"]


class BacModel(Protocol):
    """What this module reads of :class:`medlim.mammography.analysis.BacModel`.

    Described here rather than imported: ``analysis`` calls this module, and the
    two must not import each other.
    """

    @property
    def entry(self) -> WeightsEntry: ...

    @property
    def label(self) -> str: ...

    @property
    def model(self) -> Any: ...

    @property
    def preset(self) -> str: ...

    @property
    def stride(self) -> int: ...

    @property
    def merge(self) -> str: ...

    @property
    def skip(self) -> bool | str: ...

    @property
    def output_activation(self) -> str: ...

    @property
    def gate(self) -> ComponentGate | None: ...


def model_spacing(entry: WeightsEntry) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """``(pixel spacing, training range)`` in mm from the weights' input contract (``None`` when not recorded)."""
    contract = entry.input_contract
    return contract.pixel_spacing_mm, contract.spacing_range_mm


#: The longer side of a mammogram in mm, smallest and largest: a spot or magnified view of 4–5 cm up to a
#: 24 × 30 cm detector with room to spare. A spacing that puts an image outside it is a header error.
MAMMOGRAM_FIELD_MM = (40.0, 500.0)


def bac_spacing(
    bac_model: BacModel,
    *,
    file_spacing_mm: tuple[float, float] | None,
    file_source: str | None,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
    shape: tuple[int, int] | None = None,
) -> SpacingDecision:
    """The spacing of one mammogram for these weights (:func:`medlim.core.spacing.decide_spacing`).

    Args:
        bac_model: the loaded weights (their manifest gives the model's spacing).
        file_spacing_mm, file_source: what the reader found in the file.
        pixel_spacing_mm: the spacing the person states (mm), overriding the file's.
        shape: the image's (rows, columns): a spacing that would make it no mammogram's size
            (:data:`MAMMOGRAM_FIELD_MM`) is refused when stated, and set aside with a warning when read
            from the file (the weights' own is assumed, as for a file without one).

    Raises:
        ParameterError: a stated spacing that cannot be this image's.
    """
    spacing, spacing_range = model_spacing(bac_model.entry)
    if shape is not None and pixel_spacing_mm is not None:
        reason = implausible_spacing(shape, spacing_pair(pixel_spacing_mm), MAMMOGRAM_FIELD_MM,
                                     what="mammograms are")
        if reason is not None:
            raise ParameterError(f"--pixel-spacing: {reason}. Give the spacing in mm (e.g. 0.07).")
    set_aside = None
    if shape is not None and pixel_spacing_mm is None and file_spacing_mm is not None:
        set_aside = implausible_spacing(shape, spacing_pair(file_spacing_mm), MAMMOGRAM_FIELD_MM,
                                        what="mammograms are")
    decision = decide_spacing(file_spacing_mm=None if set_aside else file_spacing_mm, file_source=file_source,
                              model_spacing_mm=spacing, model_range_mm=spacing_range,
                              user_spacing_mm=pixel_spacing_mm, model_label=bac_model.label)
    if set_aside is None:
        return decision
    assumed = "" if decision.pixel_spacing_mm is None else (
        f" {bac_model.label}'s own, {decision.pixel_spacing_mm[0]:g} × {decision.pixel_spacing_mm[1]:g} mm, is "
        "assumed instead, and areas in mm² rest on that.")
    warning = (f"The file's {file_source or 'pixel spacing'} cannot be right: {set_aside}. It is set aside;"
               f"{assumed} State the spacing (--pixel-spacing, or the page's field) if you know it.")
    return replace(decision, warning=warning)


@dataclass(frozen=True)
class ScaledPrediction:
    """Inference at the model's spacing, mapped back.

    Attributes:
        prediction: probability map, preprocessed image and breast mask on the
            image's own grid (``np.float32[H, W]``, ``np.uint8[H, W]``, ``np.bool_[H, W]``).
        model_view: the preprocessed image on the grid the model saw (what the
            training-data check scores); the same object as
            ``prediction.preprocessed`` when nothing was resampled.
        decision: the spacing decision it followed.
        region_filter: what the weights' region filter dropped (:mod:`medlim.mammography.regions`), or ``None``
            when they carry no filter.
        network: the network's own output on its grid, before any gate or filter (the same object as
            ``prediction`` when the weights carry neither and nothing was resampled): what
            :func:`on_image_grid` reads another gate or filter from without a second inference.
    """

    prediction: BacPrediction
    model_view: PreprocessedImage
    decision: SpacingDecision
    region_filter: FilterEffect | None = None
    network: BacPrediction | None = None


def to_original_grid(prediction: BacPrediction, shape: tuple[int, int]) -> BacPrediction:
    """The prediction's maps resampled to ``shape``.

    Onto a coarser grid (an image of larger pixels than the model's), the probability becomes each image
    pixel's upper median of the model pixels it covers (:func:`medlim.core.spacing.area_median`): at any
    cut-off the readouts then keep a pixel where at least half of it was above the cut-off, so AM keeps the
    area the network marked to within boundary pixels. Area-averaging the map instead (until 2026-12-08)
    counted a whole 0.28 mm pixel for a 0.07 mm line a quarter of its width. PM is then the sum of those
    medians, not of the averaged probabilities. Onto a finer grid the map is interpolated bilinearly. The
    grey image is area-averaged or interpolated the same way (:func:`medlim.core.spacing.resample_to_shape`);
    the breast mask keeps pixels at least half inside the breast.
    """
    from medlim.core.spacing import area_median
    from medlim.mammography.preprocess import PreprocessedImage

    grey = resample_to_shape(prediction.preprocessed.grey, shape)
    mask = resample_to_shape(prediction.preprocessed.breast_mask, shape)
    source = prediction.probability.astype(np.float32, copy=False)
    coarser = shape[0] <= source.shape[0] and shape[1] <= source.shape[1]
    probability = area_median(source, shape) if coarser else resample_to_shape(source, shape)
    return replace(prediction, probability=np.ascontiguousarray(probability),
                   preprocessed=PreprocessedImage(grey=grey, breast_mask=mask))


def on_image_grid(
    network: BacPrediction,
    shape: tuple[int, int],
    *,
    gate: ComponentGate | None,
    region_filter: RegionFilter | None,
    spacing_mm: tuple[float, float] | None,
) -> tuple[BacPrediction, FilterEffect | None]:
    """The network's map on its own grid read through a gate and a region filter, on the image's grid ``shape``.

    The gate (:mod:`medlim.mammography.gating`) is applied on the network's grid, before the map is brought back:
    its seed is a confidence of the network's own output, which area-averaging to a coarser image grid diluted (the map came
    back by its mean until 2026-12-08, by its median since, :func:`to_original_grid`; a one-off probe on
    32 binned family A validation views at 0.28 mm, `scunet-bac-dr` v3's gate on the image's grid gave Dice 0.431
    and R² AM 0.696, on the network's 0.496 and 0.789 — README, "Pixel spacing"). The region filter
    (:mod:`medlim.mammography.regions`) is applied after, on the image's grid at its spacing, as it was fitted on
    a site's views at theirs. Nothing changes for an image inference did not resample.

    Args:
        network: the network's output on its grid (``predict_probability_map``), ungated.
        shape: the image's ``(rows, columns)``.
        gate, region_filter: the weights' (``None``: none).
        spacing_mm: the image's pixel spacing (the filter's features and the dropped area in mm²).

    Returns:
        ``(prediction on the image's grid, what the filter dropped or None)``.
    """
    from medlim.mammography.gating import gate_components

    gated = network if gate is None else replace(network, probability=gate_components(network.probability, gate))
    back = gated if gated.probability.shape[:2] == tuple(shape) else to_original_grid(gated, shape)
    if region_filter is None:
        return back, None
    from medlim.mammography.regions import apply_region_filter

    filtered, effect = apply_region_filter(back.probability, back.preprocessed.grey, region_filter, spacing_mm)
    return replace(back, probability=filtered), effect


def _check_model_shape(model_shape: tuple[int, int], shape: tuple[int, int], decision: SpacingDecision) -> None:
    """Refuse, before anything is allocated, an image the model's grid would make larger than ``MEDLIM_MAX_PIXELS``."""
    from medlim.settings import get_settings

    limit = get_settings().max_pixels
    if model_shape[0] * model_shape[1] <= limit:
        return
    spacing = decision.pixel_spacing_mm or (0.0, 0.0)
    raise ImageTooLargeError(
        f"at {spacing[0]:g} × {spacing[1]:g} mm ({decision.spacing_source}) this {shape[0]}×{shape[1]} px image "
        f"becomes {model_shape[0]}×{model_shape[1]} px on the model's grid, over MEDLIM_MAX_PIXELS ({limit:,}); "
        "check the pixel spacing (--pixel-spacing)."
    )


def predict_at_model_spacing(
    image: np.ndarray,
    bac_model: BacModel,
    decision: SpacingDecision,
    *,
    batch_size: int = 8,
    device: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScaledPrediction:
    """Whole-image SCU-Net inference on the model's grid, mapped back to the image's.

    Weights with a gate (``bac_model.gate``, :mod:`medlim.mammography.gating`) have it applied to the map on the
    network's grid before it is brought back, then the region filter (``bac_model.region_filter``,
    :mod:`medlim.mammography.regions`) on the image's grid (:func:`on_image_grid`), so every reader of the map sees
    the same regions.

    Args:
        image: ``np.uint8[H, W]`` grey mammogram.
        bac_model: the loaded weights.
        decision: from :func:`bac_spacing`.
        batch_size: patches per forward pass.
        device: torch device (``None``: where the model's inference puts it).
        progress: ``progress(done, total)`` over grid patches.

    Returns:
        :class:`ScaledPrediction`; ``prediction.seconds`` includes the resampling.
    """
    import time

    from medlim.mammography.inference import predict_probability_map

    started = time.perf_counter()
    shape = (int(image.shape[0]), int(image.shape[1]))
    model_shape = decision.model_shape(shape)
    _check_model_shape(model_shape, shape, decision)
    source = image if model_shape == shape else resample_to_shape(image, model_shape)
    prediction = predict_probability_map(
        source,
        bac_model.model,
        preset=bac_model.preset,
        stride=bac_model.stride,
        merge=cast("MergeRule", bac_model.merge),
        skip=bac_model.skip,
        output_activation=cast("OutputActivation", bac_model.output_activation),
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    back, effect = on_image_grid(prediction, shape, gate=bac_model.gate, region_filter=bac_model.region_filter,
                                 spacing_mm=decision.pixel_spacing_mm)
    if back is not prediction:
        back = replace(back, seconds=time.perf_counter() - started)
    return ScaledPrediction(back, prediction.preprocessed, decision, effect, prediction)

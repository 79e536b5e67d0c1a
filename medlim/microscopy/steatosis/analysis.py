"""Steatosis analysis of one image, as the page and ``medlim steatosis segment`` run it (thesis §3.2.3).

Detect droplets once (:func:`analyse_image` → :class:`SteatosisAnalysis`, the
cacheable part), then apply cutoffs as often as the pathologist moves a slider
(:meth:`SteatosisAnalysis.report` → :class:`~medlim.microscopy.steatosis.report.SteatosisReport`,
vectorised). :func:`segment_file` is one image of ``medlim steatosis
segment``: its row carries the same report. Weights come from the registry
(:func:`load_steatosis_model`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlim.errors import ParameterError
from medlim.microscopy.steatosis.droplets import (
    DEFAULT_CUTOFFS,
    CutoffResult,
    Cutoffs,
    DropletTable,
    apply_cutoffs,
    droplet_table,
    kept_labels,
    tissue_mask,
)
from medlim.microscopy.steatosis.report import SteatosisReport, steatosis_report

__all__ = [
    "DEFAULT_STEATOSIS_WEIGHTS",
    "SteatosisModel",
    "SteatosisAnalysis",
    "load_steatosis_model",
    "analyse_image",
    "analysis_from_detections",
    "drop_outside_tissue",
    "SegmentRow",
    "segment_file",
]

#: Registry name of the shipped steatosis weights.
DEFAULT_STEATOSIS_WEIGHTS = "maskrcnn-steatosis"


@dataclass(frozen=True)
class SteatosisModel:
    """A loaded network with the inference settings its weights record."""

    model: object
    label: str
    tile: int
    overlap: int
    mask_threshold: float


@dataclass(frozen=True)
class SteatosisAnalysis:
    """Detections of one image with their features (everything cutoffs need).

    Attributes:
        labels: ``np.ndarray[H, W]`` int32 droplet labels 1..n.
        table: :class:`DropletTable` (index ``k − 1`` is label ``k``).
        tissue: ``np.ndarray[H, W]`` bool tissue mask.
        seconds: detection wall time.
        model: label of the weights used.
    """

    labels: np.ndarray
    table: DropletTable
    tissue: np.ndarray
    seconds: float
    model: str

    def cut(self, cutoffs: Cutoffs = DEFAULT_CUTOFFS) -> CutoffResult:
        """Apply cutoffs (cheap; no re-detection)."""
        return apply_cutoffs(self.table, cutoffs)

    def report(self, cutoffs: Cutoffs = DEFAULT_CUTOFFS, *, presets: Mapping[str, Cutoffs] | None = None,
               chosen: str | None = None) -> SteatosisReport:
        """The :class:`~medlim.microscopy.steatosis.report.SteatosisReport` under ``cutoffs`` (no re-detection).

        Args:
            cutoffs: the cutoffs to apply.
            presets: the named presets the report may name (None = the built-in ones).
            chosen: the preset the user picked (it wins when several hold the same values).
        """
        return steatosis_report(self.table, cutoffs, model=self.model, detection_seconds=self.seconds,
                                presets=presets, chosen=chosen)


def load_steatosis_model(
    weights: str | None = None,
    *,
    registry: object | None = None,
    device: str | None = None,
) -> SteatosisModel:
    """Load the steatosis Mask R-CNN from the registry (sha256-checked safetensors).

    Args:
        weights: ``name`` or ``name:version``; None = :data:`DEFAULT_STEATOSIS_WEIGHTS`.
        registry: a :class:`medlim.core.weights.Registry`; None = the settings' folder.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or None (settings).

    Raises:
        WeightsError: unknown name, checksum mismatch or keys that do not fit.
    """
    from medlim.core.device import select_device
    from medlim.core.weights import Registry, build_model

    registry = Registry.load() if registry is None else registry
    name, _, version = (weights or DEFAULT_STEATOSIS_WEIGHTS).partition(":")
    entry = registry.get(name, version or None)  # type: ignore[attr-defined]
    model = build_model(entry, device=select_device(device))
    params = dict(entry.params)
    return SteatosisModel(model=model, label=entry.label, tile=int(params.get("tile", 1024)),
                          overlap=int(params.get("overlap", 128)),
                          mask_threshold=float(entry.thresholds.get("mask", 0.5)))


def analyse_image(
    model: SteatosisModel,
    image: np.ndarray,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> SteatosisAnalysis:
    """Detect droplets (tiled) and measure them.

    Args:
        model: from :func:`load_steatosis_model`.
        image: ``np.ndarray[H, W, 3]`` RGB, uint8 or float in [0, 1].
        progress: ``progress(done, total)`` per tile.
    """
    from medlim.microscopy.steatosis.inference import detect_droplets

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] < 3:
        raise ParameterError(f"steatosis analysis needs an H×W×3 RGB image, got shape {image.shape}")
    found = detect_droplets(model.model, image, tile=model.tile, overlap=model.overlap, min_score=0.05,
                            progress=progress)
    return analysis_from_detections(image, found.labels, found.scores, seconds=found.seconds, model=model.label)


def analysis_from_detections(image: np.ndarray, labels: np.ndarray, scores: np.ndarray, *, seconds: float,
                             model: str) -> SteatosisAnalysis:
    """The analysis of raw detections: tissue mask, detections off tissue dropped, droplet features.

    Args:
        image: ``np.ndarray[H, W, 3]`` RGB, uint8 or float in [0, 1].
        labels: ``np.ndarray[H, W]`` int droplet labels 1..n from
            :func:`medlim.microscopy.steatosis.inference.detect_droplets`.
        scores: ``np.ndarray[n]`` their scores.
        seconds: the detection's wall time.
        model: label of the weights.
    """
    tissue = tissue_mask(image)
    labels, scores = drop_outside_tissue(labels, scores, tissue)
    table = droplet_table(labels, scores, tissue_area=float(tissue.sum()))
    return SteatosisAnalysis(labels=labels, table=table, tissue=tissue, seconds=float(seconds), model=model)


def drop_outside_tissue(labels: np.ndarray, scores: np.ndarray, tissue: np.ndarray, *,
                        min_inside: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Remove detections lying mostly on non-tissue (glass, lumina are not steatosis).

    Args:
        labels: ``np.ndarray[H, W]`` int labels 1..n.
        scores: ``np.ndarray[n]``.
        tissue: ``np.ndarray[H, W]`` bool.
        min_inside: a droplet is kept when at least this fraction of it is tissue.

    Returns:
        ``(labels, scores)`` renumbered 1..k in the original order.
    """
    labels = np.asarray(labels)
    n = int(labels.max(initial=0))
    total = np.bincount(labels.ravel(), minlength=n + 1)
    inside = np.bincount(labels[np.asarray(tissue, bool)], minlength=n + 1)
    keep = inside[1:] >= min_inside * np.maximum(total[1:], 1)
    lookup = np.zeros(n + 1, np.int32)
    lookup[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lookup[labels], np.asarray(scores)[keep]


@dataclass(frozen=True)
class SegmentRow:
    """One line of ``medlim steatosis segment`` (one image).

    Attributes:
        detected: droplets the network found on tissue.
        kept: droplets inside the cutoffs.
        steatosis_fraction: kept droplet area ÷ tissue area, in [0, 1].
        nash_crn_band: NASH-CRN steatosis grade of that percentage.
        donor_band: donor-liver band of that percentage.
        preset: the preset the cutoffs equal, else ``"custom"``.
        seconds: time for this image.
        labels: where the kept droplets' uint16 label image was written.
        warnings: the reader's plain-language warnings about the image.
    """

    detected: int
    kept: int
    steatosis_fraction: float
    nash_crn_band: str
    donor_band: str
    preset: str
    seconds: float
    labels: str
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """The row as a JSON-able dict, in the order the CLI prints it."""
        return {"detected": self.detected, "kept": self.kept, "steatosis_fraction": self.steatosis_fraction,
                "nash_crn_band": self.nash_crn_band, "donor_band": self.donor_band, "preset": self.preset,
                "seconds": self.seconds, "labels": self.labels, "warnings": list(self.warnings)}


def segment_file(
    model: SteatosisModel, path: Path, labels_path: Path, *, name: str | None = None,
    cutoffs: Cutoffs = DEFAULT_CUTOFFS, presets: Mapping[str, Cutoffs] | None = None,
) -> SegmentRow:
    """Segment one image file and write its kept droplets to ``labels_path`` (uint16 PNG).

    The image is read with :func:`medlim.core.io.read_image` (``pixels`` float32 RGB in [0, 1]),
    as the page reads an upload, so the row's numbers are the page's for the same file.

    Args:
        model: the loaded steatosis model.
        path: the image file.
        labels_path: where to write the label image (the caller keeps names distinct).
        name: the name messages use (``path``'s name when ``None``).
        cutoffs: which detections are kept.
        presets: the named presets the row may name (None = the built-in ones).

    Raises:
        MedlimError: the file cannot be read, or the kept droplets do not fit uint16 labels.
    """
    from medlim.core.io import read_image
    from medlim.errors import ImageTooLargeError
    from medlim.phantoms.base import save_png

    start = time.perf_counter()
    record = read_image(Path(path), name=name)
    pixels = np.asarray(record.pixels)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    analysis = analyse_image(model, pixels)
    report = analysis.report(cutoffs, presets=presets)
    labels = kept_labels(analysis.labels, report.kept_flags)
    if labels.dtype != np.uint16:
        raise ImageTooLargeError(f"{report.kept} droplets do not fit a uint16 label image.")
    save_png(Path(labels_path), labels)
    return SegmentRow(detected=report.detected, kept=report.kept, steatosis_fraction=report.steatosis_fraction,
                      nash_crn_band=report.nash_crn_band, donor_band=report.donor_band, preset=report.preset,
                      seconds=round(time.perf_counter() - start, 3), labels=str(labels_path),
                      warnings=tuple(record.metadata.warnings))

"""The steatosis report of one image: what the page shows and ``medlim steatosis segment`` prints (thesis §3.2.3).

:func:`steatosis_report` applies cutoffs to a cached droplet table (the page
and ``medlim steatosis segment`` reach it through
:meth:`medlim.microscopy.steatosis.analysis.SteatosisAnalysis.report`) and
returns a :class:`SteatosisReport`: kept and discarded droplets, the steatosis fraction
of tissue (kept droplet area ÷ tissue area, 0–1) with its NASH-CRN and donor
bands, the cutoffs used, and the name of the preset those cutoffs are — or
``"custom"`` once any cutoff differs from every named preset (issue 17: a
report must not keep a preset's name after its cutoffs were changed).

:func:`preset_cutoffs` turns a preset name plus per-feature overrides (the
CLI's ``--preset`` and ``--area``/``--perimeter``/``--eccentricity``/
``--min-score``) into :class:`~medlim.microscopy.steatosis.droplets.Cutoffs`.

A report also carries the weights' training-data check of the image (issue 13;
:mod:`.familiarity`): ``unlike_training`` (score, limit, flagged) and, when the
image is flagged, a plain-language sentence in ``warnings`` — the numbers are
still given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from medlim.errors import ParameterError
from medlim.microscopy.steatosis.droplets import (
    BUILTIN_PRESETS,
    DONOR_BANDS,
    NASH_CRN_BANDS,
    Cutoffs,
    DropletTable,
    apply_cutoffs,
    grade,
)

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.familiarity import FamiliarityResult

__all__ = ["CUSTOM", "SteatosisReport", "preset_name", "preset_cutoffs", "steatosis_report"]

#: The preset name of cutoffs that match no named preset.
CUSTOM = "custom"


@dataclass(frozen=True)
class SteatosisReport:
    """Steatosis readout of one image under one set of cutoffs.

    Attributes:
        model: label of the weights that found the droplets.
        preset: name of the preset the cutoffs equal, else ``"custom"``.
        cutoffs: the cutoffs applied.
        reference: value of each feature the relative cutoffs multiplied.
        detected: droplets the network found on tissue.
        kept: droplets inside the cutoffs.
        kept_area_px2: their area in px².
        tissue_area_px2: tissue area in px² (section without glass, vessel and sinusoid lumina, and tears).
        steatosis_fraction: ``kept_area_px2 / tissue_area_px2`` in [0, 1] (6 decimals).
        nash_crn_band: NASH-CRN steatosis grade of the percentage.
        donor_band: donor-liver band of the percentage (< 5 / 5–29 / ≥ 30 %).
        detection_seconds: the network's wall time.
        kept_flags: ``np.ndarray[detected]`` bool, droplet ``k`` kept at ``k − 1``
            (not in :meth:`to_json`; the per-droplet export carries it).
        unlike_training: the weights' training-data check of the image, or ``None``
            when the weights carry none.
        warnings: plain-language warnings about the image (e.g. that it looks unlike
            the training images).
        pixel_spacing_um: the pixel size in µm, or ``None`` when unknown (areas in px² only).
        spacing_source: ``"file"``, ``"user"`` or ``"none"``.
        model_spacing_um: the weights' pixel size when the image was resized to it for detection, else
            ``None`` (areas are always on the image's own pixels).
    """

    model: str
    preset: str
    cutoffs: Cutoffs
    reference: Mapping[str, float]
    detected: int
    kept: int
    kept_area_px2: float
    tissue_area_px2: float
    steatosis_fraction: float
    nash_crn_band: str
    donor_band: str
    detection_seconds: float
    kept_flags: np.ndarray
    unlike_training: FamiliarityResult | None = None
    warnings: tuple[str, ...] = ()
    pixel_spacing_um: float | None = None
    spacing_source: str = "none"
    model_spacing_um: float | None = None

    def _um2(self, area_px2: float) -> float | None:
        return None if self.pixel_spacing_um is None else round(area_px2 * self.pixel_spacing_um**2, 4)

    @property
    def discarded(self) -> int:
        """Droplets outside the cutoffs."""
        return self.detected - self.kept

    @property
    def steatosis_percent(self) -> float:
        """The fraction in % of tissue, 2 decimals."""
        return round(100.0 * self.steatosis_fraction, 2)

    def to_json(self) -> dict[str, object]:
        """Every readout as a JSON-able dict (open upper cutoffs written ``null``)."""
        return {"model": self.model, "preset": self.preset, "cutoffs": self.cutoffs.as_dict(),
                "reference": {k: round(float(v), 4) for k, v in self.reference.items()},
                "detected": self.detected, "kept": self.kept, "discarded": self.discarded,
                "kept_area_px2": self.kept_area_px2, "tissue_area_px2": self.tissue_area_px2,
                "kept_area_um2": self._um2(self.kept_area_px2), "tissue_area_um2": self._um2(self.tissue_area_px2),
                "pixel_spacing_um": self.pixel_spacing_um, "spacing_source": self.spacing_source,
                "model_spacing_um": self.model_spacing_um,
                "steatosis_fraction": self.steatosis_fraction, "steatosis_percent": self.steatosis_percent,
                "nash_crn_band": self.nash_crn_band, "donor_band": self.donor_band,
                "detection_seconds": self.detection_seconds,
                "unlike_training": None if self.unlike_training is None else self.unlike_training.to_dict(),
                "warnings": list(self.warnings)}


def preset_name(cutoffs: Cutoffs, presets: Mapping[str, Cutoffs] | None = None, *, chosen: str | None = None) -> str:
    """The name of the preset ``cutoffs`` equal, else :data:`CUSTOM`.

    Args:
        cutoffs: the cutoffs in use.
        presets: name → cutoffs; None = the built-in presets.
        chosen: the preset the user picked; it wins when several presets hold the same values.
    """
    presets = BUILTIN_PRESETS if presets is None else presets
    if chosen is not None and chosen in presets and presets[chosen].matches(cutoffs):
        return chosen
    return next((name for name, values in presets.items() if values.matches(cutoffs)), CUSTOM)


def preset_cutoffs(
    name: str = "default",
    *,
    area: Sequence[float] | None = None,
    perimeter: Sequence[float] | None = None,
    eccentricity: Sequence[float] | None = None,
    min_score: float | None = None,
    presets: Mapping[str, Cutoffs] | None = None,
    area_um2: Sequence[float] | None = None,
    crowded_min_score: float | None = None,
) -> Cutoffs:
    """A named preset's cutoffs with some values replaced (None keeps the preset's).

    Args:
        name: a key of ``presets`` (built-in: ``"default"``, ``"thesis"``).
        area, perimeter, eccentricity: ``(low, high)`` × the reference; ``high`` may be ``inf``.
        min_score: minimum detection score in [0, 1].
        presets: name → cutoffs; None = the built-in presets.
        area_um2: ``(low, high)`` absolute droplet area in µm²; ``high`` may be ``inf``.
        crowded_min_score: the minimum score in crowded fat (a value ≥ the minimum score: one floor everywhere).

    Raises:
        ParameterError: an unknown preset or values :class:`Cutoffs` rejects.
    """
    presets = BUILTIN_PRESETS if presets is None else presets
    if name not in presets:
        raise ParameterError(f"unknown cutoff preset {name!r}; known: {sorted(presets)}.")
    base = presets[name]
    bounds = {}
    for key, value in (("area", area), ("perimeter", perimeter), ("eccentricity", eccentricity),
                       ("area_um2", area_um2)):
        if value is None:
            bounds[key] = getattr(base, key)
        elif len(value) != 2:
            raise ParameterError(f"`{key}` needs two values (low, high), {list(value)} is given.")
        else:
            bounds[key] = (float(value[0]), float(value[1]))
    crowded = base.crowded_min_score if crowded_min_score is None else float(crowded_min_score)
    return replace(base, area=bounds["area"], perimeter=bounds["perimeter"], eccentricity=bounds["eccentricity"],
                   area_um2=bounds["area_um2"], min_score=base.min_score if min_score is None else float(min_score),
                   crowded_min_score=crowded)


#: Tissue (px) below which a fraction and its bands grade next to nothing: a 128 × 128 px patch.
MIN_TISSUE_PX = 16_384


def little_tissue_warning(tissue_px: float) -> str:
    """What a report says when the image holds (almost) no tissue: glass, background, an empty or tiny tile."""
    found = "No tissue was found" if tissue_px <= 0 else f"Only {tissue_px:,.0f} px of tissue were found"
    return (f"{found} (glass, background, an empty or very small tile): the steatosis fraction and its bands "
            "grade next to nothing here — read them as no result, not as a normal liver.")


def steatosis_report(
    table: DropletTable,
    cutoffs: Cutoffs,
    *,
    model: str,
    detection_seconds: float = 0.0,
    presets: Mapping[str, Cutoffs] | None = None,
    chosen: str | None = None,
    unlike_training: FamiliarityResult | None = None,
    warnings: Sequence[str] = (),
    model_spacing_um: float | None = None,
) -> SteatosisReport:
    """Apply ``cutoffs`` to a cached droplet table and report (cheap: no re-detection).

    Args:
        table: the droplets of one image (``SteatosisAnalysis.table``).
        cutoffs: the cutoffs to apply.
        model: label of the weights that found the droplets.
        detection_seconds: the network's wall time.
        presets: the named presets the report may name (None = built-in ones).
        chosen: the preset the user picked (see :func:`preset_name`).
        unlike_training: the image's training-data check (from the analysis).
        warnings: the image's warnings (from the analysis).
        model_spacing_um: the weights' pixel size when the image was resized to it (from the analysis).
    """
    result = apply_cutoffs(table, cutoffs)
    if table.tissue_area < MIN_TISSUE_PX:
        warnings = (*warnings, little_tissue_warning(table.tissue_area))
    fraction = round(result.steatosis_fraction, 6)
    percent = 100.0 * fraction
    return SteatosisReport(
        model=model, preset=preset_name(cutoffs, presets, chosen=chosen), cutoffs=cutoffs,
        reference=dict(result.means), detected=result.detected, kept=result.kept_count,
        kept_area_px2=float(result.kept_area), tissue_area_px2=float(table.tissue_area),
        steatosis_fraction=fraction, nash_crn_band=grade(percent, NASH_CRN_BANDS),
        donor_band=grade(percent, DONOR_BANDS), detection_seconds=round(float(detection_seconds), 3),
        kept_flags=result.kept, unlike_training=unlike_training,
        warnings=tuple(warnings) + ((table.spacing.warning,) if table.spacing.warning else ()),
        pixel_spacing_um=table.spacing.um, spacing_source=table.spacing.source, model_spacing_um=model_spacing_um,
    )

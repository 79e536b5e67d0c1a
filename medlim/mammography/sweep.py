"""Several probability cut-offs on the same BAC views, one inference each (``medlim bac evaluate --thresholds``).

:func:`sweep_cutoffs` evaluates phantoms or any annotated samples at every cut-off
from one probability map per view (:func:`~medlim.mammography.evaluate.sweep_thresholds`)
and scores each cut-off as the trainer scores its whole validation views
(:mod:`medlim.mammography.selection`), naming the one the trainer's rule would
choose; :func:`sweep_bac_data` does it on a user's annotated folder, checked and
named as ``medlim bac evaluate --data`` checks and names it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlim.mammography.evaluate import (
    BacEvaluation,
    annotated_samples,
    check_evaluation_folder,
    number_text,
    sweep_thresholds,
    view_progress,
)
from medlim.mammography.selection import WholeViewScore, choose_cutoff, whole_view_score

if TYPE_CHECKING:  # pragma: no cover
    from medlim.mammography.analysis import BacModel

__all__ = ["BacSweep", "sweep_cutoffs", "sweep_bac_data"]


@dataclass(frozen=True)
class BacSweep:
    """Several probability cut-offs evaluated on the same views, one inference each.

    Attributes:
        weights: ``name@version`` label of the weights.
        source: what the views were: ``{"seed": S}`` for phantoms, ``{"fingerprint": F, "dropped": D}`` for a user's
            folder (its dataset fingerprint id and the rows ``--skip-bad`` left out; never a path).
        summaries: one :class:`BacEvaluation` per cut-off, in the order given.
        scores: per cut-off, its whole-view score by the trainer's rule
            (:func:`medlim.mammography.selection.whole_view_score`); ``None`` when no view holds BAC.
        chosen: the cut-off that rule would choose (the best Dice among those whose median false area on
            BAC-free views is within 0.5 mm², else the least false area); ``None`` when no view holds BAC.
    """

    weights: str
    source: dict[str, Any]
    summaries: tuple[BacEvaluation, ...]
    scores: tuple[WholeViewScore | None, ...]
    chosen: float | None

    @property
    def images(self) -> int:
        return self.summaries[0].images

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready row per cut-off (NaN → ``None``)."""
        from medlim.core.weights.entry import json_safe

        rows = []
        for summary, score in zip(self.summaries, self.scores):
            rows.append(json_safe({
                "threshold": summary.threshold, "dice": summary.whole_image["f1"],
                "dice_pooled": summary.whole_image_pooled["f1"], "precision": summary.whole_image["precision"],
                "recall": summary.whole_image["recall"], "jaccard": summary.whole_image["jaccard"],
                "patch_dice": summary.patch_wise["f1"], "r2": {k: a.r2 for k, a in summary.agreement.items()},
                "tam_relative_bias": summary.tam_relative_bias, "bac_free_images": summary.bac_free_images,
                "false_am_px_median": summary.false_am_px_median, "false_am_mm2_median": summary.false_am_mm2_median,
                "false_area_within_target": None if score is None else score.feasible,
                "unlike_training_flagged": summary.unlike_training_flagged}))
        return rows

    def to_json(self) -> dict[str, Any]:
        """``weights``, ``images``, the source (``seed`` or ``data``), ``sweep`` (the rows) and ``chosen``."""
        source = ({"seed": self.source["seed"]} if "seed" in self.source
                  else {"data": dict(self.source)})
        return {"weights": self.weights, **source, "images": self.images, "x": self.summaries[0].x,
                "sweep": self.rows(), "chosen": self.chosen}

    def table_lines(self) -> list[str]:
        """One line per cut-off, then the cut-off the trainer's rule would choose."""
        where = (f"phantoms (seed {self.source['seed']})" if "seed" in self.source
                 else f"annotated views of dataset {self.source['fingerprint']}")
        lines = [f"{self.weights} on {self.images} {where}, X={self.summaries[0].x:g}",
                 f"{'t':>6}{'Dice':>8}{'pooled':>8}{'prec':>8}{'recall':>8}{'R2 TAM_X':>10}{'R2 AM':>8}"
                 f"{'bias':>9}{'false AM':>14}"]
        for row, summary in zip(self.rows(), self.summaries):
            bias = row["tam_relative_bias"]
            false = ("n/a" if summary.bac_free_images == 0 else
                     f"{summary.false_am_px_median:.0f} px" if summary.false_am_mm2_median is None
                     else f"{summary.false_am_mm2_median:.2f} mm²")
            lines.append(f"{row['threshold']:>6.2f}" + "".join(
                f"{number_text(value, '.3f'):>{width}}" for value, width in
                ((row["dice"], 8), (row["dice_pooled"], 8), (row["precision"], 8), (row["recall"], 8),
                 (row["r2"]["tam_x"], 10), (row["r2"]["am"], 8)))
                + f"{'n/a' if bias is None else f'{100 * bias:+.0f} %':>9}{false:>14}")
        if self.chosen is not None:
            lines.append(f"the trainer's rule (best Dice with median false AM on BAC-free views ≤ 0.5 mm²) would "
                         f"choose t={self.chosen:g}; choose on validation views, not on the views you report")
        return lines


def sweep_cutoffs(
    bac_model: "BacModel",
    samples: Iterable[tuple[Any, ...]],
    *,
    thresholds: Sequence[float],
    source: Mapping[str, Any],
    x: float | None = None,
    progress: Callable[[int, str], None] | None = None,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
) -> BacSweep:
    """:func:`sweep_thresholds` with each cut-off's whole-view score and the cut-off the trainer would choose.

    Args:
        source: what the samples are (:attr:`BacSweep.source`).
        Others as :func:`sweep_thresholds`.
    """
    thresholds = list(dict.fromkeys(float(t) for t in thresholds))
    summaries, per_image = sweep_thresholds(bac_model, samples, thresholds=thresholds, x=x, progress=progress,
                                            pixel_spacing_mm=pixel_spacing_mm)
    with_bac = any(e.has_bac for e in per_image[thresholds[0]])
    scores = tuple(whole_view_score(per_image[t], cutoff=t) if with_bac else None for t in thresholds)
    chosen = choose_cutoff(per_image).cutoff if with_bac else None
    return BacSweep(weights=bac_model.label, source=dict(source), summaries=tuple(summaries[t] for t in thresholds),
                    scores=scores, chosen=chosen)


def sweep_bac_data(
    bac_model: "BacModel",
    directory: str | Path,
    *,
    thresholds: Sequence[float],
    x: float | None = None,
    skip_bad: bool = False,
    progress: Callable[[str], None] | None = None,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
) -> BacSweep:
    """Several cut-offs on a user's annotated views (``medlim bac evaluate --data DIR --thresholds …``).

    The folder is checked and named as in :func:`evaluate_bac_data`; each view is predicted once.
    """
    dataset, fingerprint, dropped = check_evaluation_folder(directory, skip_bad=skip_bad, progress=progress)
    return sweep_cutoffs(bac_model, annotated_samples(dataset), thresholds=thresholds, x=x, pixel_spacing_mm=pixel_spacing_mm,
                         source={"fingerprint": fingerprint, "dropped": dropped},
                         progress=view_progress(progress, len(dataset)))

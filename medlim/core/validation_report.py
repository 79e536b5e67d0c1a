"""A trainer's validation figures as one readable table: a row per figure, a column per registered model.

Every ``medlim train …`` command ends with ``{"registered": [...], "validation": {name: figures}}`` on stdout
(:class:`medlim.core.training.TrainingOutcome`). The figures are keyed for machines (``whole_view_score``,
``gate``, ``full_precision@10``); a clinician or curator reading them on the Models page, or at the end of a
command, needs what each one is. :func:`validation_table` turns the summary into an
:class:`~medlim.core.evaluations.EvaluationTable` whose rows carry a plain heading and what the figure means;
the page shows it and the trainers print its :meth:`~medlim.core.evaluations.EvaluationTable.lines` on stderr,
so both read the same words. A key this module does not know keeps its own name, with no meaning given.

No streamlit, no torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from medlim.core.evaluations import EvaluationTable

__all__ = ["VALIDATION_FIGURES", "figure_label", "validation_table"]

#: key → (heading, what it is), in the order a reader wants them: the figure the state was chosen by, then the
#: finer figures, then how the fit went. Keys joined by dots are nested figures (``acquisition.…``).
VALIDATION_FIGURES: dict[str, tuple[str, str]] = {
    # SCU-Net (medlim.mammography.folder, medlim.mammography.selection)
    "whole_view_score": ("whole-view score", "what the kept state was chosen by: Dice on the validation views with "
                         "BAC when the median false BAC on the BAC-free views is at most 0.5 mm², else minus the "
                         "cost of that median (below −0.5)"),
    "cutoff": ("probability cut-off", "probability above which a pixel is BAC, chosen on the validation views "
               "(when a gate was kept, the model uses the gate instead: see its row)"),
    "gate": ("gate (floor / seed)", "a BAC region is kept whole down to the floor probability when it reaches the "
             "seed probability somewhere; kept only when it scored higher than the plain cut-off with no more "
             "false BAC on average"),
    "gate_whole_view_score": ("whole-view score with the gate", "the whole-view score with the gate instead of the "
                              "plain cut-off (the model is registered with the gate)"),
    "region_filter_whole_view_score": ("whole-view score with the region filter",
                                       "the whole-view score when regions whose shape and contrast look like tissue "
                                       "(a filter fitted on the training views) are dropped after the cut-off and "
                                       "gate; kept only when it did no worse with no more false BAC, and the model "
                                       "is registered with it"),
    "whole_view_dice_bac": ("Dice (views with BAC)", "mean whole-view Dice 2|P∩T| / (|P| + |T|) over the validation "
                            "views whose mask has BAC"),
    "whole_view_false_mm2_median": ("false BAC on BAC-free views (median, mm²)",
                                    "median predicted BAC area on the validation views without BAC"),
    "whole_view_false_px_median": ("false BAC on BAC-free views (median, px)",
                                   "the same in pixels of the images as read (the figure that counts when the "
                                   "files state no pixel spacing)"),
    "whole_view_false_penalty": ("false BAC cost (mean)", "mean over the BAC-free views of f / (f + 0.5 mm²), f the "
                                 "false area (in px over f + 100 px without a spacing): 0 for none, ½ at the "
                                 "target, towards 1 for much"),
    "whole_view_false_area_within_target": ("false BAC within 0.5 mm²",
                                            "whether the median false area on BAC-free views is at most 0.5 mm²"),
    "whole_view_tam_relative_bias": ("TAM_100 bias (%)", "(Σ predicted − Σ true) / Σ true of TAM_100 over the "
                                     "validation views, in % (the JSON keeps the fraction)"),
    "whole_views": ("validation views", "whole validation views predicted"),
    "whole_views_bac_free": ("of them BAC-free", "validation views whose mask is empty"),
    "crop_dice": ("patch Dice", "pooled Dice of the fixed validation patches at their best cut-off"),
    "crop_cutoff": ("patch cut-off", "the cut-off that gave the patch Dice"),
    "dice_at_0.5": ("patch Dice at 0.5", "pooled Dice of the validation patches at cut-off 0.5"),
    "soft_dice_loss": ("soft-Dice loss", "the training loss on the validation patches (lower is better)"),
    "false_px_per_bac_free_crop": ("false px per BAC-free patch", "mean predicted BAC pixels on patches without BAC"),
    "val_crops_bac": ("patches with BAC", "validation patches holding BAC"),
    "val_crops_bac_free": ("patches without BAC", "validation patches without BAC"),
    # steatosis (medlim.microscopy.steatosis.folder)
    "f1": ("object F1", "droplets matched at IoU ≥ 0.5 with the screened weak labels: 2PR / (P + R)"),
    "ap": ("average precision", "area under the precision–recall curve of the droplets' scores"),
    "precision": ("precision", "share of the predicted objects that match a reference object"),
    "recall": ("recall", "share of the reference objects found"),
    "jaccard": ("Jaccard", "mean IoU of the matched objects"),
    "crops": ("validation crops", "validation crops scored"),
    "weak_droplets": ("reference droplets", "droplets in the validation crops' screened weak labels"),
    # OOD (medlim.curation.ood)
    "auroc": ("AUROC", "how well the score separates your class's validation images from the negatives (0.5 = "
              "chance, 1 = perfect)"),
    "reconstruction_auroc": ("reconstruction AUROC", "the autoencoder's reconstruction error as the score"),
    "aupr": ("AUPR", "area under the precision–recall curve, the negatives as positives"),
    "fpr_at_95_tpr": ("false alarms at 95 % caught", "share of your class flagged when 95 % of the negatives are"),
    "threshold": ("threshold", "score above which an image is flagged (G-mean point on validation)"),
    "tpr": ("negatives flagged", "share of the negatives above the threshold"),
    "fpr": ("own class flagged", "share of your class's validation images above the threshold"),
    "diff": ("flagged difference", "negatives flagged minus own class flagged"),
    "n_id": ("own-class images", "validation images of your class"),
    "n_ood": ("negative images", "validation negatives (other classes or generated distortions)"),
    "validation_auroc_fused": ("AUROC with acquisition statistics", "the detector fused with the image statistics"),
    "validation_auroc_detector": ("AUROC, detector alone", "the detector's score without the statistics"),
    "validation_auroc_stats": ("AUROC, statistics alone", "the acquisition statistics alone"),
    # retrieval (medlim.curation.retrieval)
    "ds": ("PMS weighting", "how the similarity of label sets is weighted (thesis, symmetric, unweighted)"),
    "n_validation": ("validation images", "images the leave-one-out retrieval was scored on"),
    # how the fit went (medlim.core.training.FitResult)
    "best_epoch": ("kept epoch", "the epoch whose state was kept (best validation)"),
    "epochs_run": ("epochs trained", "epochs run before the plan, early stopping or the time budget ended it"),
    "epochs_planned": ("epochs planned", "epochs the plan allowed"),
    "validations": ("validations", "times the model was validated"),
    "stopped": ("stopped by", "completed, early stopping or time budget"),
    "seconds": ("training time (s)", "wall time of the fit"),
}

#: Figures stored as fractions that a reader expects in %.
_PERCENT = frozenset({"whole_view_tam_relative_bias"})

_AT_K = re.compile(r"^(?:(full|partial)_)?(precision|hit_rate|sensitivity)@(\d+)$")
_AT_K_WORDS = {
    "precision": ("precision@{k}", "share of the top {k} that is relevant{match}"),
    "hit_rate": ("hit@{k}", "share of queries with at least one relevant image in the top {k}{match} (the thesis's "
                 "hit rate)"),
    "sensitivity": ("S@{k}", "mean gap between the query's anomaly score and those of the relevant images in the top "
                    "{k} (lower is better)"),
}
_MATCH = {None: " (same class)", "full": " (the same label set)", "partial": " (at least one shared label)"}


def figure_label(key: str) -> tuple[str, str]:
    """``(heading, meaning)`` of a validation figure's key; an unknown key keeps its name and no meaning."""
    if key in VALIDATION_FIGURES:
        return VALIDATION_FIGURES[key]
    at_k = _AT_K.match(key)
    if at_k is not None:
        mode, kind, k = at_k.groups()
        heading, meaning = _AT_K_WORDS[kind]
        prefix = f"{mode}-match " if mode else ""
        return prefix + heading.format(k=k), meaning.format(k=k, match=_MATCH[mode])
    head, _, rest = key.partition(".")
    if rest and head == "acquisition":
        label, meaning = figure_label(rest)
        return f"statistics: {label}", meaning
    return key, ""


def _value(key: str, value: Any) -> Any:
    """A figure as a table cell: a gate as ``floor / seed``, nested figures flattened by the caller."""
    if key == "gate" and isinstance(value, Mapping) and {"floor", "seed"} <= set(value):
        return f"{value['floor']:g} / {value['seed']:g}"
    if key in _PERCENT and isinstance(value, (int, float)) and not isinstance(value, bool):
        return round(100.0 * float(value), 1)
    return value


def _flat(figures: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Numbers, words and flags of a validation record, nested keys joined by dots (lists left out)."""
    flat: dict[str, Any] = {}
    for key, value in figures.items():
        if key == "gate" and not prefix:
            flat[key] = _value(key, value)
        elif isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            flat[f"{prefix}{key}"] = _value(key, value) if not prefix else value
    return flat


def validation_table(summary: Mapping[str, Any]) -> EvaluationTable:
    """The validation figures of every registered model: a row per figure (known ones first, in
    :data:`VALIDATION_FIGURES`'s order), a column per model, and what each figure is.

    Args:
        summary: a trainer's result (``{"registered": [{"name", "version"}…], "validation": {name: figures}}``).

    Returns:
        An :class:`EvaluationTable` with columns ``figure``, one ``name@version`` per model, ``meaning``; each
        row maps those columns to cells (``None`` where a model has no such figure).
    """
    validation = summary.get("validation") or {}
    models: list[tuple[str, dict[str, Any]]] = []
    for entry in summary.get("registered") or []:
        figures = validation.get(entry.get("name"), {}) if isinstance(validation, Mapping) else {}
        models.append((f"{entry.get('name')}@{entry.get('version')}",
                       _flat(figures) if isinstance(figures, Mapping) else {}))
    keys: list[str] = []
    for _, flat in models:
        keys += [key for key in flat if key not in keys]
    order = {key: rank for rank, key in enumerate(VALIDATION_FIGURES)}
    keys.sort(key=lambda key: order.get(key, len(order)))  # stable: unknown keys keep their order, last
    labels = [model for model, _ in models]
    rows = []
    for key in keys:
        heading, meaning = figure_label(key)
        rows.append({"figure": heading, **{model: flat.get(key) for model, flat in models}, "meaning": meaning})
    return EvaluationTable(title="Validation split (the kept state's figures)",
                           columns=("figure", *labels, "meaning"), rows=tuple(rows))

"""A model checked against a user's own annotated folder, as typed tables any front end prints (issue 12).

Issue 12 ("Evaluate on the user's ground truth"): ``medlim bac|steatosis evaluate
--data DIR``, ``medlim ood evaluate --detector NAME --data DIR`` and ``medlim
retrieval evaluate --model NAME --data DIR`` print the thesis-protocol tables on
a person's own masks, instances, classes or label sets. The Models page runs the
same commands as an ``evaluate`` job (so a long evaluation survives a closed
tab) and shows what they print with ``--json``:

* :class:`EvaluationRequest` → :func:`evaluation_argv`: the command's arguments
  (without ``medlim``) for a task, a model and a folder. For BAC the command
  sweeps the trainer's grid of probability cut-offs plus the model's own, from
  one inference per view (``--thresholds grid,T``), so a person sees what each
  cut-off costs in missed BAC and in false BAC on BAC-free breasts.
* :func:`evaluation_problem`: why a checked folder cannot be evaluated for a
  task (training accepts unlabelled H&E images; evaluating needs droplet labels).
* :func:`evaluation_report` → :class:`EvaluationReport`: the command's JSON as
  titled tables (:class:`EvaluationTable`), plus, for BAC, the cut-off curve
  (:class:`CutoffCurve`); :meth:`EvaluationReport.lines` prints them as text.

The command line already emits all of it (``--json``, or its own tables); this
module only reads that output. No streamlit, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medlim.core.datasets import TASK_LAYOUTS, TRAINING_ONLY_PROBLEMS, DatasetCheck, DatasetProblem
from medlim.core.text import escape_control
from medlim.errors import ParameterError

__all__ = [
    "EVALUATION_LAYOUTS",
    "CutoffCurve",
    "CutoffPoint",
    "EvaluationReport",
    "EvaluationRequest",
    "EvaluationTable",
    "cell_text",
    "evaluation_argv",
    "evaluation_blockers",
    "evaluation_problem",
    "evaluation_report",
    "evaluation_of_argv",
    "model_cutoff",
]

#: Layouts each task's evaluation reads (a trainer may accept more: steatosis trains on images alone).
EVALUATION_LAYOUTS: dict[str, tuple[str, ...]] = {
    "bac": TASK_LAYOUTS["bac"],
    "steatosis": ("segmentation_instances",),
    "ood": ("class_folders", "manifest_class"),
    "oscars": TASK_LAYOUTS["oscars"],
    "pms": TASK_LAYOUTS["pms"],
}

_NEEDS: dict[str, str] = {
    "bac": "views with BAC masks (a manifest.csv with image,mask, or a Decathlon dataset.json)",
    "steatosis": "H&E images with droplet labels (a manifest.csv with image,instances: uint16 labels, 0 = background)",
    "ood": "images in class folders (or a manifest.csv with file,class) that include the detector's class",
    "oscars": "images in class folders (or a manifest.csv with file,class)",
    "pms": "a manifest.csv with file,labels (labels separated by |)",
}

#: The BAC sweep's columns: (heading, key in a sweep row, kind) — kind ``"r2"`` reads ``row["r2"][key]``.
_BAC_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Dice (views with BAC)", "dice", "number"),
    ("pooled Dice", "dice_pooled", "number"),
    ("precision", "precision", "number"),
    ("recall", "recall", "number"),
    ("Jaccard", "jaccard", "number"),
    ("patch Dice", "patch_dice", "number"),
    ("R² TAM_X", "tam_x", "r2"),
    ("R² AM", "am", "r2"),
    ("R² SIM", "sim", "r2"),
    ("R² PM", "pm", "r2"),
    ("TAM_X bias (%)", "tam_relative_bias", "percent"),
)

#: How each BAC column is computed (the page's tooltips).
_BAC_HELP: dict[str, str] = {
    "cut-off": "probability above which a pixel is BAC",
    "this cut-off is": "the model's default cut-off, and the one the trainer's rule (best Dice with a median "
               "false area on BAC-free views of at most 0.5 mm²) would choose on these views",
    "Dice (views with BAC)": "mean over the views whose mask has BAC of 2|P∩T| / (|P| + |T|), whole view",
    "pooled Dice": "2|P∩T| / (|P| + |T|) over every pixel of every view",
    "precision": "mean over the views with BAC of |P∩T| / |P|",
    "recall": "mean over the views with BAC of |P∩T| / |T|",
    "Jaccard": "mean over the views with BAC of |P∩T| / |P∪T|",
    "patch Dice": "mean Dice over the 512 px grid patches whose mask holds BAC (the thesis's patch-wise figure)",
    "R² TAM_X": "R² of the predicted against your masks' TAM_X (BAC pixels brighter than X)",
    "R² AM": "R² of the predicted against your masks' AM (BAC pixel count)",
    "R² SIM": "R² of the predicted against your masks' SIM (summed intensity of the BAC pixels)",
    "R² PM": "R² of the predicted PM (summed probability) against your masks' BAC pixel count",
    "TAM_X bias (%)": "(Σ predicted − Σ true) / Σ true of TAM_X over all views, in %",
    "false AM ≤ 0.5 mm²": "median false BAC area on BAC-free views within the 0.5 mm² target",
}

_STEATOSIS_ROWS: tuple[tuple[str, str], ...] = (
    ("weak", "weak labels (thesis, unscreened)"),
    ("weak_screened", "weak labels, screened"),
    ("network", "network"),
)


@dataclass(frozen=True)
class EvaluationRequest:
    """A model to check on an annotated folder.

    Attributes:
        task: a :data:`medlim.core.model_catalogue.TASKS` key (``bac``, ``steatosis``, ``ood``, ``oscars``, ``pms``).
        data: the annotated folder (a page's job confines it to the data roots when it runs).
        model: ``name@version`` of the model (for OOD the detector).
        cutoff: BAC only: the model's own probability cut-off, swept beside the trainer's grid.
        skip_bad: leave out the rows with problems (reported) instead of refusing the folder.
    """

    task: str
    data: Path
    model: str
    cutoff: float | None = None
    skip_bad: bool = False


def evaluation_argv(request: EvaluationRequest) -> list[str]:
    """``["bac", "evaluate", "--data", DIR, ...]``: the command an ``evaluate`` job runs (without ``medlim``).

    Raises:
        ParameterError: an unknown task, no model, or a cut-off outside [0, 1].
    """
    model = request.model.strip()
    if not model:
        raise ParameterError("choose the model to evaluate.")
    data = str(request.data)
    if request.task == "bac":
        thresholds = "grid"
        if request.cutoff is not None:
            cutoff = float(request.cutoff)
            if not 0.0 <= cutoff <= 1.0:
                raise ParameterError(f"a probability cut-off must be in [0, 1]; {cutoff:g} is given.")
            thresholds += f",{cutoff:g}"
        argv = ["bac", "evaluate", "--data", data, "--weights", model, "--thresholds", thresholds, "--json"]
    elif request.task == "steatosis":
        argv = ["steatosis", "evaluate", "--data", data, "--weights", model, "--json"]
    elif request.task == "ood":
        argv = ["ood", "evaluate", "--detector", model, "--data", data, "--json"]
    elif request.task in ("oscars", "pms"):
        argv = ["retrieval", "evaluate", "--model", model, "--data", data, "--json"]
    else:
        raise ParameterError(f"no evaluation on your data for task {request.task!r}; known: "
                             f"{', '.join(EVALUATION_LAYOUTS)}.")
    if request.skip_bad:
        argv.append("--skip-bad")
    return argv


def model_cutoff(task: str, label: str, *, registries: Any = None) -> float | None:
    """A BAC model's own probability cut-off (its manifest's ``thresholds.output``, swept beside the grid);
    ``None`` for another task or a model that records none.

    Args:
        registries: a :class:`medlim.core.weights.Registries` (default: loaded from the settings).
    """
    if task != "bac":
        return None
    from medlim.core.weights import Registries
    from medlim.errors import MedlimError

    try:
        value = (registries or Registries.load()).find(label).thresholds.get("output")
    except MedlimError:
        return None
    return None if value is None else float(value)


def evaluation_of_argv(argv: Sequence[str]) -> tuple[str, float | None] | None:
    """``(task, the model's own cut-off or None)`` of an ``evaluate`` job's argv (:func:`evaluation_argv`'s form);
    ``None`` for another command. Retrieval's task is ``"retrieval"`` (OSCARS and PMS print alike)."""
    words = list(argv)
    if len(words) < 2 or words[1] != "evaluate":
        return None
    room = words[0]
    task = {"bac": "bac", "steatosis": "steatosis", "ood": "ood", "retrieval": "retrieval"}.get(room)
    if task is None:
        return None
    cutoff = None
    if "--thresholds" in words[:-1]:
        extra = [token for token in words[words.index("--thresholds") + 1].split(",") if token.strip() != "grid"]
        try:
            cutoff = float(extra[-1]) if len(extra) == 1 else None
        except ValueError:
            cutoff = None
    return task, cutoff


def evaluation_blockers(check: DatasetCheck) -> tuple[DatasetProblem, ...]:
    """The problems that stop an evaluation of the checked folder (those that only concern training —
    too few images or patients for a split — do not: the evaluate commands ignore them)."""
    return tuple(problem for problem in check.problems if problem.kind not in TRAINING_ONLY_PROBLEMS)


def evaluation_problem(task: str, layout: str) -> str | None:
    """Why a folder of ``layout`` cannot be evaluated for ``task``, in plain words; ``None`` when it can."""
    layouts = EVALUATION_LAYOUTS.get(task)
    if layouts is None:
        return f"models of this task cannot be evaluated on your data yet (known: {', '.join(EVALUATION_LAYOUTS)})."
    if layout in layouts:
        return None
    return (f"evaluating needs {_NEEDS[task]}; this folder's layout is {layout}. Training may still use it.")


# -------------------------------------------------------------------------------------------------
# the command's JSON as tables


@dataclass(frozen=True)
class EvaluationTable:
    """One titled table: ``columns`` in order, one mapping per row (numbers stay numbers; ``None`` = n/a), and
    ``help``: how a column is computed, by column (a page's tooltip)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[Mapping[str, Any], ...]
    notes: tuple[str, ...] = ()
    help: Mapping[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The table as aligned text."""
        cells = [list(self.columns)] + [[cell_text(row.get(column)) for column in self.columns] for row in self.rows]
        widths = [max(len(line[i]) for line in cells) for i in range(len(self.columns))]
        out = [self.title]
        out += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells]
        out += [f"  {note}" for note in self.notes]
        return out


@dataclass(frozen=True)
class CutoffPoint:
    """One probability cut-off of a BAC sweep: Dice on views with BAC and the median false area of BAC-free views."""

    threshold: float
    dice: float | None
    false_area: float | None
    within_target: bool | None


@dataclass(frozen=True)
class CutoffCurve:
    """What each cut-off costs on the user's views.

    Attributes:
        points: one per cut-off, in increasing order.
        unit: ``"mm²"`` (the views state their spacing), ``"px"``, or ``None`` (no BAC-free view).
        chosen: the cut-off the trainer's rule would choose here (best Dice with median false area ≤ 0.5 mm²).
        own: the model's own cut-off, or ``None``.
    """

    points: tuple[CutoffPoint, ...]
    unit: str | None
    chosen: float | None
    own: float | None


@dataclass(frozen=True)
class EvaluationReport:
    """A task's evaluation on a user's folder.

    Attributes:
        task: the task key.
        model: ``name@version`` evaluated (``None`` when the output names none).
        fingerprint: the folder's dataset fingerprint id (never its path).
        images: images evaluated.
        tables: the titled tables, in reading order.
        curve: BAC only: Dice and false area per cut-off.
        notes: lines said once under the tables (protocol, what was left out).
    """

    task: str
    model: str | None
    fingerprint: str | None
    images: int | None
    tables: tuple[EvaluationTable, ...]
    curve: CutoffCurve | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def lines(self) -> list[str]:
        """Everything as text: a heading, each table, the notes."""
        head = f"{self.model or 'evaluation'} on dataset {self.fingerprint or '?'}"
        head += f" ({self.images} images)" if self.images is not None else ""
        out = [head]
        for table in self.tables:
            out += ["", *table.lines()]
        if self.notes:
            out += ["", *self.notes]
        return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def cell_text(value: Any) -> str:
    """A table cell as text, the same on the command line and the page: ``n/a`` for a missing figure, yes/no for
    flags, numbers to 4 significant digits, control characters escaped."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return escape_control(str(value))


def _data_fields(payload: Mapping[str, Any]) -> tuple[str | None, int | None]:
    data = payload.get("data")
    if not isinstance(data, Mapping):
        return None, _int(payload.get("images"))
    images = _int(data.get("images", data.get("n", payload.get("images"))))
    fingerprint = data.get("fingerprint")
    return (str(fingerprint) if fingerprint is not None else None), images


def _int(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _bac_report(payload: Mapping[str, Any], own: float | None) -> EvaluationReport:
    rows = [row for row in payload.get("sweep") or [] if isinstance(row, Mapping)]
    rows.sort(key=lambda row: _number(row.get("threshold")) or 0.0)
    chosen = _number(payload.get("chosen"))
    mm2 = any(_number(row.get("false_am_mm2_median")) is not None for row in rows)
    bac_free = max((_int(row.get("bac_free_images")) or 0 for row in rows), default=0)
    unit = None if bac_free == 0 else "mm²" if mm2 else "px"
    false_column = f"median false AM, BAC-free views ({unit})" if unit else "median false AM, BAC-free views"
    columns = ("cut-off", "this cut-off is", *(heading for heading, _, _ in _BAC_COLUMNS), false_column, "false AM ≤ 0.5 mm²")
    table_rows = []
    points = []
    for row in rows:
        threshold = _number(row.get("threshold")) or 0.0
        marks = [word for word, hit in (("the model's default", own is not None and math.isclose(threshold, own)),
                                        ("chosen by the trainer's rule", chosen is not None and math.isclose(threshold, chosen)))
                 if hit]
        table_row: dict[str, Any] = {"cut-off": threshold, "this cut-off is": ", ".join(marks)}
        found = row.get("r2")
        r2: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        for heading, key, kind in _BAC_COLUMNS:
            value = _number(r2.get(key)) if kind == "r2" else _number(row.get(key))
            table_row[heading] = None if value is None else 100.0 * value if kind == "percent" else value
        false = _number(row.get("false_am_mm2_median" if unit == "mm²" else "false_am_px_median"))
        table_row[false_column] = false if unit else None
        within = row.get("false_area_within_target")
        table_row["false AM ≤ 0.5 mm²"] = within if isinstance(within, bool) else None
        table_rows.append(table_row)
        points.append(CutoffPoint(threshold=threshold, dice=_number(row.get("dice")), false_area=false if unit else None,
                                  within_target=within if isinstance(within, bool) else None))
    fingerprint, images = _data_fields(payload)
    notes = ["Dice, precision, recall and Jaccard are means over the views with BAC; pooled Dice counts every "
             "pixel of every view; TAM_X bias = (Σpredicted − Σtruth) / Σtruth in %; R² against your masks' "
             "readouts."]
    if chosen is not None:
        notes.append(f"The trainer's rule (best Dice among the cut-offs whose median false AM on BAC-free views is "
                     f"at most 0.5 mm²) would choose {chosen:g} here. Choose on views you will not report on.")
    if bac_free == 0:
        notes.append("No BAC-free view: the false area cannot be measured (add views whose mask is all zero).")
    dropped = payload.get("data", {}).get("dropped") if isinstance(payload.get("data"), Mapping) else None
    if dropped:
        notes.append(f"{dropped} row(s) with problems were left out.")
    help_text = {**_BAC_HELP, false_column: "median over the BAC-free views (all-zero masks) of the area marked BAC"
                 + (" in mm² (the views' pixel spacing)" if unit == "mm²" else " in pixels (no pixel spacing)")}
    table = EvaluationTable(title="Each probability cut-off on your views (one inference per view)",
                            columns=columns, rows=tuple(table_rows), help=help_text)
    curve = CutoffCurve(points=tuple(points), unit=unit, chosen=chosen, own=own)
    return EvaluationReport(task="bac", model=_text(payload.get("weights")), fingerprint=fingerprint, images=images,
                            tables=(table,), curve=curve, notes=tuple(notes))


def _text(value: Any) -> str | None:
    return None if value is None else escape_control(str(value))


def _steatosis_report(payload: Mapping[str, Any]) -> EvaluationReport:
    columns = ("droplets from", "AP", "precision", "recall", "F1", "Jaccard")
    keys = ("ap", "precision", "recall", "f1", "jaccard")
    rows = []
    for key, label in _STEATOSIS_ROWS:
        figures = payload.get(key)
        if isinstance(figures, Mapping):
            rows.append({"droplets from": label, **{c: _number(figures.get(k)) for c, k in zip(columns[1:], keys)}})
    fingerprint, images = _data_fields(payload)
    notes = [str(payload["protocol"])] if isinstance(payload.get("protocol"), str) else []
    gain = _number(payload.get("f1_gain"))
    if gain is not None:
        notes.append(f"F1 gain of the network over the screened weak labels: {gain:+.3f}.")
    droplets = payload.get("data", {}).get("droplets") if isinstance(payload.get("data"), Mapping) else None
    if droplets is not None:
        notes.append(f"{droplets} labelled droplets.")
    help_text = {"AP": "average precision over detection scores (droplets matched at mask IoU ≥ 0.5)",
                 "precision": "matched droplets / detected droplets", "recall": "matched droplets / your droplets",
                 "F1": "2 × precision × recall / (precision + recall)",
                 "Jaccard": "mean IoU of the matched droplets"}
    table = EvaluationTable(title="Droplets against your labels (thesis Table 3.2 protocol)", columns=columns,
                            rows=tuple(rows), help=help_text)
    return EvaluationReport(task="steatosis", model=_text(payload.get("weights")), fingerprint=fingerprint,
                            images=images, tables=(table,), notes=tuple(notes))


_OOD_SUMMARY: tuple[tuple[str, str], ...] = (
    ("AUROC", "auroc"), ("AUPR", "aupr"), ("FPR at 95 % TPR", "fpr_at_95_tpr"),
    ("TPR at the G-mean threshold", "tpr"), ("FPR at the G-mean threshold", "fpr"),
    ("TPR at the stored threshold", "stored_tpr"), ("FPR at the stored threshold", "stored_fpr"),
    ("in-distribution images", "n_id"), ("other images", "n_ood"),
)


#: The thesis's Table 4.5 transforms (``medlim.curation.ood.distortions.VALIDATION_TRANSFORMS``) in plain words;
#: the JSON keeps the thesis's names, which a table shows in brackets.
TRANSFORM_WORDS: dict[str, str] = {
    "random_cut": "a block of the anatomy blacked out",
    "crop_resize": "a crop enlarged to the full image",
    "noise": "strong added noise",
    "blur": "strong blur",
}


def _mapping_table(title: str, values: Any, *, key_column: str, value_column: str,
                   words: Mapping[str, str] | None = None) -> EvaluationTable | None:
    if not isinstance(values, Mapping) or not values:
        return None
    words = words or {}
    rows = tuple({key_column: escape_control(f"{words[k]} ({k})" if k in words else str(k)), value_column: _number(v)}
                 for k, v in values.items())
    return EvaluationTable(title=title, columns=(key_column, value_column), rows=rows)


def _ood_report(payload: Mapping[str, Any]) -> EvaluationReport:
    summary = EvaluationTable(
        title=f"The detector on your folder ({payload.get('setting', 'one-vs-rest')}; ID classes: "
              f"{', '.join(escape_control(str(c)) for c in payload.get('id_classes') or [])})",
        columns=("figure", "value"),
        rows=tuple({"figure": label, "value": _number(payload.get(key))} for label, key in _OOD_SUMMARY
                   if key in payload))
    tables = [summary]
    for title, key, column in (
        ("Share flagged per class (at the stored threshold)", "class_ood_rate", "share flagged"),
        ("Table 4.5 transforms: share detected at the stored threshold", "transform_accuracy", "share detected"),
    ):
        table = _mapping_table(title, payload.get(key), key_column="class" if key == "class_ood_rate" else "transform",
                               value_column=column, words=None if key == "class_ood_rate" else TRANSFORM_WORDS)
        if table is not None:
            tables.append(table)
    shift = payload.get("shift_type_rate")
    if isinstance(shift, Mapping) and shift:
        inner = [v for v in shift.values() if isinstance(v, Mapping)]
        keys = sorted({k for v in inner for k in v if _number(v.get(k)) is not None})
        rows = tuple({"shift type": escape_control(str(name)),
                      **{k: _number(v.get(k)) for k in keys}} for name, v in shift.items() if isinstance(v, Mapping))
        tables.append(EvaluationTable(title="Per shift type", columns=("shift type", *keys), rows=rows))
    notes = tuple(escape_control(str(note)) for note in payload.get("notes") or [])
    stats = payload.get("acquisition_statistics")
    if isinstance(stats, bool):
        notes += ("Scored with the acquisition statistics stored beside the detector." if stats
                  else "Scored by the detector alone (the thesis).",)
    fingerprint, images = _data_fields(payload)
    if images is None:
        images = (_int(payload.get("n_id")) or 0) + (_int(payload.get("n_ood")) or 0) or None
    return EvaluationReport(task="ood", model=_text(payload.get("detector")), fingerprint=fingerprint, images=images,
                            tables=tuple(tables), notes=notes)


def _retrieval_report(task: str, payload: Mapping[str, Any]) -> EvaluationReport:
    tables = []
    for table in payload.get("tables") or []:
        if not isinstance(table, Mapping):
            continue
        rows = [row for row in table.get("rows") or [] if isinstance(row, Mapping)]
        columns: list[str] = []
        for row in rows:
            columns += [str(key) for key in row if str(key) not in columns]
        tables.append(EvaluationTable(
            title=escape_control(str(table.get("title", ""))), columns=tuple(columns),
            rows=tuple({str(k): (v if isinstance(v, str) else _number(v)) for k, v in row.items()} for row in rows),
            notes=tuple(escape_control(str(note)) for note in table.get("notes") or [])))
    models = payload.get("models")
    model = ", ".join(str(m) for m in models) if isinstance(models, Sequence) and not isinstance(models, str) else None
    fingerprint, images = _data_fields(payload)
    return EvaluationReport(task=task, model=_text(model), fingerprint=fingerprint, images=images, tables=tuple(tables))


def evaluation_report(task: str, payload: Mapping[str, Any], *, cutoff: float | None = None) -> EvaluationReport:
    """The JSON an evaluate command printed (``--json``) as tables.

    Args:
        task: the task key of the :class:`EvaluationRequest` (``"retrieval"`` for OSCARS or PMS alike).
        payload: the command's JSON object.
        cutoff: BAC only: the model's own cut-off, marked in the table and the curve.

    Raises:
        ParameterError: an unknown task, or a payload that is not that task's evaluation.
    """
    if not isinstance(payload, Mapping):
        raise ParameterError("an evaluation's output must be one JSON object.")
    if task == "bac":
        if not isinstance(payload.get("sweep"), list):
            raise ParameterError("this is not the output of `medlim bac evaluate --data DIR --thresholds ...`.")
        return _bac_report(payload, cutoff)
    if task == "steatosis":
        return _steatosis_report(payload)
    if task == "ood":
        return _ood_report(payload)
    if task in ("oscars", "pms", "retrieval"):
        return _retrieval_report(task, payload)
    raise ParameterError(f"no evaluation on your data for task {task!r}; known: {', '.join(EVALUATION_LAYOUTS)}.")

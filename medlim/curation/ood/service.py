"""The OOD room's service: score images with a detector and report what a person needs (thesis §4.1–4.2).

The OOD page and ``medlim ood score`` both call these functions and show the
same :class:`OodReport` (issue 17: "Every number a page shows for a given input
equals what the CLI prints for it"): per image the score, its parts, the
threshold and whether it is flagged OOD; over the set the number flagged and,
when labels exist (folder names, :mod:`medlim.curation.ood.labels`, or the
classes of generated phantoms), the AUROC with plain notes where it cannot mean
anything. Files are read and scored in small batches
(:func:`medlim.curation.ood.scoring.scored_batches`), so the command line's
memory does not grow with the number of files; the page keeps the small model
inputs for its galleries.

What does not live here: widgets and figures (``pages/ood.py``,
:mod:`medlim.curation.ood.plots`), the thesis's evaluation protocol
(:mod:`medlim.curation.ood.evaluate`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from medlim.curation.ood.calibration import auroc as area_under_roc
from medlim.curation.ood.data import IMAGE_SUFFIXES, list_image_files, stack_inputs
from medlim.curation.ood.labels import FolderLabels, auroc_notes, folder_labels, matching_class
from medlim.curation.ood.scoring import Detector, OodScores, scored_batches

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.engines import Engine

__all__ = [
    "OodInput",
    "OodReport",
    "build_report",
    "score_inputs",
    "phantom_report",
    "expand_uploads",
    "inputs_from_paths",
]


@dataclass(frozen=True)
class OodInput:
    """One image to score.

    Attributes:
        name: what rows call it (a path, an upload's name, or a pseudonymous label).
        source: the file's path or bytes.
        folders: its folders from the top down, read for labels (``("XR_HUMERUS", "patient01")``;
            ``()`` when it lies in no folder).
    """

    name: str
    source: Path | bytes
    folders: tuple[str, ...] = ()


@dataclass(frozen=True)
class OodReport:
    """Scores of a set of images with the summary the page and the command line show.

    Attributes:
        detector: the detector's ``name@version``.
        kind: ``"ae"``, ``"tend"`` or ``"cvad"``.
        scores: per image score, parts, file name, and the threshold in use.
        labels: ID/OOD labels of the scored images (``None`` when none were asked for).
        auroc: area under the ROC, when the labels hold ID and OOD images, else ``None``.
        notes: plain warnings about the labels and the AUROC (see :mod:`medlim.curation.ood.labels`).
        warnings: per scored image, the reader's warnings.
        failures: error rows of the files that could not be read (``file``, ``error``, ``message``).
        inputs: ``np.ndarray[N, s, s]`` float32 model inputs, when kept (page galleries), else ``None``.
    """

    detector: str
    kind: str
    scores: OodScores
    labels: FolderLabels | None = None
    auroc: float | None = None
    notes: tuple[str, ...] = ()
    warnings: tuple[tuple[str, ...], ...] = ()
    failures: tuple[Mapping[str, Any], ...] = ()
    inputs: np.ndarray | None = None

    @property
    def threshold(self) -> float:
        """The decision threshold t (OOD when ``score ≥ t``)."""
        return float(self.scores.threshold)

    @property
    def flagged(self) -> np.ndarray:
        """``np.ndarray[N]`` bool: predicted OOD (``score ≥ t``)."""
        return self.scores.is_ood

    @property
    def files(self) -> tuple[str, ...]:
        return self.scores.files

    def __len__(self) -> int:
        return len(self.scores.score)

    def with_threshold(self, threshold: float) -> OodReport:
        """The same report at another threshold (the AUROC does not depend on it)."""
        return replace(self, scores=replace(self.scores, threshold=float(threshold)))

    def rows(self) -> list[dict[str, Any]]:
        """One row per scored image: ``file, score, threshold, is_ood``, the parts, ``label`` when labelled."""
        rows = self.scores.rows()
        if self.labels is not None:
            for row, word in zip(rows, self.labels.label_words()):
                row["label"] = word
        return rows

    def summary(self) -> dict[str, Any]:
        """The set's numbers, JSON-able: what the page's metrics and the CLI's summary show."""
        out: dict[str, Any] = {"detector": self.detector, "images": len(self), "unreadable": len(self.failures),
                               "predicted_ood": int(self.flagged.sum()), "threshold": self.threshold,
                               "auroc": self.auroc}
        if self.labels is not None:
            out.update({"n_id": self.labels.n_id, "n_ood": self.labels.n_ood,
                        "id_folders": [list(pair) for pair in self.labels.matched]})
        out["notes"] = list(self.notes)
        return out

    def summary_texts(self) -> dict[str, str]:
        """The summary as the page shows it: ``Images``, ``Predicted OOD``, ``AUROC`` (``—`` when none)."""
        return {"Images": str(len(self)), "Predicted OOD": str(int(self.flagged.sum())),
                "AUROC": "—" if self.auroc is None else f"{self.auroc:.3f}"}

    def summary_lines(self) -> list[str]:
        """The summary as text lines (the CLI prints them after the table, each starting with ``# ``)."""
        texts = self.summary_texts()
        lines = [f"# {self.detector}: {texts['Images']} images scored"
                 + (f", {len(self.failures)} unreadable" if self.failures else ""),
                 f"# predicted OOD: {texts['Predicted OOD']} (score ≥ t = {self.threshold:.4g})"]
        if self.labels is not None:
            lines.append(f"# labels from folders: {self.labels.n_id} ID / {self.labels.n_ood} OOD; "
                         f"AUROC {texts['AUROC']}")
        lines.extend(f"# note: {note}" for note in self.notes)
        return lines


def build_report(
    detector: Detector,
    scores: OodScores,
    *,
    labels: FolderLabels | None = None,
    warnings: Sequence[Sequence[str]] = (),
    failures: Sequence[Mapping[str, Any]] = (),
    inputs: np.ndarray | None = None,
) -> OodReport:
    """An :class:`OodReport` of scores already computed: the AUROC when the labels allow one, and the notes."""
    auroc = None
    notes: tuple[str, ...] = ()
    if labels is not None:
        if len(labels.is_ood) != len(scores.score):
            from medlim.errors import ParameterError

            raise ParameterError(f"give one label per score ({len(scores.score)}), {len(labels.is_ood)} are given.")
        if labels.usable:
            auroc = area_under_roc(labels.is_ood.astype(int), scores.score)
        notes = labels.notes + auroc_notes(auroc, labels)
    return OodReport(detector=detector.name, kind=detector.kind, scores=scores, labels=labels, auroc=auroc,
                     notes=notes, warnings=tuple(tuple(w) for w in warnings), failures=tuple(failures),
                     inputs=inputs)


def _labelled(row: dict[str, Any], folders: tuple[str, ...], id_classes: Sequence[str]) -> dict[str, Any]:
    if "error" not in row:
        row["label"] = "ID" if matching_class(folders, id_classes) is not None else "OOD"
    return row


def score_inputs(
    detector: Detector,
    inputs: Iterable[OodInput],
    *,
    threshold: float | None = None,
    label_folders: bool = False,
    keep_inputs: bool = False,
    pseudonymised: bool = False,
    chunk: int = 32,
    progress: Callable[[int, str, float], None] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    engine: Engine | None = None,
) -> OodReport:
    """Read, score and (optionally) label images, a small batch at a time.

    Args:
        detector: a loaded detector.
        inputs: the images.
        threshold: overrides the calibrated threshold.
        label_folders: label each image ID or OOD by its folders (:func:`medlim.curation.ood.labels.folder_labels`).
        keep_inputs: keep the model inputs in the report (memory grows with the number of images).
        pseudonymised: names are labels: real paths stay out of messages, folders out of the notes.
        chunk: files read before they are scored together.
        progress: ``progress(index, name, seconds)`` after each file is read.
        on_row: called with each row as soon as its batch is scored (the CLI prints it),
            in file order; rows carry ``warnings`` and, with ``label_folders``, ``label``.
        engine: where files are read and scored (None: this process; :mod:`medlim.core.engines`).

    Returns:
        The report (failures listed, not raised).
    """
    items = list(inputs)
    id_classes = detector.id_classes
    parts: list[OodScores] = []
    folders, warnings, failures, kept = [], [], [], []
    for batch in scored_batches(detector, ((i.name, i.source) for i in items), threshold=threshold, chunk=chunk,
                                progress=progress, pseudonymised=pseudonymised, engine=engine):
        parts.append(batch.scores)
        if keep_inputs:  # at the network's side (a fused detector reads at the statistics' larger side)
            kept.append(stack_inputs(batch.inputs, detector.input_size))
        for attempt, row in zip(batch.attempts, batch.rows()):
            item_folders = items[attempt.index - 1].folders
            if attempt.ok:
                folders.append(item_folders)
                warnings.append(tuple(row.get("warnings", ())))
            else:
                failures.append(row)
            if on_row is not None:
                on_row(_labelled(row, item_folders, id_classes) if label_folders else row)
    scores = _concatenate(parts, detector.threshold if threshold is None else float(threshold), detector.part_names)
    labels = folder_labels(folders, id_classes, show_folders=not pseudonymised) if label_folders else None
    size = detector.input_size
    stacked = (np.concatenate(kept) if kept else np.zeros((0, size, size), np.float32)) if keep_inputs else None
    return build_report(detector, scores, labels=labels, warnings=warnings, failures=failures, inputs=stacked)


def _concatenate(parts: Sequence[OodScores], threshold: float, part_names: Sequence[str]) -> OodScores:
    if not parts:
        return OodScores(score=np.zeros(0), threshold=threshold, parts={name: np.zeros(0) for name in part_names})
    names = parts[0].parts.keys()
    return OodScores(score=np.concatenate([p.score for p in parts]), threshold=threshold,
                     parts={name: np.concatenate([p.parts[name] for p in parts]) for name in names},
                     files=tuple(f for p in parts for f in p.files))


def phantom_report(
    detector: Detector,
    *,
    seed: int,
    per_class: int,
    site: str = "internal",
    variability: float = 0.0,
    threshold: float | None = None,
) -> OodReport:
    """Score generated radiograph phantoms of every body part, labelled by their class.

    The same images as ``medlim ood evaluate --seed SEED --n PER_CLASS`` (at the
    detector's training variability by default), so its AUROC is the page's.
    """
    from medlim.curation.ood.data import phantom_set
    from medlim.phantoms.radiograph import BODY_PARTS

    data = phantom_set(seed=seed, per_class=per_class, body_parts=BODY_PARTS, size=detector.read_size, site=site,
                       variability=variability)
    scores = detector.score(data.images, files=data.files, threshold=threshold)
    labels = folder_labels([(c,) for c in data.classes], detector.id_classes)
    return build_report(detector, scores, labels=labels, inputs=stack_inputs(data.images, detector.input_size))


def expand_uploads(files: Iterable[tuple[str, bytes]]) -> list[OodInput]:
    """Uploaded files as inputs, every ``.zip`` replaced by its image members (in memory).

    A member's folders inside the archive are kept for labels
    (``batch.zip`` holding ``XR_HAND/p1/a.png`` gives folders ``("XR_HAND", "p1")``);
    a file uploaded on its own lies in no folder. Hidden files, masks and notes
    inside archives are skipped.

    Raises:
        ArchiveError: a ``.zip`` that cannot be opened or holds something refused.
        ArchiveBudgetError: a ``.zip`` beyond the zip limits (``MEDLIM_ZIP_MAX_*``).
    """
    from medlim.core.archives import iter_zip_members
    from medlim.core.io.files import UNREAD_SUFFIXES, image_suffix, is_derived_file

    expanded: list[OodInput] = []
    for name, data in files:
        if not name.lower().endswith(".zip"):
            expanded.append(OodInput(name=name, source=data))
            continue
        for member in iter_zip_members(data, label=name):
            path = PurePosixPath(member.name)
            # an image in a format the reader does not take stays in, so that its row says so (a BMP in a zip
            # was dropped without a word while the same file uploaded alone was refused by name)
            if image_suffix(path.name) not in (*IMAGE_SUFFIXES, *UNREAD_SUFFIXES, "") or is_derived_file(Path(path.name)):
                continue
            expanded.append(OodInput(name=f"{name}/{member.name}", source=member.data, folders=path.parent.parts))
    return expanded


def inputs_from_paths(paths: Iterable[str | Path], *, pseudonymise: bool = False) -> list[OodInput]:
    """Files and the image files under folders (recursively, sorted), with their folders for labels.

    A file found under a folder given has its folders below that folder
    (``DIR/XR_HAND/p1/a.png`` → ``("XR_HAND", "p1")``); a file given itself has
    its parent folder's name.

    Raises:
        ParameterError: a path that does not exist.
    """
    from medlim.core.batch import plan_files

    found: list[tuple[Path, tuple[str, ...]]] = []
    for item in paths:
        root = Path(item)
        if root.is_dir():
            found.extend((f, f.relative_to(root).parent.parts) for f in list_image_files([root]))
        else:
            for f in list_image_files([root]):
                found.append((f, (f.parent.name,) if f.parent.name else ()))
    planned = plan_files([f for f, _ in found], pseudonymise=pseudonymise)
    return [OodInput(name=batch_file.name, source=batch_file.path, folders=folders)
            for batch_file, (_, folders) in zip(planned, found)]

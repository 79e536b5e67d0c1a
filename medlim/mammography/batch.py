"""Batch BAC quantification over many files (retrospective studies), shared by
the ``medlim bac`` command line and the mammography page's batch tab.

Each file is read, analysed and (optionally) stored; a bad file is reported as
a failed :class:`FileOutcome` and the run goes on, and readouts the store
refuses are still returned, with the store's message (issue 14). With ``reuse_stored`` a file
whose bytes were already analysed with the same weights, cut-off and X is not
run again: the stored readouts are returned, so an interrupted study resumes
where it stopped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlim.errors import InputError, StoreError
from medlim.mammography.analysis import BacAnalysis, BacModel, analyse_mammogram
from medlim.mammography.exam import ExamChange, ExamReadout, ViewReadout, group_exams, longitudinal_changes

__all__ = [
    "FileOutcome",
    "quantify_files",
    "outcome_record",
    "exam_rows",
]

@dataclass(frozen=True)
class FileOutcome:
    """The result for one file: readouts, or the error a person can act on.

    Attributes:
        file: the path or name as given.
        ok: True when the readouts were computed (or reused).
        values: the JSON-able readouts (keys of :func:`outcome_record`).
        analysis: the full analysis (None when reused from the store or failed).
        error: MedlimError class name when not ok.
        message: its message.
        reused: True when the readouts came from the results store.
        store_error: the store's message when it refused the readouts (they are
            still in ``values``, with the same message under ``store_error``).
    """

    file: str
    ok: bool
    values: dict[str, Any] = field(default_factory=dict)
    analysis: BacAnalysis | None = None
    error: str | None = None
    message: str | None = None
    reused: bool = False
    store_error: str | None = None


def outcome_record(analysis: BacAnalysis, *, file: str) -> dict[str, Any]:
    """The JSON-able readouts of one analysis (the CLI's output keys)."""
    m = analysis.metrics
    return {
        "file": file,
        "pm": round(float(m.pm), 4),
        "am": int(m.am),
        "sim": round(float(m.sim), 4),
        "tam_x": int(m.tam_x),
        "tsim_x": round(float(m.tsim_x), 4),
        "x": float(m.x),
        "threshold": float(m.threshold),
        "intensity_rule": m.intensity_rule,
        "breast_area": int(m.breast_area),
        "tam_x_per_breast_area": None if np.isnan(m.tam_x_per_breast_area) else float(m.tam_x_per_breast_area),
        "am_mm2": None if m.am_mm2 is None else round(float(m.am_mm2), 4),
        "tam_x_mm2": None if m.tam_x_mm2 is None else round(float(m.tam_x_mm2), 4),
        "spacing_source": m.spacing_source,
        "view": analysis.view,
        "laterality": analysis.laterality,
        "study_date": analysis.study_date,
        "patient_key": analysis.patient_key,
        "weights": analysis.weights,
        "warnings": list(analysis.warnings),
        "seconds": round(float(analysis.seconds), 3),
    }


def _stored_record(stored: Any, *, file: str, weights: str) -> dict[str, Any]:
    area = int(stored.breast_area)
    return {
        "file": file,
        "pm": round(float(stored.pm), 4),
        "am": int(stored.am),
        "sim": round(float(stored.sim), 4),
        "tam_x": int(stored.tam_x),
        "tsim_x": round(float(stored.tsim_x), 4),
        "x": float(stored.x),
        "threshold": float(stored.threshold),
        "breast_area": area,
        "tam_x_per_breast_area": (int(stored.tam_x) / area) if area else None,
        "am_mm2": stored.am_mm2,
        "tam_x_mm2": stored.tam_x_mm2,
        "spacing_source": stored.spacing_source,
        "view": stored.image.view,
        "laterality": stored.image.laterality,
        "study_date": stored.image.study_date,
        "patient_key": stored.image.patient_key,
        "weights": weights,
        "warnings": [],
        "seconds": 0.0,
    }


def quantify_files(
    sources: Iterable[tuple[str, bytes | Path]],
    bac_model: BacModel,
    *,
    threshold: float | None = None,
    x: float | None = None,
    store: "Store | None" = None,  # noqa: F821
    reuse_stored: bool = False,
    keep_analysis: bool = False,
    progress: Callable[[int, str, float], None] | None = None,
    pseudonymised: bool = False,
) -> Iterator[FileOutcome]:
    """Analyse files one by one (a generator: memory holds one image at a time).

    A file that cannot be analysed gives a failed outcome and the run goes on
    (:func:`medlim.core.batch.attempt_each`). When the store refuses to save (or
    to look up) a result, the computed readouts still come back, with the
    store's message in ``store_error``.

    Args:
        sources: ``(display name, path or bytes)`` pairs.
        bac_model: loaded weights.
        threshold: probability cut-off (None: the weights').
        x: intensity threshold (None: the weights').
        store: results store to save into (None: nothing saved).
        reuse_stored: return stored readouts for files already analysed with the
            same weights, cut-off and X (needs ``store``).
        keep_analysis: keep the full :class:`BacAnalysis` (probability map) in the outcome.
        progress: ``progress(index, name, seconds)`` after each file.
        pseudonymised: the display names are labels; a path's real name is kept
            out of error messages.

    Yields:
        :class:`FileOutcome` per file, in order.
    """
    from medlim.core.batch import attempt_each, real_names

    t = bac_model.threshold if threshold is None else float(threshold)
    xx = bac_model.x if x is None else float(x)

    def quantify_one(name: str, source: bytes | Path) -> FileOutcome:
        return _quantify_one(name, source, bac_model, threshold=t, x=xx, store=store,
                             reuse_stored=reuse_stored and store is not None, keep_analysis=keep_analysis)

    attempts = attempt_each(sources, quantify_one, progress=progress, hidden=real_names if pseudonymised else None)
    for attempt in attempts:
        if attempt.failure is not None:
            yield FileOutcome(file=attempt.name, ok=False, error=attempt.failure["error"],
                              message=attempt.failure["message"])
        else:
            yield attempt.result


def _quantify_one(
    name: str,
    source: bytes | Path,
    bac_model: BacModel,
    *,
    threshold: float,
    x: float,
    store: Any,
    reuse_stored: bool,
    keep_analysis: bool,
) -> FileOutcome:
    """Readouts of one file, reused from the store or computed (then saved)."""
    from medlim.core.io import read_image

    digest = _sha256(source)
    lookup_error = None
    if reuse_stored:
        try:
            reused = _reuse(store, digest, bac_model, threshold, x, name)
        except StoreError as exc:  # the store cannot be read: compute the readouts anyway
            reused, lookup_error = None, exc.message
        if reused is not None:
            return reused
    record = read_image(source, name=Path(name).name)
    analysis = analyse_mammogram(record, bac_model, threshold=threshold, x=x)
    values = outcome_record(analysis, file=name)
    store_error = None
    if store is not None:
        try:
            save_analysis(store, analysis, record=record, content_sha256=digest, bac_model=bac_model)
        except StoreError as exc:  # keep the readouts: the person still gets the numbers
            store_error = exc.message
        else:
            lookup_error = None  # saved after all: nothing for the person to act on
    store_error = store_error or lookup_error
    if store_error is not None:
        values["store_error"] = store_error
    return FileOutcome(file=name, ok=True, values=values, analysis=analysis if keep_analysis else None,
                       store_error=store_error)


def _sha256(source: bytes | Path) -> str:
    """SHA-256 of the file's content, read in blocks (a path is not held in memory)."""
    if not isinstance(source, Path):
        return hashlib.sha256(bytes(source)).hexdigest()
    try:
        with source.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError as exc:
        raise InputError(f"There is no file at {source}; check the path.") from exc
    except OSError as exc:
        raise InputError(f"{source.name} cannot be read ({exc.strerror or type(exc).__name__}).") from exc


def _reuse(store: Any, digest: str, bac_model: BacModel, threshold: float, x: float, name: str) -> FileOutcome | None:
    import sqlalchemy as sa

    from medlim.core.store import transaction
    from medlim.core.store.bac import list_bac_results
    from medlim.core.store.schema import ImageRow

    with transaction(store) as session:
        image_id = session.scalar(sa.select(ImageRow.id).where(ImageRow.content_sha256 == digest))
    if image_id is None:
        return None
    for stored in list_bac_results(store, image_id=image_id, weights_name=bac_model.entry.name):
        if (
            stored.weights_version == bac_model.entry.version
            and abs(stored.threshold - threshold) < 1e-9
            and abs(stored.x - x) < 1e-9
        ):
            return FileOutcome(file=name, ok=True, values=_stored_record(stored, file=name, weights=bac_model.label), reused=True)
    return None


def save_analysis(
    store: Any, analysis: BacAnalysis, *, record: Any, content_sha256: str, bac_model: BacModel
) -> int:
    """Store the image's non-identifying metadata and its readouts (idempotent). Returns the result id."""
    from medlim.core.store.bac import save_image_record, upsert_bac_result

    image = save_image_record(store, record, content_sha256=content_sha256)
    m = analysis.metrics
    stored = upsert_bac_result(
        store,
        image_id=image.id,
        weights_name=bac_model.entry.name,
        weights_version=bac_model.entry.version,
        preset=bac_model.preset,
        threshold=m.threshold,
        x=m.x,
        pm=m.pm,
        am=m.am,
        sim=m.sim,
        tam_x=m.tam_x,
        tsim_x=m.tsim_x,
        breast_area=m.breast_area,
        am_mm2=m.am_mm2,
        tam_x_mm2=m.tam_x_mm2,
        spacing_source=m.spacing_source,
        seconds=analysis.seconds,
    )
    return stored.id


def exam_rows(values: Iterable[dict[str, Any]]) -> tuple[list[ExamReadout], list[ExamChange], list[str]]:
    """Group per-file readouts into exams and consecutive-exam changes.

    Files without patient key, study date, view or laterality cannot be placed
    in an exam; their names come back in the third element.
    """
    readouts, unplaced = [], []
    for v in values:
        if not (v.get("patient_key") and v.get("study_date") and v.get("view") and v.get("laterality")) or not v.get(
            "breast_area"
        ):
            unplaced.append(str(v.get("file")))
            continue
        readouts.append(
            ViewReadout(
                patient_key=v["patient_key"],
                study_date=v["study_date"],
                laterality=v["laterality"],
                view=v["view"],
                tam=float(v["tam_x"]),
                breast_area=float(v["breast_area"]),
                file=str(v["file"]),
            )
        )
    exams = group_exams(readouts)
    return exams, longitudinal_changes(exams), unplaced

"""Batch BAC quantification over many files (retrospective studies), shared by
the ``medlim bac`` command line and the mammography page's batch tab.

Each file is read, analysed and (optionally) stored; a bad file is reported as
a failed :class:`FileOutcome` and the run goes on. With ``reuse_stored`` a file
whose bytes were already analysed with the same weights, cut-off and X is not
run again: the stored readouts are returned, so an interrupted study resumes
where it stopped.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlim.errors import MedlimError
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
    """

    file: str
    ok: bool
    values: dict[str, Any] = field(default_factory=dict)
    analysis: BacAnalysis | None = None
    error: str | None = None
    message: str | None = None
    reused: bool = False


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
) -> Iterator[FileOutcome]:
    """Analyse files one by one (a generator: memory holds one image at a time).

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

    Yields:
        :class:`FileOutcome` per file, in order.
    """
    from medlim.core.io import read_image

    t = bac_model.threshold if threshold is None else float(threshold)
    xx = bac_model.x if x is None else float(x)
    for index, (name, source) in enumerate(sources, start=1):
        started = time.perf_counter()
        try:
            data = source.read_bytes() if isinstance(source, Path) else bytes(source)
            digest = hashlib.sha256(data).hexdigest()
            outcome = None
            if store is not None and reuse_stored:
                outcome = _reuse(store, digest, bac_model, t, xx, name)
            if outcome is None:
                record = read_image(data, name=Path(name).name)
                analysis = analyse_mammogram(record, bac_model, threshold=t, x=xx)
                if store is not None:
                    save_analysis(store, analysis, record=record, content_sha256=digest, bac_model=bac_model)
                outcome = FileOutcome(
                    file=name,
                    ok=True,
                    values=outcome_record(analysis, file=name),
                    analysis=analysis if keep_analysis else None,
                )
        except MedlimError as exc:
            outcome = FileOutcome(file=name, ok=False, error=type(exc).__name__, message=exc.message)
        except OSError as exc:
            outcome = FileOutcome(file=name, ok=False, error="InputError", message=f"cannot read {name}: {exc.strerror}")
        if progress:
            progress(index, name, time.perf_counter() - started)
        yield outcome


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

"""Repository functions for breast arterial calcification results (thesis §3.3).

Images are stored once per file content (sha256); each BAC run on an image is
one row per (weights name, version, cut-off t, intensity threshold X), so
re-running an analysis updates the row instead of adding one. Every row also
keeps TAM_100 (TAM_X at X = 100, same cut-off), the longitudinal readout, so a
patient's history reads one number per analysis whatever X was chosen, keyed by
the result's id rather than by a float cut-off (issue 17). The exam
readout (§3.3.2: Σ TAM_X / breast area over an exam's views) comes from the
``exams`` view. Only the pseudonymous ``patient_key`` identifies a patient, and
an image is named by :func:`image_label` (a keyed hash of its content), never by
its file name (issue 14). Both writes are atomic upserts, so two sessions saving
the same image or result at once leave one row.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from medlim.core.store.engine import Store, transaction
from medlim.core.store.schema import BacResultRow, ImageRow, as_utc, exams_view, utc_now
from medlim.core.store.upsert import upsert
from medlim.errors import StoreError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.io.record import ImageRecord

__all__ = [
    "CONTEXT_KEYS",
    "StoredBacResult",
    "StoredExam",
    "StoredImage",
    "get_bac_result",
    "image_label",
    "list_bac_results",
    "list_exams",
    "save_image",
    "save_image_record",
    "upsert_bac_result",
]


@dataclass(frozen=True)
class StoredImage:
    """An image row (non-identifying metadata only).

    Attributes:
        id: row id.
        content_sha256: sha256 of the file bytes.
        file_name: pseudonymous label of the file (:func:`image_label`), not its name.
        modality, view, laterality: DICOM-style codes or ``None``.
        study_date: ISO ``"YYYY-MM-DD"`` or ``None``.
        patient_key: pseudonymous key or ``None``.
        rows, cols: image size in pixels.
        pixel_spacing_mm: (row, column) spacing in mm, or ``None``.
        pixel_spacing_source: where the spacing came from (see ``ImageMetadata``).
        created_at: when first stored (UTC).
    """

    id: int
    content_sha256: str
    file_name: str
    modality: str | None
    view: str | None
    laterality: str | None
    study_date: str | None
    patient_key: str | None
    rows: int
    cols: int
    pixel_spacing_mm: tuple[float, float] | None
    pixel_spacing_source: str | None
    created_at: dt.datetime

    @classmethod
    def from_row(cls, row: ImageRow) -> "StoredImage":
        spacing = None
        if row.pixel_spacing_row_mm is not None and row.pixel_spacing_col_mm is not None:
            spacing = (row.pixel_spacing_row_mm, row.pixel_spacing_col_mm)
        return cls(
            id=row.id,
            content_sha256=row.content_sha256,
            file_name=row.file_name,
            modality=row.modality,
            view=row.view,
            laterality=row.laterality,
            study_date=row.study_date.isoformat() if row.study_date else None,
            patient_key=row.patient_key,
            rows=row.rows,
            cols=row.cols,
            pixel_spacing_mm=spacing,
            pixel_spacing_source=row.pixel_spacing_source,
            created_at=as_utc(row.created_at),
        )


@dataclass(frozen=True)
class StoredBacResult:
    """One BAC quantification (thesis eq. 3.8–3.9) with its image.

    Attributes:
        id: row id.
        image: the image analysed.
        weights_name, weights_version, preset: the model and preprocessing used.
        threshold: cut-off t on the model output.
        x: intensity threshold X (8-bit).
        pm: Σ p (float). am: Σ 1[p > t] (pixels). sim: Σ I over p > t.
        tam_x: Σ 1[p > t and I > X] (pixels). tsim_x: Σ I over that set.
        breast_area: breast pixels.
        tam_100: TAM_X at X = 100 and the same cut-off (the longitudinal readout),
            or ``None`` for rows stored before it was kept (migration 0003).
        am_mm2, tam_x_mm2: the areas in mm² when the pixel spacing is known, else ``None``.
        spacing_source: which spacing was used for mm² (or ``None``).
        spacing_request: the spacing asked for, ``"file"`` or ``"user R×C"`` (mm), or ``None``
            for rows stored before it was kept (migration 0005; never reused by ``--resume``).
        context: what the analysis said beside its numbers, a JSON object with the keys of
            :data:`CONTEXT_KEYS` (``warnings`` a list of sentences; ``unlike_training``,
            ``region_filter`` and ``model_spacing_mm`` as a readout's JSON gives them, or ``None``),
            or ``None`` for rows stored before it was kept (migration 0006; never reused by ``--resume``).
        seconds: analysis time.
        created_at, updated_at: UTC timestamps (updated on re-run).
    """

    id: int
    image: StoredImage
    weights_name: str
    weights_version: str
    preset: str
    threshold: float
    x: float
    pm: float
    am: int
    sim: float
    tam_x: int
    tsim_x: float
    breast_area: int
    am_mm2: float | None
    tam_x_mm2: float | None
    spacing_source: str | None
    seconds: float | None
    created_at: dt.datetime
    updated_at: dt.datetime
    tam_100: int | None = None
    spacing_request: str | None = None
    context: dict[str, Any] | None = None

    @property
    def tam_x_per_area(self) -> float:
        """TAM_X / breast area (0 when the breast area is 0)."""
        return self.tam_x / self.breast_area if self.breast_area > 0 else 0.0

    @classmethod
    def from_row(cls, row: BacResultRow, image: ImageRow) -> "StoredBacResult":
        return cls(
            id=row.id,
            image=StoredImage.from_row(image),
            weights_name=row.weights_name,
            weights_version=row.weights_version,
            preset=row.preset,
            threshold=row.threshold,
            x=row.x,
            pm=row.pm,
            am=row.am,
            sim=row.sim,
            tam_x=row.tam_x,
            tsim_x=row.tsim_x,
            breast_area=row.breast_area,
            am_mm2=row.am_mm2,
            tam_x_mm2=row.tam_x_mm2,
            spacing_source=row.spacing_source,
            seconds=row.seconds,
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
            tam_100=None if row.tam_100 is None else int(row.tam_100),
            spacing_request=row.spacing_request,
            context=None if row.context is None else dict(row.context),
        )


@dataclass(frozen=True)
class StoredExam:
    """Per-exam readout (thesis §3.3.2) for one set of weights and (t, X).

    Attributes:
        patient_key: pseudonymous patient key.
        study_date: ISO date of the exam.
        weights_name, weights_version, threshold, x: the analysis it summarises.
        tam_x_per_area_sum: Σ over the exam's images of TAM_X / breast area.
        views_counted: images summed (4 for a complete LCC/RCC/LMLO/RMLO exam).
    """

    patient_key: str
    study_date: str
    weights_name: str
    weights_version: str
    threshold: float
    x: float
    tam_x_per_area_sum: float
    views_counted: int


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _parse_date(value: str | dt.date | None) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise StoreError(f"study date must be an ISO date YYYY-MM-DD; {value!r} is given.") from None


def image_label(file_name: str, content_sha256: str) -> str:
    """The pseudonymous label the store keeps instead of an image's file name.

    A keyed hash (:func:`medlim.core.io.pseudonym.file_label`, the installation's
    pseudonym secret) of the content digest, plus the file's suffix: the same
    image gets the same label whatever it is called, e.g. ``"img-3fa9c2d1e0b4.dcm"``.

    Args:
        file_name: the file's name or path (only its suffix is kept).
        content_sha256: sha256 of the file bytes (64 lower-case hex digits).
    """
    from medlim.core.io.pseudonym import file_label

    return file_label(file_name, content_sha256=content_sha256)


def save_image(
    target: Store | Session,
    *,
    content_sha256: str,
    file_name: str,
    rows: int,
    cols: int,
    modality: str | None = None,
    view: str | None = None,
    laterality: str | None = None,
    study_date: str | dt.date | None = None,
    patient_key: str | None = None,
    pixel_spacing_mm: tuple[float, float] | None = None,
    pixel_spacing_source: str | None = None,
) -> StoredImage:
    """Store an image's non-identifying metadata, once per file content.

    The file's name is not stored: only its :func:`image_label`. An image
    already stored under ``content_sha256`` is returned as it is (the same bytes
    always carry the same metadata), also when another writer stores it at the
    same moment.

    Raises:
        StoreError: malformed sha256, date or size.
    """
    if not _SHA256.match(content_sha256 or ""):
        raise StoreError(f"content_sha256 must be 64 lower-case hex digits; {content_sha256!r} is given.")
    if rows < 1 or cols < 1:
        raise StoreError(f"image size must be positive; rows={rows}, cols={cols} is given.")
    values = {
        "content_sha256": content_sha256,
        "file_name": image_label(file_name, content_sha256),
        "modality": modality,
        "view": view,
        "laterality": laterality,
        "study_date": _parse_date(study_date),
        "patient_key": patient_key,
        "rows": int(rows),
        "cols": int(cols),
        "pixel_spacing_row_mm": float(pixel_spacing_mm[0]) if pixel_spacing_mm else None,
        "pixel_spacing_col_mm": float(pixel_spacing_mm[1]) if pixel_spacing_mm else None,
        "pixel_spacing_source": pixel_spacing_source,
        "created_at": utc_now(),
    }
    with transaction(target) as session:
        upsert(session, ImageRow.__table__, values, keys=["content_sha256"])
        row = session.scalars(
            sa.select(ImageRow)
            .where(ImageRow.content_sha256 == content_sha256)
            .execution_options(populate_existing=True)
        ).one()
        return StoredImage.from_row(row)


def save_image_record(target: Store | Session, record: "ImageRecord", *, content_sha256: str) -> StoredImage:
    """:func:`save_image` from a decoded ``ImageRecord`` (its metadata is already non-identifying)."""
    meta = record.metadata
    return save_image(
        target,
        content_sha256=content_sha256,
        file_name=record.name or "image",
        rows=int(record.pixels.shape[0]),
        cols=int(record.pixels.shape[1]),
        modality=meta.modality,
        view=meta.view,
        laterality=meta.laterality,
        study_date=meta.study_date,
        patient_key=meta.patient_key,
        pixel_spacing_mm=meta.pixel_spacing_mm,
        pixel_spacing_source=meta.pixel_spacing_source,
    )


def _check_counts(*, am: int, tam_x: int, breast_area: int, tam_100: int | None) -> None:
    """Refuse negative pixel counts, and TAM counts above AM (they count a subset of its pixels)."""
    counts = (("am", am), ("tam_x", tam_x), ("breast_area", breast_area), ("tam_100", tam_100))
    for name, value in counts:
        if value is not None and int(value) < 0:
            raise StoreError(f"{name} must be a non-negative pixel count; {value!r} is given.")
    for name, value in (("tam_x", tam_x), ("tam_100", tam_100)):
        if value is not None and value > am:
            raise StoreError(f"{name} ({value}) cannot exceed am ({am}): it counts a subset of AM's pixels.")


#: The keys of a stored result's ``context`` (what the analysis said beside its numbers).
CONTEXT_KEYS = frozenset({"warnings", "unlike_training", "region_filter", "model_spacing_mm"})


def _check_context(context: Mapping[str, Any] | None) -> None:
    """Refuse a context with keys other than :data:`CONTEXT_KEYS`, or warnings that are not a list of strings."""
    if context is None:
        return
    unknown = sorted(set(context) - CONTEXT_KEYS)
    if unknown:
        raise StoreError(f"a stored result's context takes {sorted(CONTEXT_KEYS)}; {unknown} is given.")
    warnings = context.get("warnings", [])
    if not isinstance(warnings, (list, tuple)) or not all(isinstance(w, str) for w in warnings):
        raise StoreError("a stored result's context keeps its warnings as a list of sentences.")


def upsert_bac_result(
    target: Store | Session,
    *,
    image_id: int,
    weights_name: str,
    weights_version: str,
    preset: str,
    threshold: float,
    x: float,
    pm: float,
    am: int,
    sim: float,
    tam_x: int,
    tsim_x: float,
    breast_area: int,
    am_mm2: float | None = None,
    tam_x_mm2: float | None = None,
    spacing_source: str | None = None,
    seconds: float | None = None,
    tam_100: int | None = None,
    spacing_request: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> StoredBacResult:
    """Insert or update the BAC result of (image, weights, version, t, X).

    Re-running the same analysis replaces the numbers and ``updated_at`` and
    keeps ``id`` and ``created_at``: storing is idempotent.

    Args:
        tam_100: TAM_X at X = 100 and cut-off ``threshold`` (the longitudinal
            readout); when ``None`` and ``x`` is 100, ``tam_x``.
        spacing_request: the pixel spacing asked for (``"file"`` or ``"user R×C"``;
            :func:`medlim.mammography.batch.spacing_request`).
        context: what the analysis said beside its numbers (keys :data:`CONTEXT_KEYS`; JSON values only).

    Raises:
        StoreError: unknown image, negative counts or areas, a context with other keys.
    """
    if tam_100 is None and float(x) == 100.0:
        tam_100 = tam_x
    _check_counts(am=am, tam_x=tam_x, breast_area=breast_area, tam_100=tam_100)
    _check_context(context)
    values = {
        "preset": preset,
        "pm": float(pm),
        "am": int(am),
        "sim": float(sim),
        "tam_x": int(tam_x),
        "tsim_x": float(tsim_x),
        "breast_area": int(breast_area),
        "tam_100": None if tam_100 is None else int(tam_100),
        "am_mm2": None if am_mm2 is None else float(am_mm2),
        "tam_x_mm2": None if tam_x_mm2 is None else float(tam_x_mm2),
        "spacing_source": spacing_source,
        "spacing_request": spacing_request,
        "context": None if context is None else dict(context),
        "seconds": None if seconds is None else float(seconds),
    }
    with transaction(target) as session:
        image = session.get(ImageRow, image_id)
        if image is None:
            raise StoreError(f"no stored image with id {image_id}; save the image first.")
        key = {
            "image_id": image_id,
            "weights_name": weights_name,
            "weights_version": weights_version,
            "threshold": float(threshold),
            "x": float(x),
        }
        now = utc_now()
        upsert(
            session,
            BacResultRow.__table__,
            {**key, **values, "created_at": now, "updated_at": now},
            keys=list(key),
            update=[*values, "updated_at"],
        )
        row = session.scalars(sa.select(BacResultRow).filter_by(**key).execution_options(populate_existing=True)).one()
        return StoredBacResult.from_row(row, image)


def list_bac_results(
    target: Store | Session,
    patient_key: str | None = None,
    *,
    weights_name: str | None = None,
    image_id: int | None = None,
) -> tuple[StoredBacResult, ...]:
    """BAC results, optionally for one patient, one model or one image.

    Ordered by study date, laterality, view, then row id (a patient's history
    reads top to bottom).
    """
    query = sa.select(BacResultRow, ImageRow).join(ImageRow, BacResultRow.image_id == ImageRow.id)
    if patient_key is not None:
        query = query.where(ImageRow.patient_key == patient_key)
    if weights_name is not None:
        query = query.where(BacResultRow.weights_name == weights_name)
    if image_id is not None:
        query = query.where(BacResultRow.image_id == image_id)
    query = query.order_by(ImageRow.study_date, ImageRow.laterality, ImageRow.view, BacResultRow.id)
    with transaction(target) as session:
        return tuple(StoredBacResult.from_row(result, image) for result, image in session.execute(query))


def get_bac_result(target: Store | Session, result_id: int) -> StoredBacResult:
    """The stored result with id ``result_id`` (the key a history entry carries).

    Raises:
        StoreError: no result has that id.
    """
    with transaction(target) as session:
        row = session.get(BacResultRow, int(result_id))
        image = None if row is None else session.get(ImageRow, row.image_id)
        if row is None or image is None:
            raise StoreError(f"no stored BAC result with id {result_id}.")
        return StoredBacResult.from_row(row, image)


def list_exams(
    target: Store | Session,
    patient_key: str | None = None,
    *,
    weights_name: str | None = None,
    x: float | None = 100.0,
) -> tuple[StoredExam, ...]:
    """Per-exam TAM_X / breast-area sums (default X = 100: the thesis' TAM_100), by date."""
    query = sa.select(exams_view)
    if patient_key is not None:
        query = query.where(exams_view.c.patient_key == patient_key)
    if weights_name is not None:
        query = query.where(exams_view.c.weights_name == weights_name)
    if x is not None:
        query = query.where(exams_view.c.x == float(x))
    query = query.order_by(exams_view.c.patient_key, exams_view.c.study_date, exams_view.c.weights_name)
    with transaction(target) as session:
        return tuple(
            StoredExam(
                patient_key=row.patient_key,
                study_date=row.study_date.isoformat() if isinstance(row.study_date, dt.date) else str(row.study_date),
                weights_name=row.weights_name,
                weights_version=row.weights_version,
                threshold=float(row.threshold),
                x=float(row.x),
                tam_x_per_area_sum=float(row.tam_x_per_area_sum),
                views_counted=int(row.views_counted),
            )
            for row in session.execute(query)
        )

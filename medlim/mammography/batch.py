"""Batch BAC quantification over many files (retrospective studies), shared by
the ``medlim bac`` command line and the mammography page's batch tab.

Each file is read, analysed and (optionally) stored; a bad file is reported as
a failed :class:`FileOutcome` and the run goes on, and readouts the store
refuses are still returned, with the store's message (issue 14). With ``reuse_stored`` a file
whose bytes were already analysed with the same weights, cut-off and X is not
run again: the stored readouts are returned, so an interrupted study resumes
where it stopped.

The per-file work is a :class:`medlim.core.engines.FileWork`: :func:`read_mammogram_file`
(hash and decode, no model) and :func:`quantify_decoded` (SCU-Net and the readouts),
so ``--engine ray`` runs the very functions the local run calls, reading in Ray
tasks and inferring in model actors; the store is written here, as results come
(issue 15).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlim.errors import InputError, StoreError
from medlim.mammography.analysis import BacAnalysis, BacModel, analyse_mammogram
from medlim.mammography.readout import AnalysedView, BacReadout, readout_of, tam_100_of

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.engines import Engine
    from medlim.core.io import ImageRecord
    from medlim.core.store import Store

__all__ = [
    "DecodedFile",
    "FileOutcome",
    "QuantifiedFile",
    "model_for_worker",
    "quantify_decoded",
    "read_mammogram_file",
    "quantify_files",
    "outcome_record",
    "save_analysis",
    "save_views",
    "spacing_request",
]


@dataclass(frozen=True)
class FileOutcome:
    """The result for one file: readouts, or the error a person can act on.

    Attributes:
        file: the path or name as given.
        ok: True when the readouts were computed (or reused).
        readout: the readouts (with TAM_100) when ok, else ``None``.
        analysis: the full analysis (None when reused from the store, failed, or not kept).
        content_sha256: sha256 of the file's bytes (``""`` when it could not be read).
        error: MedlimError class name when not ok.
        message: its message.
        reused: True when the readouts came from the results store.
        store_error: the store's message when it refused the readouts (they are still in ``readout``).
    """

    file: str
    ok: bool
    readout: BacReadout | None = None
    analysis: BacAnalysis | None = None
    content_sha256: str = ""
    error: str | None = None
    message: str | None = None
    reused: bool = False
    store_error: str | None = None

    @property
    def values(self) -> dict[str, Any]:
        """The JSON-able readouts (:meth:`BacReadout.to_dict`), with ``store_error`` when the store refused them."""
        if self.readout is None:
            return {}
        values = self.readout.to_dict()
        if self.store_error is not None:
            values["store_error"] = self.store_error
        return values

    def row(self) -> dict[str, Any]:
        """The row ``medlim bac quantify`` prints: ``ok``, the readouts and ``reused``, or the error."""
        if not self.ok:
            return {"file": self.file, "ok": False, "error": self.error, "message": self.message}
        return {"ok": True, **self.values, "reused": self.reused}


def spacing_request(pixel_spacing_mm: float | tuple[float, float] | None) -> str:
    """How the pixel spacing of an analysis was asked for, as the store keeps it (migration 0005).

    Args:
        pixel_spacing_mm: the spacing a person stated (mm; one number or (row, column)),
            or ``None`` for the file's own (the model's when the file states none).

    Returns:
        ``"file"``, or ``"user R×C"`` with each spacing to 6 significant digits
        (``0.07`` → ``"user 0.07x0.07"``).
    """
    from medlim.core.spacing import spacing_pair

    if pixel_spacing_mm is None:
        return "file"
    rows, columns = spacing_pair(pixel_spacing_mm)
    return f"user {rows:.6g}x{columns:.6g}"


def _spacing_request_of(analysis: BacAnalysis) -> str:
    """:func:`spacing_request` of a finished analysis (a stated spacing is the one it used)."""
    from medlim.core.spacing import USER

    stated = analysis.metrics.pixel_spacing_mm if analysis.metrics.spacing_source == USER else None
    return spacing_request(stated)


def outcome_record(analysis: BacAnalysis, *, file: str) -> dict[str, Any]:
    """The JSON-able readouts of one analysis (the CLI's output keys): :func:`readout_of` as a dict."""
    return readout_of(analysis, file=file).to_dict()


@dataclass(frozen=True)
class DecodedFile:
    """A mammogram file read and decoded, before inference.

    Attributes:
        record: the decoded image (:func:`medlim.core.io.read_image`).
        content_sha256: sha256 of the file's bytes.
    """

    record: ImageRecord
    content_sha256: str


@dataclass(frozen=True)
class QuantifiedFile:
    """A decoded mammogram with its analysis and readouts (TAM_100 included), not yet stored."""

    record: ImageRecord
    content_sha256: str
    analysis: BacAnalysis
    readout: BacReadout


def read_mammogram_file(name: str, source: bytes | Path) -> DecodedFile:
    """Hash and decode one file (the reading step of a BAC batch; no model).

    Raises:
        InputError: the file is missing, unreadable or not an image medlim reads.
    """
    from medlim.core.io import read_image

    digest = _sha256(source)
    return DecodedFile(read_image(source, name=Path(name).name), digest)


def quantify_decoded(
    bac_model: BacModel,
    names: Sequence[str],
    decoded: Sequence[DecodedFile],
    *,
    threshold: float,
    x: float,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
) -> list[QuantifiedFile]:
    """SCU-Net and the readouts of decoded files (the model step of a BAC batch), one per file in order.

    ``pixel_spacing_mm`` is the spacing a person states for every file (see
    :func:`medlim.mammography.analysis.analyse_mammogram`); ``None``: each file's.

    Raises:
        MedlimError: an image that cannot be a mammogram (:func:`medlim.mammography.analysis.check_mammogram`).
    """
    quantified = []
    for name, file in zip(names, decoded):
        analysis = analyse_mammogram(file.record, bac_model, threshold=threshold, x=x,
                                     pixel_spacing_mm=pixel_spacing_mm)
        quantified.append(QuantifiedFile(file.record, file.content_sha256, analysis, readout_of(analysis, file=name)))
    return quantified


def model_for_worker(bac_model: BacModel) -> BacModel:
    """The model as a worker process uses it: on its GPU when it has one (Ray sets which), else as loaded."""
    import torch

    if torch.cuda.is_available():
        bac_model.model.to(torch.device("cuda"))
    return bac_model


def quantify_files(
    sources: Iterable[tuple[str, bytes | Path]],
    bac_model: BacModel,
    *,
    threshold: float | None = None,
    x: float | None = None,
    store: Store | None = None,
    reuse_stored: bool = False,
    keep_analysis: bool = False,
    progress: Callable[[int, str, float], None] | None = None,
    pseudonymised: bool = False,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
    engine: Engine | None = None,
) -> Iterator[FileOutcome]:
    """Analyse files one by one (a generator: memory holds one image at a time).

    A file that cannot be analysed gives a failed outcome and the run goes on
    (:func:`medlim.core.batch.error_row`). When the store refuses to save (or
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
        pixel_spacing_mm: the spacing the person states for every file, overriding the
            files' (mm; one number or (row, column)); ``None``: each file's.
        engine: where reading and inference run (None: this process,
            :class:`medlim.core.engines.LocalEngine`); the store is written here either way.

    Yields:
        :class:`FileOutcome` per file, in order.
    """
    from medlim.core.batch import real_names
    from medlim.core.engines import FileWork, LocalEngine

    t = bac_model.threshold if threshold is None else float(threshold)
    xx = bac_model.x if x is None else float(x)
    work = FileWork(read=read_mammogram_file,
                    infer=partial(quantify_decoded, threshold=t, x=xx, pixel_spacing_mm=pixel_spacing_mm),
                    load_model=partial(model_for_worker, bac_model))
    skip = partial(_stored_outcome, store=store, bac_model=bac_model, threshold=t, x=xx,
                   asked=spacing_request(pixel_spacing_mm)) \
        if reuse_stored and store is not None else None
    attempts = (engine or LocalEngine()).attempts(work, sources, model=bac_model, skip=skip, progress=progress,
                                                   hidden=real_names if pseudonymised else None)
    for attempt in attempts:
        if attempt.failure is not None:
            yield FileOutcome(file=attempt.name, ok=False, error=attempt.failure["error"],
                              message=attempt.failure["message"])
        elif isinstance(attempt.result, FileOutcome):  # reused from the store
            yield attempt.result
        else:
            yield _saved_outcome(attempt.name, attempt.result, bac_model, store=store, keep_analysis=keep_analysis)


def _stored_outcome(
    name: str, source: bytes | Path, *, store: Any, bac_model: BacModel, threshold: float, x: float, asked: str
) -> FileOutcome | None:
    """The stored readouts of the file, when it was analysed so before (``None``: analyse it).

    A store that cannot be read does not stop the file: it is analysed again (and
    saving it then reports the store's trouble, if it lasts).
    """
    digest = _sha256(source)
    try:
        return _reuse(store, digest, bac_model, threshold, x, name, asked)
    except StoreError:
        return None


def _saved_outcome(name: str, quantified: QuantifiedFile, bac_model: BacModel, *, store: Any,
                   keep_analysis: bool) -> FileOutcome:
    """The outcome of an analysed file, saved to the store first when there is one."""
    store_error = None
    if store is not None:
        try:
            save_analysis(store, quantified.analysis, record=quantified.record,
                          content_sha256=quantified.content_sha256, bac_model=bac_model,
                          tam_100=quantified.readout.tam_100)
        except StoreError as exc:  # keep the readouts: the person still gets the numbers
            store_error = exc.message
    return FileOutcome(file=name, ok=True, readout=quantified.readout,
                       analysis=quantified.analysis if keep_analysis else None,
                       content_sha256=quantified.content_sha256, store_error=store_error)


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


def _reuse(store: Any, digest: str, bac_model: BacModel, threshold: float, x: float, name: str,
           asked: str) -> FileOutcome | None:
    import sqlalchemy as sa

    from medlim.core.store import transaction
    from medlim.core.store.bac import list_bac_results
    from medlim.core.store.schema import ImageRow

    with transaction(store) as session:
        image_id = session.scalar(sa.select(ImageRow.id).where(ImageRow.content_sha256 == digest))
    if image_id is None:
        return None
    for stored in list_bac_results(store, image_id=image_id, weights_name=bac_model.entry.name):
        # Resuming re-uses only the very analysis asked for (same weights, cut-off, X and
        # pixel spacing asked for) and one that keeps TAM_100 and what the analysis said (rows
        # saved before migration 0003, 0005 or 0006 are run again: they may come from before
        # resampling, and keep no warnings).
        if (
            stored.weights_version == bac_model.entry.version
            and abs(stored.threshold - threshold) < 1e-9
            and abs(stored.x - x) < 1e-9
            and stored.tam_100 is not None
            and stored.spacing_request == asked
            and stored.context is not None
        ):
            readout = BacReadout.from_stored(stored, file=name, weights=bac_model.label)
            return FileOutcome(file=name, ok=True, readout=readout, content_sha256=digest, reused=True)
    return None


def save_analysis(
    store: Any,
    analysis: BacAnalysis,
    *,
    record: Any,
    content_sha256: str,
    bac_model: BacModel,
    tam_100: int | None = None,
) -> int:
    """Store the image's non-identifying metadata and its readouts, TAM_100 included (idempotent).

    Args:
        store: the results store.
        analysis: the analysis, its ``metrics`` at the chosen cut-off and X.
        record: the decoded image (its non-identifying metadata is stored).
        content_sha256: sha256 of the file's bytes.
        bac_model: the weights used.
        tam_100: TAM_X at X = 100 and the same cut-off, when already computed
            (else computed here from the probability map).

    Returns:
        The stored result's id (the key of the analysis in a patient's history).
    """
    from medlim.core.store.bac import save_image_record, upsert_bac_result
    from medlim.mammography.readout import context_of, tam_100_of

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
        tam_100=tam_100_of(analysis, m) if tam_100 is None else int(tam_100),
        spacing_request=_spacing_request_of(analysis),
        context=context_of(analysis),
    )
    return stored.id


def save_views(store: Any, views: Iterable[AnalysedView], bac_model: BacModel) -> tuple[int, ...]:
    """Store each analysed view at its chosen cut-off and X, with TAM_100 (idempotent).

    What the page's "Save to the patient's history" does; one row per view (the
    longitudinal TAM_100 rides in the same row, so no second row at X = 100).

    Returns:
        The stored results' ids, in the order of ``views``.
    """
    return tuple(
        save_analysis(store, view.current, record=view.record, content_sha256=view.content_sha256, bac_model=bac_model,
                      tam_100=tam_100_of(view.analysis, view.metrics, view.cutoffs))
        for view in views
    )

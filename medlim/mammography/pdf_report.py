"""The radiologist's PDF report of one exam (thesis §3.3; issue 16; USERS.md).

One PDF per exam (:class:`~medlim.mammography.report.BacReport`), written with
reportlab — by ``medlim bac quantify --out DIR --pdf`` and by the mammography
page's download alike, from :func:`bac_pdf`:

* page 1: the pseudonymous patient key and the study date, the views with the
  calcification overlay (:func:`medlim.mammography.overlay.overlay_rgb`, the
  drawing the page shows), and the readout table per view and per exam — AM and
  TAM_X in pixels and mm², PM, SIM, TSIM_X, breast area, TAM_X / breast area;
* page 2: the exam readouts (Σ TAM_X and Σ TAM_100 / breast area), the patient's
  history plot (Σ TAM_100 / breast area per exam and per view, drawn with
  reportlab's own graphics) with the change flags of
  :mod:`medlim.mammography.exam`, the weights, preset, cut-off and X, and every
  warning about the images ("unlike the training data" among them);
* on every page, the research-use notice.

No names or IDs: the patient appears only as the pseudonymous key and a view
only by its view code or the file's pseudonymous label. Text is set in the
PDF's standard Helvetica (Latin-1), so Greek letters are written out ("Sum",
"change").
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import numpy as np

from medlim.mammography.exam import CHANGE_WORDS, ExamSummary, summarise_exams
from medlim.mammography.readout import BacReadout, total_readouts

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.store import Store
    from medlim.mammography.readout import AnalysedView
    from medlim.mammography.report import BacReport, WeightsSummary

__all__ = ["PDF_OVERLAY_SIDE", "VIEW_ORDER", "bac_pdf", "patient_exams", "pdf_file_name", "views_pdf", "write_bac_pdf"]

#: Longest side of a view's overlay in the PDF (pixels): sharp at 72 mm, small files.
PDF_OVERLAY_SIDE = 768

#: The hanging order of a screening exam's views (right views on the viewer's left).
VIEW_ORDER = ("RCC", "LCC", "RMLO", "LMLO")

#: Okabe–Ito colours of the views in the history plot (as on the page), the exam line in black.
_VIEW_COLOURS = {"LCC": "#0072B2", "LMLO": "#56B4E9", "RCC": "#E69F00", "RMLO": "#CC79A7"}

# Characters outside Latin-1 that the texts use, and what the standard PDF fonts can show instead.
_LATIN1 = str.maketrans({"Σ": "Sum ", "Δ": "change ", "—": "-", "–": "-", "≥": ">=", "≤": "<=", "…": "...",
                         "’": "'", "‘": "'", "“": '"', "”": '"', "→": "->", "≠": "!="})  # fmt: skip


def _cell(value: object) -> str:
    """``value`` as Latin-1 text for a table cell (what the standard fonts hold; a cell is drawn as given)."""
    return str(value).translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")


def _text(value: object) -> str:
    """``value`` as Latin-1 paragraph text, markup escaped (a paragraph parses its text as markup)."""
    return escape(_cell(value))


def pdf_file_name(report: BacReport) -> str:
    """``<patient key>_<study date>_report.pdf``."""
    return f"{report.stem}.pdf"


def _number(value: float | int | None) -> str:
    """A readout as the JSON carries it (ints plain, floats to their 4 rounded decimals), ``-`` when unknown."""
    if value is None:
        return "-"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(round(float(value), 4))


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.4e}"


def _ordered(views: Sequence[Any]) -> list[Any]:
    rank = {name: index for index, name in enumerate(VIEW_ORDER)}
    return sorted(views, key=lambda v: (rank.get(v.image, len(rank)), v.image))


def _styles() -> dict[str, Any]:
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet

    sheet = getSampleStyleSheet()
    return {
        "title": sheet["Title"],
        "heading": sheet["Heading3"],
        "body": sheet["BodyText"],
        "small": ParagraphStyle("small", parent=sheet["BodyText"], fontSize=7.5, leading=9),
        "caption": ParagraphStyle("caption", parent=sheet["BodyText"], fontSize=8, leading=10, alignment=1),
    }


def _image_flowable(rgb: np.ndarray, *, box_mm: float) -> Any:
    """An RGB overlay as a PNG image scaled into a ``box_mm`` square (aspect kept)."""
    import cv2
    from reportlab.lib.units import mm
    from reportlab.platypus import Image

    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
        raise ValueError(f"could not encode a {rgb.shape} overlay as PNG.")
    rows, cols = rgb.shape[:2]
    scale = box_mm * mm / max(rows, cols)
    return Image(io.BytesIO(encoded.tobytes()), width=cols * scale, height=rows * scale)


def _views_grid(report: BacReport, overlays: Mapping[str, np.ndarray], styles: dict[str, Any]) -> Any:
    """The views two by two, each with its overlay (or a note when none was drawn) and its caption."""
    from reportlab.platypus import Paragraph, Table

    cells = []
    for view in _ordered(report.views):
        rgb = overlays.get(view.image)
        picture = _image_flowable(rgb, box_mm=72) if rgb is not None else Paragraph("(no image)", styles["caption"])
        r = view.readout
        caption = f"{view.image}: AM {_number(r.am)} px, TAM_{r.x:g} {_number(r.tam_x)} px"
        cells.append([picture, Paragraph(_text(caption), styles["caption"])])
    rows = [cells[i : i + 2] + [""] * (2 - len(cells[i : i + 2])) for i in range(0, len(cells), 2)]
    return Table(rows or [["", ""]], hAlign="CENTER")


_READOUT_HEADER = ["View", "AM px", "AM mm²", "TAM_X px", "TAM_X mm²", "PM", "SIM", "TSIM_X", "Breast px",
                   "TAM_X / breast"]  # fmt: skip


def _readout_row(image: str, r: Any, ratio: float | None) -> list[str]:
    """A table row of a view's readouts or an exam's sums (:class:`~medlim.mammography.readout.ReadoutTotals`)."""
    return [_cell(image), _number(r.am), _number(r.am_mm2), _number(r.tam_x), _number(r.tam_x_mm2), _number(r.pm),
            _number(r.sim), _number(r.tsim_x), _number(r.breast_area), _ratio(ratio)]  # fmt: skip


def _readout_table(report: BacReport) -> Any:
    """One row per view and the exam's sums (mm² only when every view has a pixel spacing)."""
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    views = _ordered(report.views)
    readouts: list[BacReadout] = [v.readout for v in views]
    totals = total_readouts(readouts)
    x = f"{readouts[0].x:g}" if readouts else "X"
    header = [h.replace("_X", f"_{x}") for h in _READOUT_HEADER]
    rows = [header, *(_readout_row(v.image, v.readout, v.readout.tam_x_per_breast_area) for v in views)]
    rows.append(_readout_row(f"Exam ({totals.views} views)", totals, totals.tam_x_per_breast_area_sum))
    table = Table(rows, repeatRows=1, hAlign="CENTER")
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), "Helvetica", 7),
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7),
        ("FONT", (0, -1), (-1, -1), "Helvetica-Bold", 7),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
        ("LINEABOVE", (0, -1), (-1, -1), 0.6, colors.black),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
    ]))  # fmt: skip
    return table


def _settings_table(report: BacReport) -> Any:
    """The weights and settings that produced the numbers."""
    from reportlab.platypus import Table, TableStyle

    first = report.views[0].readout if report.views else None
    w = report.weights
    rows = [
        ["Model", f"{w.name} version {w.version} (sha256 {w.sha256[:16]}...)"],
        ["Preprocessing preset", w.preset],
        ["Probability cut-off t", "-" if first is None else f"{first.threshold:g}"],
        ["Intensity threshold X", "-" if first is None else f"{first.x:g} (TAM counts I {first.intensity_rule} X)"],
        ["Tiling", f"{w.tiles_text}, output {w.output_activation}"],
        ["Component gate", "none (one cut-off, as in the thesis)" if w.gate_text is None else
         f"{w.gate_text} (deviation from the thesis)"],
        ["Region filter", "none" if w.region_filter_text is None else
         f"{w.region_filter_text} (deviation from the thesis)"],
        ["Pixel spacing", _spacing_text(first)],
        ["medlim", report.medlim_version],
    ]
    table = Table([[_cell(a), _cell(b)] for a, b in rows], hAlign="LEFT", colWidths=(45 * 2.835, None))
    table.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 8), ("FONT", (0, 0), (0, -1), "Helvetica-Bold", 8)]))
    return table


def _spacing_text(readout: BacReadout | None) -> str:
    if readout is None or readout.pixel_spacing_mm is None:
        return "not in the files: areas in pixels only"
    row, col = readout.pixel_spacing_mm
    return f"{row:g} x {col:g} mm ({readout.spacing_source})"


def _exam_lines(report: BacReport) -> list[str]:
    first = report.views[0].readout if report.views else None
    if report.exam is None:
        return ["The views do not form an exam readout (a view, laterality, patient key or date is missing)."]
    lines = [f"Sum over {report.exam.views_counted} views of TAM_{first.x:g} / breast area: {report.exam.total:.4e}"
             if first else ""]  # fmt: skip
    if report.exam_tam_100 is not None:
        lines.append(f"Sum over the views of TAM_100 / breast area (the longitudinal readout): {report.exam_tam_100:.4e}")
    return lines


def _day(date: str) -> int:
    return dt.date.fromisoformat(date).toordinal()


def _history_plot(history: ExamSummary, patient_key: str | None) -> Any:
    """Sum TAM_100 / breast area per exam (black) and per view (dotted, Okabe–Ito) against the exam date,
    with a star on each exam whose change from the previous one is real (:mod:`medlim.mammography.exam`)."""
    from reportlab.graphics.charts.legends import Legend
    from reportlab.graphics.charts.lineplots import LinePlot
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.graphics.widgets.markers import makeMarker
    from reportlab.lib import colors
    from reportlab.lib.units import mm

    exams = sorted((e for e in history.exams if e.patient_key == patient_key), key=lambda e: e.study_date)
    names = sorted({f"{v.laterality}{v.view}" for e in exams for v in e.views})
    series = [[(_day(e.study_date), e.total) for e in exams]]
    series += [[(_day(e.study_date), v.normalised) for e in exams for v in e.views if f"{v.laterality}{v.view}" == n]
               for n in names]  # fmt: skip
    palette = [colors.black] + [colors.HexColor(_VIEW_COLOURS.get(n, "#7F7F7F")) for n in names]
    labels = ["Exam: Sum TAM_100 / breast area", *names]
    totals = {e.study_date: e.total for e in exams}
    real = [(_day(c.later_date), totals[c.later_date]) for c in history.changes
            if c.patient_key == patient_key and c.is_real and c.later_date in totals]  # fmt: skip
    if real:  # the clear signal: a star where the change beats the view-to-view noise
        series.append(real)
        palette.append(colors.HexColor("#D55E00"))
        labels.append("Real change (beyond view-to-view noise)")
    drawing = Drawing(170 * mm, 75 * mm)
    plot = LinePlot()
    plot.x, plot.y, plot.width, plot.height = 18 * mm, 26 * mm, 145 * mm, 42 * mm
    plot.data = series
    for index, colour in enumerate(palette):
        star = real and index == len(palette) - 1
        plot.lines[index].strokeColor = colors.transparent if star else colour
        plot.lines[index].strokeWidth = 2.2 if index == 0 else 1
        plot.lines[index].symbol = makeMarker("StarFive" if star else "FilledCircle",
                                              size=9 if star else 5 if index == 0 else 3, fillColor=colour)  # fmt: skip
        if 0 < index and not star:
            plot.lines[index].strokeDashArray = (2, 2)
    days = [d for points in series for d, _ in points]
    plot.xValueAxis.valueMin, plot.xValueAxis.valueMax = min(days) - 182, max(days) + 182
    plot.xValueAxis.valueSteps = sorted(set(days))
    plot.xValueAxis.labelTextFormat = lambda day: dt.date.fromordinal(int(day)).isoformat()
    plot.xValueAxis.labels.fontSize = 6
    top = max([value for points in series for _, value in points] + [1e-6])
    plot.yValueAxis.valueMin, plot.yValueAxis.valueMax = 0.0, top * 1.15
    plot.yValueAxis.labelTextFormat = "%.1e"
    plot.yValueAxis.labels.fontSize = 6
    drawing.add(plot)
    legend = Legend()
    legend.x, legend.y, legend.fontSize, legend.columnMaximum, legend.deltax = 18 * mm, 14 * mm, 6, 2, 50 * mm
    legend.alignment = "right"  # the swatch before its name
    legend.colorNamePairs = list(zip(palette, labels))
    drawing.add(legend)
    drawing.add(String(2, 71 * mm, "TAM_100 / breast area (dimensionless) against the exam date", fontSize=6.5,
                       fontName="Helvetica"))
    return drawing


def _change_table(history: ExamSummary, patient_key: str | None) -> Any | None:
    from reportlab.platypus import Table, TableStyle

    changes = [c for c in history.changes if c.patient_key == patient_key]
    if not changes:
        return None
    rows = [["From", "To", "Change of the sum", "View-to-view noise", "Flag"]]
    rows += [[c.earlier_date, c.later_date, f"{c.delta:+.3e}", "-" if c.noise is None else f"{c.noise:.3e}",
              CHANGE_WORDS[c.is_real]] for c in changes]  # fmt: skip
    table = Table(rows, hAlign="LEFT")
    table.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 7), ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7)]))
    return table


def _history_flowables(report: BacReport, history: ExamSummary | None, styles: dict[str, Any]) -> list[Any]:
    from reportlab.platypus import Paragraph

    flowables: list[Any] = [Paragraph("History: Sum TAM_100 / breast area per exam", styles["heading"])]
    if history is None or not any(e.patient_key == report.patient_key for e in history.exams):
        flowables.append(Paragraph("No exams of this patient to plot (no patient key or date in the files, "
                                   "or nothing saved with these weights).", styles["body"]))  # fmt: skip
        return flowables
    flowables.append(_history_plot(history, report.patient_key))
    changes = _change_table(history, report.patient_key)
    flowables.append(changes if changes is not None else
                     Paragraph("One exam: the change flags start from the second exam.", styles["small"]))  # fmt: skip
    return flowables


def _warning_flowables(report: BacReport, styles: dict[str, Any]) -> list[Any]:
    from reportlab.platypus import Paragraph

    flowables: list[Any] = [Paragraph("Warnings about the images", styles["heading"])]
    warned = [(v.image, w) for v in _ordered(report.views) for w in v.readout.warnings]
    if not warned:
        return [*flowables, Paragraph("None.", styles["body"])]
    return [*flowables, *(Paragraph(f"<b>{_text(image)}</b>: {_text(w)}", styles["body"]) for image, w in warned)]


def _filter_flowables(report: BacReport, styles: dict[str, Any]) -> list[Any]:
    """What the weights' region filter dropped from each view (:mod:`medlim.mammography.regions`); nothing for weights
    without one."""
    from reportlab.platypus import Paragraph

    filtered = [(v.image, v.readout.region_filter) for v in _ordered(report.views) if v.readout.region_filter is not None]
    if not filtered:
        return []
    flowables = [Paragraph("Region filter of these weights", styles["heading"]),
                 *(Paragraph(f"<b>{_text(image)}</b>: {_text(effect.text)}.", styles["body"]) for image, effect in filtered)]
    if len(filtered) > 1:
        exam = total_readouts([v.readout for v in report.views]).region_filter_text
        flowables.append(Paragraph(f"<b>Exam ({len(filtered)} views)</b>: dropped {_text(exam or '')}.", styles["body"]))
    return flowables


def _footer(notice: str) -> Any:
    def draw(canvas: Any, doc: Any) -> None:
        from reportlab.lib.units import mm

        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(15 * mm, 9 * mm, notice.translate(_LATIN1))
        canvas.drawRightString(195 * mm, 5 * mm, f"page {doc.page}")
        canvas.restoreState()

    return draw


def bac_pdf(
    report: BacReport,
    *,
    overlays: Mapping[str, np.ndarray],
    history: ExamSummary | None = None,
) -> bytes:
    """The exam's PDF report.

    Args:
        report: the exam's report (:func:`medlim.mammography.report.build_reports`).
        overlays: each view's overlay (``np.uint8[h, w, 3]`` RGB from
            :func:`medlim.mammography.overlay.overlay_rgb`) by its report name
            (``ReportedView.image``); a view without one gets a note instead.
        history: the patient's exams (the history service's
            :attr:`~medlim.mammography.history.PatientHistory.summary`, or
            :func:`~medlim.mammography.exam.summarise_exams` of the analysed views
            with ``tam_100=True``); only the report's patient is drawn.

    Returns:
        The PDF's bytes (two pages for an exam of up to four views).
    """
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer

    styles = _styles()
    buffer = io.BytesIO()
    document = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=12 * mm,
                                 bottomMargin=16 * mm, title="BAC exam report", author="medlim", invariant=1)  # fmt: skip
    heading = (f"Patient key (pseudonymous): <b>{_text(report.patient_key or 'not recorded')}</b> &nbsp; "
               f"Study date: <b>{_text(report.study_date or 'not recorded')}</b>")  # fmt: skip
    story: list[Any] = [
        Paragraph("Breast arterial calcification (BAC): exam report", styles["title"]),
        Paragraph(heading, styles["body"]),
        Paragraph(f"<b>{_text(report.notice)}</b>", styles["small"]),
        Spacer(1, 3 * mm),
        _views_grid(report, overlays, styles),
        Paragraph("Readouts per view and per exam (areas in pixels and mm²)", styles["heading"]),
        _readout_table(report),
        PageBreak(),
        Paragraph("Exam readout", styles["heading"]),
        *(Paragraph(_text(line), styles["body"]) for line in _exam_lines(report)),
        *_history_flowables(report, history, styles),
        Paragraph("Model and settings", styles["heading"]),
        _settings_table(report),
        *_filter_flowables(report, styles),
        *_warning_flowables(report, styles),
    ]
    footer = _footer(report.notice)
    document.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def write_bac_pdf(
    folder: str | Path,
    report: BacReport,
    *,
    overlays: Mapping[str, np.ndarray],
    history: ExamSummary | None = None,
) -> Path:
    """Write :func:`bac_pdf` as ``folder / pdf_file_name(report)`` (folder created when missing)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / pdf_file_name(report)
    path.write_bytes(bac_pdf(report, overlays=overlays, history=history))
    return path


def patient_exams(
    patient_key: str | None,
    readouts: Sequence[BacReadout],
    *,
    store: Store | None = None,
    weights_name: str = "",
    weights_version: str = "",
) -> ExamSummary | None:
    """The exams the PDF's history plot draws for one patient.

    The patient's saved exams with these weights (the history service,
    :func:`medlim.mammography.history.patient_history`) when a store is given and
    holds any; else — no store, nothing saved, or a store that cannot be read —
    the exams among ``readouts`` (the analysed views). ``None`` without a patient
    key, or when the readouts hold one view twice in an exam.
    """
    from medlim.errors import ParameterError, StoreError

    if patient_key is None:
        return None
    if store is not None:
        from medlim.mammography.history import patient_history

        try:
            history = patient_history(store, patient_key, weights_name=weights_name, weights_version=weights_version)
        except StoreError:  # the analysed exam still has a history of one
            history = None
        if history is not None and history.exams:
            return history.summary
    try:
        return summarise_exams([r for r in readouts if r.patient_key == patient_key], tam_100=True)
    except ParameterError:  # two files of one view in one exam: no plot rather than a guess
        return None


def views_pdf(
    views: Sequence[AnalysedView],
    weights: WeightsSummary,
    *,
    history: ExamSummary | None = None,
) -> tuple[str, bytes]:
    """The PDF of one exam's analysed views (the mammography page's download).

    Each view's overlay is drawn from its record's display pixels and probability
    map at its chosen cut-off (:func:`medlim.mammography.overlay.overlay_rgb`).

    Args:
        views: the views of one exam (one patient key and study date).
        weights: the weights that produced them.
        history: the patient's exams (:func:`patient_exams`).

    Returns:
        ``(file name, PDF bytes)``.

    Raises:
        ParameterError: the views belong to several exams.
    """
    from medlim.errors import ParameterError
    from medlim.mammography.overlay import overlay_rgb
    from medlim.mammography.report import build_reports, reported_view

    reported = [reported_view(view) for view in views]
    reports = build_reports(reported, weights)
    if len(reports) != 1:
        raise ParameterError(f"a PDF report covers one exam; the views belong to {len(reports)}.")
    overlays = {
        row.image: overlay_rgb(view.record.pixels, view.analysis.prediction.probability,
                               threshold=view.metrics.threshold, max_side=PDF_OVERLAY_SIDE)
        for row, view in zip(reported, views)
    }  # fmt: skip
    return pdf_file_name(reports[0]), bac_pdf(reports[0], overlays=overlays, history=history)

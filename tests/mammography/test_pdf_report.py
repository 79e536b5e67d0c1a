"""The exam's PDF report and the overlay it shows (issue 16): hand-made readouts of a four-view
exam, an earlier exam for the history, and tiny overlays; the text is read back from the PDF's
page content (reportlab writes Helvetica text as ``(...) Tj`` in ASCII85 + Flate streams)."""

from __future__ import annotations

import dataclasses
import re
import zlib

import numpy as np
import pytest

from medlim.errors import InputError, ParameterError
from medlim.mammography.exam import summarise_exams
from medlim.mammography.overlay import OVERLAY_RGB, overlay_rgb
from medlim.mammography.readout import BacReadout
from medlim.mammography.report import ReportedView, WeightsSummary, build_reports

WEIGHTS = WeightsSummary(name="scunet-bac", version="3", sha256="ab" * 32, preset="thesis", overlap_px=32,
                         merge="max", skip_background=True, output_activation="sigmoid",
                         intended_use="research")  # fmt: skip

BASE = BacReadout(
    file="", pm=1234.5678, am=1200, sim=12345.1234, tam_x=800, tsim_x=9999.5, x=100.0, threshold=0.35,
    intensity_rule=">", breast_area=400000, breast_area_rule="mask", tam_x_per_breast_area=0.002, am_mm2=94.08,
    tam_x_mm2=62.72, pixel_spacing_mm=(0.28, 0.28), spacing_source="PixelSpacing", tam_100=700, view="CC",
    laterality="L", study_date="2015-09-14", patient_key="3fa9c2d1e0b4a7c8", weights="scunet-bac v3",
)  # fmt: skip


def pdf_text(pdf: bytes) -> bytes:
    """The PDF's objects outside streams and its decoded page content (image streams left out)."""
    from reportlab.pdfbase.pdfutils import asciiBase85Decode

    parts = [re.sub(rb"stream\r?\n.*?endstream", b"", pdf, flags=re.S)]
    for match in re.finditer(rb"<<((?:(?!<<).)*?)>>\s*stream\r?\n(.*?)endstream", pdf, re.S):
        if b"/Image" not in match.group(1):
            parts.append(zlib.decompress(asciiBase85Decode(match.group(2).strip())))
    return b"\n".join(parts)


def _exam(date: str = "2015-09-14", scale: int = 1) -> list[ReportedView]:
    views = []
    for index, name in enumerate(("LCC", "LMLO", "RCC", "RMLO")):
        readout = dataclasses.replace(
            BASE, file=name, laterality=name[0], view=name[1:], study_date=date, am=1200 + index,
            am_mm2=round((1200 + index) * 0.0784, 4), tam_x=(800 + index) * scale,
            tam_100=(700 + index) * scale, pm=round(1234.5678 + index, 4),
            warnings=("This image is unlike the training data (score 3.1 ≥ limit 2.0): check the result.",)
            if name == "RMLO" else (),
        )  # fmt: skip
        views.append(ReportedView(image=name, readout=readout, content_sha256=f"{index}" * 64))
    return views


def _overlay(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return overlay_rgb(rng.random((120, 96)).astype(np.float32), rng.random((120, 96)).astype(np.float32),
                       threshold=0.99, max_side=60)  # fmt: skip


def test_pdf_has_two_pages_the_readouts_history_settings_and_warnings() -> None:
    from medlim.mammography.pdf_report import bac_pdf, pdf_file_name

    views = _exam()
    (report,) = build_reports(views, WEIGHTS)
    history = summarise_exams([v.readout for v in _exam("2013-05-02", scale=2) + views], tam_100=True)
    pdf = bac_pdf(report, overlays={v.image: _overlay(i) for i, v in enumerate(views)}, history=history)
    assert pdf.startswith(b"%PDF-") and pdf_file_name(report) == "3fa9c2d1e0b4a7c8_2015-09-14_report.pdf"
    assert len(re.findall(rb"/Type /Page\n", pdf)) == 2
    text = pdf_text(pdf)
    for view in views:
        r = view.readout
        for value in (r.am, r.am_mm2, r.tam_x, r.tam_x_mm2, r.pm, r.sim, r.tsim_x, r.breast_area):
            assert f"({value})".encode() in text, (view.image, value)
    assert b"(Exam \\(4 views\\))" in text and b"(4806)" in text  # Σ AM over the views
    assert b"3fa9c2d1e0b4a7c8" in text and b"2015-09-14" in text and b"2013-05-02" in text  # key, exam, history
    assert b"scunet-bac version 3" in text and b"(thesis)" in text and b"(0.35)" in text
    assert b"(none \\(one cut-off, as in the thesis\\))" in text and b"(Region filter)" in text  # no gate, no filter
    assert b"(100 \\(TAM counts I > X\\))" in text and b"&gt;" not in text  # table cells are drawn as given
    assert b"RMLO" in text and b"This image is unlike the training data \\(score 3.1" in text  # ≥ written >=
    assert b"Research use only." in text and text.count(b"Research use only.") >= 3  # page 1 and both footers
    assert b"within view-to-view noise" in text or b"real change" in text or b"cannot tell" in text


def test_pdf_without_history_or_overlay_says_so_and_names_no_file() -> None:
    from medlim.mammography.pdf_report import bac_pdf

    view = _exam()[0]
    labelled = ReportedView(image="img-3fa9c2d1e0b4.dcm", content_sha256=view.content_sha256,
                            readout=dataclasses.replace(view.readout, file="img-3fa9c2d1e0b4.dcm", view=None,
                                                        laterality=None))  # fmt: skip
    (report,) = build_reports([labelled], WEIGHTS)
    text = pdf_text(bac_pdf(report, overlays={}, history=None))
    assert b"(\\(no image\\))" in text and b"No exams of this patient to plot" in text
    assert b"img-3fa9c2d1e0b4.dcm" in text and b"DOE" not in text and b"LCC" not in text


def test_pdf_says_what_a_region_filter_dropped_from_each_view() -> None:
    from medlim.mammography.pdf_report import bac_pdf
    from medlim.mammography.regions import FilterEffect

    views = [dataclasses.replace(v, readout=dataclasses.replace(v.readout, region_filter=FilterEffect(
        floor=0.35, regions=5 + i, dropped=i, dropped_px=100 * i, dropped_mm2=round(100 * i * 0.0784, 4))))
        for i, v in enumerate(_exam())]
    gated = dataclasses.replace(WEIGHTS, gate={"floor": 0.2, "seed": 0.95}, region_filter={"floor": 0.35, "threshold": 0.4})
    (report,) = build_reports(views, gated)
    text = pdf_text(bac_pdf(report, overlays={}, history=None))
    assert b"regions of p > 0.2 kept where they reach p > 0.95 \\(deviation from the thesis\\)" in text
    assert b"regions of p > 0.35 judged tissue dropped, fitted on the site's views \\(deviation from the thesis\\)" in text
    assert report.to_dict()["weights"]["gate"] == {"floor": 0.2, "seed": 0.95}
    assert report.to_dict()["weights"]["region_filter"] == {"floor": 0.35, "threshold": 0.4}
    assert b"Region filter of these weights" in text
    assert b"kept all 5 regions of p > 0.35." in text  # LCC, nothing dropped
    assert b"dropped 3 of 8 regions of p > 0.35 as tissue \\(23.52 mm" in text  # RMLO: 300 px × 0.0784 mm²
    assert b"dropped 6 regions, 47.04 mm" in text  # the exam: 0 + 1 + 2 + 3 regions, 600 px × 0.0784 mm²
    assert report.to_dict()["totals"]["region_filter_dropped"] == 6
    assert report.to_dict()["totals"]["region_filter_dropped_px"] == 600
    assert report.to_dict()["totals"]["region_filter_dropped_mm2"] == pytest.approx(47.04)
    (plain,) = build_reports(_exam(), WEIGHTS)
    assert b"Region filter of these weights" not in pdf_text(bac_pdf(plain, overlays={}, history=None))


def test_overlay_blends_magenta_where_any_pixel_of_a_block_passes_the_cutoff() -> None:
    display = np.array([[0.0, 0.2, 1.0, 1.0], [0.4, 0.2, 1.0, 1.0]], dtype=np.float32)
    probability = np.array([[0.1, 0.9, 0.1, 0.1], [0.1, 0.1, 0.1, 0.5]], dtype=np.float32)
    rgb = overlay_rgb(display, probability, threshold=0.5, opacity=0.5, max_side=2)
    # factor 2: grey = block means 0.2 and 1.0 (51, 255); only the first block holds p > 0.5
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 2, 3)
    assert rgb[0, 0].tolist() == [153, 26, 153] and rgb[0, 1].tolist() == [255, 255, 255]
    assert OVERLAY_RGB == (255, 0, 255)
    assert overlay_rgb(display, probability, threshold=0.4, opacity=1.0, max_side=4)[1, 3].tolist() == [255, 0, 255]


def test_overlay_refuses_mismatched_maps_and_bad_settings() -> None:
    with pytest.raises(InputError, match=r"probability map \(2, 3\) differs from the grey image \(2, 2\)"):
        overlay_rgb(np.zeros((2, 2)), np.zeros((2, 3)), threshold=0.5)
    with pytest.raises(ParameterError, match="opacity must be in"):
        overlay_rgb(np.zeros((2, 2)), np.zeros((2, 2)), threshold=0.5, opacity=2.0)
    with pytest.raises(ParameterError, match="cut-off must be in"):
        overlay_rgb(np.zeros((2, 2)), np.zeros((2, 2)), threshold=1.5)

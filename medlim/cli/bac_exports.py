"""The exports of ``medlim bac quantify --out DIR``: DICOM SEG and SR per view, a PDF per exam (issue 16).

``--dicom-seg`` writes ``<stem>_seg.dcm`` and ``--dicom-sr`` ``<stem>_sr.dcm``
(with the SEG it references) per DICOM view, de-identified unless
``--link-to-source``; ``--pdf`` writes ``<patient key>_<study date>_report.pdf``
per exam among the inputs, grouped as ``medlim bac report`` groups them. The
files come from the same room functions as the mammography page's downloads
(:mod:`medlim.mammography.dicom_export`, :mod:`medlim.mammography.pdf_report`).
A file the exports cannot serve (a PNG for DICOM, a readout reused from the
store without its probability map) keeps its readouts and gets ``export_error``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medlim.errors import MedlimError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from medlim.core.batch import BatchFile
    from medlim.mammography.analysis import BacModel
    from medlim.mammography.batch import FileOutcome
    from medlim.mammography.exam import ExamSummary
    from medlim.mammography.report import BacReport, ReportedView

__all__ = ["QuantifyExports", "add_export_options"]

def add_export_options(parser: argparse.ArgumentParser) -> None:
    """``--dicom-seg``, ``--dicom-sr``, ``--link-to-source`` and ``--pdf`` (all need ``--out``)."""
    parser.add_argument("--dicom-seg", action="store_true",
                        help="write <stem>_seg.dcm per DICOM view: a DICOM Segmentation of the BAC mask")
    parser.add_argument("--dicom-sr", action="store_true",
                        help="write <stem>_sr.dcm per DICOM view: a TID 1500 Comprehensive SR of the five readouts "
                        "(with the <stem>_seg.dcm it references)")
    parser.add_argument("--link-to-source", action="store_true",
                        help="SEG and SR reference the source's UIDs and keep its patient and study (return to "
                        "PACS); default: a de-identified copy with new UIDs and the pseudonymous patient key")
    parser.add_argument("--pdf", action="store_true",
                        help="write <patient key>_<study date>_report.pdf per exam among the inputs")  # fmt: skip


@dataclass
class QuantifyExports:
    """The exports asked for in one ``quantify`` run, and the views the PDFs wait for.

    Attributes:
        args: the parsed command line (an option it lacks counts as not given).
        views: each analysed view for the PDFs, with its overlay (``np.uint8[h, w, 3]``).
    """

    args: argparse.Namespace
    views: list[tuple[ReportedView, np.ndarray]] = field(default_factory=list)

    def _flag(self, name: str) -> bool:
        return bool(getattr(self.args, name, False))

    @property
    def dicom(self) -> bool:
        return self._flag("dicom_seg") or self._flag("dicom_sr")

    @property
    def wanted(self) -> bool:
        """Any export asked for (the analyses must then be kept)."""
        return self.dicom or self._flag("pdf")

    def problem(self) -> str | None:
        """What is wrong with the options, or ``None``."""
        if self.wanted and getattr(self.args, "out", None) is None:
            return "--dicom-seg, --dicom-sr and --pdf write files: give the folder with --out DIR"
        if self._flag("link_to_source") and not self.dicom:
            return "--link-to-source applies to --dicom-seg/--dicom-sr; add one of them"
        return None

    def add(self, file: BatchFile, outcome: FileOutcome, bac_model: BacModel) -> dict[str, Any]:
        """Write one view's DICOM objects and keep it for the PDFs; the keys to add to its row."""
        if not self.wanted:
            return {}
        if outcome.analysis is None or outcome.readout is None:
            return {"export_error": "the readouts were reused from the results store, which keeps no mask; "
                                    "run without --resume to export this file"}  # fmt: skip
        row: dict[str, Any] = {}
        errors = []
        for wanted, export in ((self.dicom, lambda: row.update(self._dicom(file, outcome, bac_model))),
                               (self._flag("pdf"), lambda: self._keep_for_pdf(file, outcome))):  # fmt: skip
            try:
                if wanted:
                    export()
            except MedlimError as exc:  # the readouts, and the other export, are still worth having
                errors.append(exc.message)
        if errors:
            row["export_error"] = "; ".join(errors)
        return row

    def _dicom(self, file: BatchFile, outcome: FileOutcome, bac_model: BacModel) -> dict[str, Any]:
        from medlim.mammography.dicom_export import export_bac_dicom, read_source_header
        from medlim.mammography.report import WeightsSummary

        assert outcome.analysis is not None and outcome.readout is not None  # checked by add()
        header = read_source_header(file.path, name=file.name)
        export = export_bac_dicom(header, outcome.analysis.mask(), outcome.readout,
                                  WeightsSummary.of(bac_model),
                                  link_to_source=self._flag("link_to_source"))  # fmt: skip
        seg_path, sr_path = export.write(self.args.out, file.stem, report=self._flag("dicom_sr"))
        row = {"seg": str(seg_path), "dicom_mode": "linked to source" if export.linked else "de-identified"}
        if sr_path is not None:
            row["sr"] = str(sr_path)
        return row

    def _keep_for_pdf(self, file: BatchFile, outcome: FileOutcome) -> None:
        from medlim.core.io import read_image
        from medlim.core.io.pseudonym import file_label
        from medlim.mammography.overlay import overlay_rgb
        from medlim.mammography.pdf_report import PDF_OVERLAY_SIDE
        from medlim.mammography.report import ReportedView

        readout, analysis = outcome.readout, outcome.analysis
        assert readout is not None and analysis is not None  # checked by add()
        image = readout.view_name or file_label(readout.file, content_sha256=outcome.content_sha256)
        record = read_image(file.path, name=file.path.name)
        overlay = overlay_rgb(record.pixels, analysis.prediction.probability, threshold=readout.threshold,
                              max_side=PDF_OVERLAY_SIDE)  # fmt: skip
        view = ReportedView(image=image, readout=readout.with_file(image), content_sha256=outcome.content_sha256)
        self.views.append((view, overlay))

    def finish(self, bac_model: BacModel) -> int:
        """Write one PDF per exam of the kept views; 0, or 1 when the exams cannot be formed."""
        if not self._flag("pdf") or not self.views:
            return 0
        from medlim.mammography.pdf_report import write_bac_pdf
        from medlim.mammography.report import WeightsSummary, build_reports

        overlays = {id(view): overlay for view, overlay in self.views}
        try:
            reports = build_reports([view for view, _ in self.views], WeightsSummary.of(bac_model))
        except MedlimError as exc:
            print(f"medlim: no PDF written: {exc.message}", file=sys.stderr)
            return 1
        for report in reports:
            path = write_bac_pdf(self.args.out, report, overlays={v.image: overlays[id(v)] for v in report.views},
                                 history=self._history(report, bac_model))  # fmt: skip
            print(json.dumps({"pdf": str(path), "views": len(report.views)}) if self._flag("jsonl") else str(path),
                  flush=True)  # fmt: skip
        return 0

    def _history(self, report: BacReport, bac_model: BacModel) -> ExamSummary | None:
        """The patient's saved exams (the history service), else the exams among the inputs."""
        from medlim.mammography.pdf_report import patient_exams

        readouts = [view.readout for view, _ in self.views]
        if self._flag("no_store") or report.patient_key is None:
            return patient_exams(report.patient_key, readouts)
        from medlim.core.store import open_store

        try:
            with open_store() as store:
                return patient_exams(report.patient_key, readouts, store=store, weights_name=bac_model.entry.name,
                                     weights_version=str(bac_model.entry.version))  # fmt: skip
        except MedlimError as exc:  # the store cannot be opened: the exams among the inputs still plot
            print(f"medlim: the PDF's history comes from the inputs only: {exc.message}", file=sys.stderr)
            return patient_exams(report.patient_key, readouts)

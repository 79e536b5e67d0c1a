"""The BAC report of an exam (medlim.mammography.report): grouping, file names, no identifying fields.

Hand-computed on the 2×3 image of ``conftest.py`` at t = 0.5, X = 95: per view
TAM_95 = 3, TAM_100 = 2, breast area 6, so an exam of LCC and LMLO sums
TAM_95 / area to 1.0 and TAM_100 / area to 4/6.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from medlim.mammography.analysis import requantify
from medlim.mammography.readout import AnalysedView
from medlim.mammography.report import (
    NO_DATE,
    NO_PATIENT_KEY,
    WeightsSummary,
    build_reports,
    csv_bytes,
    pseudonymous_rows,
    report_stem,
    reported_view,
)

WEIGHTS = WeightsSummary(name="scunet-bac", version="2", sha256="f" * 64, preset="thesis", overlap_px=64,
                         merge="max", skip_background=True, output_activation="sigmoid",
                         intended_use="Research use only.")  # fmt: skip


def _view(tiny_analysis, n: int, **fields) -> AnalysedView:
    analysis, record = tiny_analysis(**fields)
    return AnalysedView(analysis, requantify(analysis, threshold=0.5, x=95), record, f"{n:064x}", f"img-{n}.dcm")


def test_one_report_per_exam_with_the_exam_readouts(tiny_analysis) -> None:
    views = [
        _view(tiny_analysis, 1, view="CC"), _view(tiny_analysis, 2, view="MLO"),
        _view(tiny_analysis, 3, study_date="2021-01-02"),
    ]  # fmt: skip
    reports = build_reports([reported_view(v) for v in views], WEIGHTS)
    assert [(r.patient_key, r.study_date, len(r.views)) for r in reports] == [
        ("pk1", "2020-01-02", 2), ("pk1", "2021-01-02", 1)
    ]  # fmt: skip
    first = reports[0]
    assert first.stem == "pk1_2020-01-02_report"
    assert first.exam.total == pytest.approx(1.0) and first.exam_tam_100 == pytest.approx(4 / 6)
    document = json.loads(first.to_json())
    assert document["weights"]["name"] == "scunet-bac" and document["weights"]["preset"] == "thesis"
    assert document["exam"]["views"] == ["LCC", "LMLO"] and document["exam"]["x"] == 95.0
    assert document["exam"]["tam_100_per_breast_area_sum"] == pytest.approx(4 / 6)
    assert [v["image"] for v in document["views"]] == ["LCC", "LMLO"]
    assert document["views"][0]["tam_100"] == 2 and document["views"][0]["content_sha256"] == f"{1:064x}"
    # the page's exam row: two views of AM 4, SIM 460, TAM_95 3 each (module docstring of test_readout)
    totals = document["totals"]
    assert (totals["views"], totals["am"], totals["sim"], totals["tam_x"], totals["breast_area"]) == (2, 8, 920.0, 6, 12)
    assert totals["region_filter_dropped"] is None  # these weights carry no region filter
    assert "Research use only" in document["notice"]


def test_report_files_carry_no_identifying_names(tiny_analysis, tmp_path: Path) -> None:
    view = _view(tiny_analysis, 7, view=None, laterality=None, patient_key=None, study_date=None)
    (report,) = build_reports([reported_view(view)], WEIGHTS)
    assert report.stem == f"{NO_PATIENT_KEY}_{NO_DATE}_report" and report.exam is None
    csv_path, json_path = report.write(tmp_path / "out")
    text = csv_path.read_text() + json_path.read_text()
    assert "DOE" not in text and "JANE" not in text
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert rows[0]["image"] == "img-7.dcm" and rows[0]["warnings"] == "a warning"


def test_report_stem_keeps_only_safe_characters() -> None:
    assert report_stem("a/b c", "2020-01-02") == "a-b-c_2020-01-02_report"


def test_csv_is_neutralised_and_flattens_lists() -> None:
    text = csv_bytes([{"image": "=cmd()", "spacing": [0.1, 0.2], "none": None}]).decode()
    assert text.splitlines()[1] == "'=cmd(),0.1; 0.2,"


def test_pseudonymous_rows_replace_the_name_everywhere() -> None:
    rows = pseudonymous_rows([{"file": "x/SMITH.dcm", "message": "SMITH.dcm is damaged"}], {"x/SMITH.dcm": "img-1.dcm"})
    assert rows == [{"file": "img-1.dcm", "message": "img-1.dcm is damaged"}]


def test_weights_summary_of_a_loaded_model() -> None:
    entry = SimpleNamespace(name="n", version="3", sha256="e" * 64, intended_use="use")
    model = SimpleNamespace(entry=entry, preset="published", stride=480, merge="mean", skip="black",
                            output_activation="identity", gate=None, region_filter=None)  # fmt: skip
    summary = WeightsSummary.of(model)
    assert (summary.version, summary.overlap_px, summary.skip_background) == ("3", 32, "black")
    assert (summary.gate, summary.region_filter) == (None, None)
    from medlim.mammography.gating import ComponentGate
    from medlim.mammography.regions import REGION_FEATURES, RegionFilter

    width = len(REGION_FEATURES)
    region_filter = RegionFilter(floor=0.8, mean=(0.0,) * width, scale=(1.0,) * width, coef=(0.0,) * width,
                                 intercept=0.0, threshold=0.4, spacing_mm=0.07)
    both = WeightsSummary.of(SimpleNamespace(**{**vars(model), "gate": ComponentGate(0.2, 0.95),
                                                "region_filter": region_filter}))
    assert both.to_dict()["gate"] == {"floor": 0.2, "seed": 0.95}
    assert both.to_dict()["region_filter"] == {"floor": 0.8, "threshold": 0.4}


def test_settings_sentence_names_the_weights_tiling_cut_off_and_deviations() -> None:
    """The page's "Numbers from" line and ``bac quantify``'s stderr line: one sentence, written out by hand."""
    plain = WEIGHTS.settings_text(threshold=0.5, x=95, rule=">")
    assert plain == (
        "Numbers from scunet-bac v2 · preset thesis (thesis: disk median filter, breast outline without labels, "
        "contrast stretch (brightest 1 % clipped); overlap 64 px, max merge, background tiles skipped) · "
        "cut-off p > 0.50, X = 95 (I > X)."
    )
    both = dataclasses.replace(WEIGHTS, preset="own", skip_background="black", gate={"floor": 0.2, "seed": 0.95},
                               region_filter={"floor": 0.35, "threshold": 0.4})  # fmt: skip
    assert both.settings_text(threshold=0.35, x=100, rule=">=", dice=0.8123) == (
        "Numbers from scunet-bac v2, held-out phantom Dice 0.81 · preset own (custom preprocessing; overlap 64 px, "
        "max merge, only empty black background tiles skipped) · cut-off p > 0.35, X = 100 (I >= X) · gate: regions "
        "of p > 0.2 kept where they reach p > 0.95 · region filter: regions of p > 0.35 judged tissue dropped, "
        "fitted on the site's views."
    )
    assert dataclasses.replace(WEIGHTS, skip_background=False).tiles_text == "overlap 64 px, max merge, every tile analysed"


def test_numbers_from_quotes_the_manifests_dice_and_the_presets_rule() -> None:
    """What the page's caption and ``bac quantify``'s stderr line both call: the Dice from the entry's metrics,
    the rule from the preset unless the readouts give one."""
    from medlim.mammography.report import numbers_from

    entry = SimpleNamespace(name="n", version="3", sha256="e" * 64, intended_use="use", metrics={"whole_image_dice": 0.7})
    model = SimpleNamespace(entry=entry, preset="published", stride=480, merge="max", skip=True,
                            output_activation="sigmoid", gate=None, region_filter=None)  # fmt: skip
    assert numbers_from(model, threshold=0.3, x=100) == (
        "Numbers from n v3, held-out phantom Dice 0.70 · preset published (the authors' published code: 5×5 median "
        "filter only; overlap 32 px, max merge, background tiles skipped) · cut-off p > 0.30, X = 100 (I >= X)."
    )
    entry.metrics = {}
    assert numbers_from(model, threshold=0.3, x=100, rule=">").startswith("Numbers from n v3 · preset published")
    assert numbers_from(model, threshold=0.3, x=100, rule=">").endswith("X = 100 (I > X).")


def test_csv_flattens_nested_objects_into_named_columns() -> None:
    from medlim.mammography.report import csv_bytes

    text = csv_bytes([{"image": "a", "unlike_training": {"score": 7.5, "threshold": 6.25, "flagged": True},
                       "warnings": ["w1", "w2"]}]).decode()
    assert text.splitlines() == ["image,unlike_training_score,unlike_training_threshold,unlike_training_flagged,warnings",
                                 "a,7.5,6.25,True,w1; w2"]

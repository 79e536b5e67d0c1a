"""The typed MedShift report and a stored run's tables, on hand-made numbers (issue 17)."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest

from medlim.core.store.curation import StoredScore
from medlim.curation.shift.otdd import OtddResult
from medlim.curation.shift.report import (
    OtddLevel,
    ShiftEvidence,
    ShiftReport,
    curated_rows,
    load_report,
    report_path,
    topk_table_rows,
)
from medlim.curation.shift.service import GalleryItem, StoredRun
from medlim.curation.shift.topk import ClassReport, TopKRow
from medlim.errors import ParameterError

NAN = float("nan")


def _report() -> ShiftReport:
    hand = ClassReport("hand", 1.0, 0.5, 2 / 3, NAN, 2)
    macro = ClassReport("macro", 1.0, 0.5, 2 / 3, NAN, 2)
    weighted = ClassReport("weighted", 1.0, 0.5, 2 / 3, NAN, 2)
    row = TopKRow(level=1, count=2, per_class=(hand,), macro=macro, weighted=weighted, accuracy=0.5)
    return ShiftReport(
        internal="int", external="ext", method="medshift-cvad", k=1, k_rule="given", group_scale="log",
        elbow_ks=(1, 2), elbow_distortion=(1.0, 0.25), class_elbows={"hand": 2}, group_centres={"hand": (0.5,)},
        group_counts={"hand": (2,)}, topk=(row,),
        otdd=(OtddLevel(level=1, result=OtddResult(mean=3.0, std=0.5, values=(2.5, 3.5), n_a=4, n_b=2, repeats=2)),),
        evidence=ShiftEvidence(auroc=NAN, auroc_per_class={"hand": NAN}, auroc_class_mean=NAN,
                               shifted_fraction_by_group=(0.5,), lowest_group_shifted=0.5, highest_group_shifted=0.5,
                               n_shifted=1, n=2),
        settings={"external_source": "phantom:mixed:1:1:hand"}, internal_scores={"hand": (0.1, 0.2)})


def test_report_with_nan_round_trips_as_null() -> None:
    report = _report()
    text = json.dumps(report.to_json())
    assert "NaN" not in text  # JSON has no NaN: null
    again = ShiftReport.from_json(json.loads(text))
    assert again.to_json() == json.loads(text)
    assert math.isnan(again.topk[0].per_class[0].auc) and math.isnan(again.evidence.auroc)
    assert again.topk[0].macro.f1 == pytest.approx(2 / 3) and again.otdd[0].result.values == (2.5, 3.5)
    assert (again.levels, again.otdd_mean, again.otdd_std, again.macro_f1) == ([1], [3.0], [0.5], [pytest.approx(2 / 3)])
    assert again.external_source == "phantom:mixed:1:1:hand" and again.internal_scores == {"hand": (0.1, 0.2)}
    with pytest.raises(ParameterError, match="lacks"):
        ShiftReport.from_json({"internal": "a"})


def test_topk_table_rows_flatten_levels_classes_and_averages() -> None:
    rows = topk_table_rows(_report().topk)
    assert [(r.subset, r.class_name, r.images) for r in rows] == [("TOP 1", "hand", 2), ("TOP 1", "macro", 2),
                                                                   ("TOP 1", "weighted", 2)]
    assert list(rows[0].to_json()) == ["subset", "class", "precision", "recall", "f1", "auc", "images"]


def _score(file: str, class_name: str, score: float, group: int) -> StoredScore:
    return StoredScore(dataset="ext", file=file, class_name=class_name, method="medshift-cvad", score=score,
                       group=group, updated_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def test_stored_run_tables_by_hand() -> None:
    scores = (_score("e/1.png", "elbow", 0.2, 0), _score("h/2.png", "hand", 0.9, 1), _score("h/1.png", "hand", 0.1, 0),
              _score("h/3.png", "hand", 0.7, 1))
    run = StoredRun(name="ext", report=_report(), scores=scores, tags={"h/2.png": "drop", "h/3.png": "keep"})
    table = [g.to_json() for g in run.group_table()]
    assert table == [
        {"class": "elbow", "group": 0, "images": 1, "min score": 0.2, "max score": 0.2, "keep": 0, "drop": 0},
        {"class": "hand", "group": 0, "images": 1, "min score": 0.1, "max score": 0.1, "keep": 0, "drop": 0},
        {"class": "hand", "group": 1, "images": 2, "min score": 0.7, "max score": 0.9, "keep": 1, "drop": 1},
    ]
    assert run.gallery("hand", 1) == (GalleryItem("h/3.png", "hand", 0.7, 1, "keep"),
                                      GalleryItem("h/2.png", "hand", 0.9, 1, "drop"))
    # drop h/2 (tagged); with groups ≥ 1 left out, h/3 stays (tagged keep)
    assert [r["file"] for r in run.curated()] == ["e/1.png", "h/1.png", "h/3.png"]
    assert [r["file"] for r in run.curated(drop_groups_from=1)] == ["e/1.png", "h/1.png", "h/3.png"]
    assert run.curated() == curated_rows(scores, run.tags)
    summary = run.summary()
    assert (summary["external_images"], summary["tagged"], summary["k"], summary["auroc"]) == (4, 2, 1, None)
    assert run.classes == ["elbow", "hand"]


def test_names_that_differ_only_by_a_space_keep_separate_reports(tmp_path: Path) -> None:
    assert report_path(tmp_path, "partner_2024") == tmp_path / "shift" / "partner_2024" / "report.json"
    spaced = report_path(tmp_path, "partner 2024")
    assert spaced != report_path(tmp_path, "partner_2024") and spaced.parent.name.startswith("partner_2024-")
    assert load_report(tmp_path, "partner 2024") is None
    # a report written before the hash suffix is still found
    legacy = tmp_path / "shift" / "old_name" / "report.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps(_report().to_json()), encoding="utf-8")
    assert load_report(tmp_path, "old name").external == "ext"


def test_every_chart_has_axis_titles_and_okabe_ito_colours() -> None:
    from medlim.core.colours import OKABE_ITO
    from medlim.curation.shift.report import elbow_figure, histogram_figure, otdd_figure

    figures = [histogram_figure({"hand": [0.1, 0.2], "elbow": [0.3]}, [0.5, 0.7, 0.9], ["hand", "elbow", "hand"]),
               elbow_figure((1, 2, 3), (1.0, 0.3, 0.1), 2), otdd_figure((2, 1), (3.0, 2.0), (0.1, 0.2), (0.6, 0.8))]
    palette = set(OKABE_ITO.values())
    for figure in figures:
        layout = figure.to_dict()["layout"]
        axes = [key for key in layout if key.startswith(("xaxis", "yaxis"))]
        assert axes and all(layout[axis].get("title", {}).get("text") for axis in axes), axes
        colours = {trace.get("marker", {}).get("color") or trace.get("line", {}).get("color")
                   for trace in figure.to_dict()["data"]}
        assert colours <= palette, colours

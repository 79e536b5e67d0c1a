"""The trainers' validation figures as one readable table (medlim.core.validation_report)."""

from __future__ import annotations

import json

import pytest

from medlim.core.training import TrainingOutcome
from medlim.core.validation_report import figure_label, validation_table


def test_a_gated_scunet_summary_reads_in_plain_words_in_the_fit_order() -> None:
    summary = {"registered": [{"name": "site-bac", "version": "2"}],
               "validation": {"site-bac": {"stopped": "time budget", "cutoff": 0.5, "whole_view_score": 0.41,
                                           "gate": {"floor": 0.2, "seed": 0.8}, "gate_whole_view_score": 0.47,
                                           "whole_view_false_mm2_median": 0.0, "whole_view_tam_relative_bias": 1.2408,
                                           "curve": [1, 2]}}}
    table = validation_table(summary)
    assert table.columns == ("figure", "site-bac@2", "meaning")
    # the chosen-by figure first, then the cut-off and the gate, how the fit went last; the list left out
    assert [(row["figure"], row["site-bac@2"]) for row in table.rows] == [
        ("whole-view score", 0.41), ("probability cut-off", 0.5), ("gate (floor / seed)", "0.2 / 0.8"),
        ("whole-view score with the gate", 0.47), ("false BAC on BAC-free views (median, mm²)", 0.0),
        ("TAM_100 bias (%)", 124.1), ("stopped by", "time budget")]  # the bias's fraction shown in %
    assert all(row["meaning"] for row in table.rows)
    text = "\n".join(table.lines())
    assert "gate (floor / seed)" in text and "0.2 / 0.8" in text and "gate_whole_view_score" not in text


def test_a_family_of_models_gets_a_column_each_with_gaps_where_a_figure_is_missing() -> None:
    summary = {"registered": [{"name": "x", "version": "1"}, {"name": "x-triplet", "version": "1"}],
               "validation": {"x": {"precision@10": 0.9, "sensitivity@10": 0.1},
                              "x-triplet": {"precision@10": 0.8, "unknown_key": 3}}}
    rows = validation_table(summary).rows
    assert [row["figure"] for row in rows] == ["precision@10", "S@10", "unknown_key"]
    assert [(row["x@1"], row["x-triplet@1"]) for row in rows] == [(0.9, 0.8), (0.1, None), (None, 3)]
    assert rows[2]["meaning"] == ""


@pytest.mark.parametrize(("key", "heading", "in_meaning"), [
    ("full_precision@10", "full-match precision@10", "the same label set"),
    ("partial_hit_rate@5", "partial-match hit@5", "at least one shared label"),
    ("hit_rate@1", "hit@1", "(same class)"),
    ("acquisition.validation_auroc_stats", "statistics: AUROC, statistics alone", "statistics alone"),
    ("something.else", "something.else", ""),
])
def test_figure_labels_for_patterns_and_nested_keys(key: str, heading: str, in_meaning: str) -> None:
    label, meaning = figure_label(key)
    assert label == heading and in_meaning in meaning


def test_a_trainer_prints_the_table_on_stderr_and_the_json_last_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    TrainingOutcome(registered=(), validation={}).emit()  # nothing registered: no table
    captured = capsys.readouterr()
    assert captured.err == "" and json.loads(captured.out) == {"registered": [], "validation": {}}

"""A finished BAC batch's typed results and the stored analyses behind its viewer (issue 15).

Hand-made rows of ``medlim bac quantify`` (:meth:`BacReadout.to_dict` plus the
command's ``ok``/``reused`` and the job's ``index``); totals computed by hand.
"""

from __future__ import annotations

import pytest

from medlim.core.familiarity import FamiliarityResult
from medlim.errors import ParameterError
from medlim.mammography.batch_results import batch_results, exam_rows, readout_from_row
from medlim.mammography.readout import BacReadout


def _readout(file: str, *, view: str | None, laterality: str | None, patient: str | None, date: str | None,
             tam_x: int, area: int, mm2: bool = True, tam_100: int | None = None) -> BacReadout:
    return BacReadout(
        file=file, pm=10.5, am=2 * tam_x, sim=300.0, tam_x=tam_x, tsim_x=150.0, x=100.0, threshold=0.5,
        intensity_rule=">", breast_area=area, breast_area_rule="mask", tam_x_per_breast_area=tam_x / area,
        am_mm2=0.01 * 2 * tam_x if mm2 else None, tam_x_mm2=0.01 * tam_x if mm2 else None,
        pixel_spacing_mm=(0.1, 0.1) if mm2 else None, spacing_source="PixelSpacing" if mm2 else None,
        tam_100=tam_x if tam_100 is None else tam_100, view=view, laterality=laterality, study_date=date,
        patient_key=patient, weights="scunet-bac v1", warnings=("a warning",),
        unlike_training=FamiliarityResult(score=1.25, threshold=3.0, flagged=False))


def _row(index: int, readout: BacReadout) -> dict:
    return {"ok": True, **readout.to_dict(), "reused": False, "index": index}


LCC = _readout("img-1.dcm", view="CC", laterality="L", patient="p1", date="2024-01-02", tam_x=40, area=1000)
LMLO = _readout("img-2.dcm", view="MLO", laterality="L", patient="p1", date="2024-01-02", tam_x=10, area=500,
                mm2=False, tam_100=20)
LOOSE = _readout("img-3.png", view=None, laterality=None, patient=None, date=None, tam_x=5, area=100)
RESULT = {"files": 4, "ok": 3, "failed": 1, "analysed": 3, "reused": 0, "rows": [
    _row(1, LCC), _row(2, LMLO), {"file": "img-4.dcm", "ok": False, "error": "CorruptFileError", "message": "bad",
                                  "index": 3}, _row(4, LOOSE)]}


def test_a_row_gives_back_its_readout() -> None:
    assert readout_from_row(_row(1, LCC)) == LCC
    with pytest.raises(ParameterError, match="holds no readouts"):
        readout_from_row(RESULT["rows"][2])
    with pytest.raises(ParameterError, match="lacks tam_x"):
        readout_from_row({key: value for key, value in _row(1, LCC).items() if key != "tam_x"})


def test_a_rows_region_filter_comes_back_and_flattens_to_three_columns() -> None:
    from dataclasses import replace

    from medlim.mammography.regions import FilterEffect
    from medlim.ui.mammography import flat_batch_row, readout_rows

    filtered = replace(LCC, region_filter=FilterEffect(floor=0.8, regions=7, dropped=2, dropped_px=150,
                                                       dropped_mm2=0.736))
    row = _row(1, filtered)
    assert row["region_filter"] == {"floor": 0.8, "regions": 7, "dropped": 2, "dropped_px": 150, "dropped_mm2": 0.736}
    assert readout_from_row(row) == filtered
    flat = flat_batch_row(row)
    assert "region_filter" not in flat
    assert (flat["region_filter_dropped"], flat["region_filter_dropped_px"], flat["region_filter_dropped_mm2"]) == (
        2, 150, 0.736)
    assert "region_filter_dropped" not in flat_batch_row(_row(2, LMLO))  # weights without a filter: no columns
    # the exam table: one cell per view and the sum (mm² only where every view has them: LMLO has none, so px)
    no_mm2 = replace(LMLO, region_filter=FilterEffect(floor=0.8, regions=3, dropped=1, dropped_px=40, dropped_mm2=None))
    rows = readout_rows([filtered, no_mm2], ["LCC", "LMLO"], ["2024-01-02", "2024-01-02"])
    assert [r["Dropped by region filter"] for r in rows] == ["2 regions, 0.74 mm²", "1 region, 40 px", "3 regions, 190 px"]
    assert "Dropped by region filter" not in readout_rows([LCC], ["LCC"], [None])[0]


def test_views_of_one_patient_and_date_make_an_exam_with_hand_computed_totals() -> None:
    results = batch_results(RESULT)
    assert (results.files, results.failed, results.reused) == (4, 1, 0)
    assert results.readouts == (LCC, LMLO, None, LOOSE)
    (exam,) = results.exams
    assert (exam.patient_key, exam.study_date, exam.views) == ("p1", "2024-01-02", ("LCC", "LMLO"))
    totals = exam.totals
    assert (totals.views, totals.pm, totals.am, totals.tam_x, totals.breast_area) == (2, 21.0, 100, 50, 1500)
    assert totals.am_mm2 is None and totals.tam_x_mm2 is None  # LMLO has no pixel spacing
    assert totals.tam_x_per_breast_area_sum == pytest.approx(40 / 1000 + 10 / 500)
    assert exam.tam_100_per_breast_area_sum == pytest.approx(40 / 1000 + 20 / 500)
    assert results.views_in_no_exam == 1
    assert exam_rows(RESULT["rows"]) == [exam.to_dict()]
    assert exam.to_dict() == {
        "patient_key": "p1", "study_date": "2024-01-02", "views": ["LCC", "LMLO"], "views_counted": 2, "pm": 21.0,
        "am": 100, "sim": 600.0, "tam_x": 50, "tsim_x": 300.0, "breast_area": 1500, "am_mm2": None, "tam_x_mm2": None,
        "tam_x_per_breast_area_sum": pytest.approx(0.06), "tam_100_per_breast_area_sum": pytest.approx(0.08),
        "region_filter_dropped": None, "region_filter_dropped_px": None, "region_filter_dropped_mm2": None}


def test_the_distribution_covers_the_analysed_views_that_have_the_readout() -> None:
    results = batch_results(RESULT)
    assert results.distribution("tam_x") == ([40.0, 10.0, 5.0], ["LCC", "LMLO", "?"])
    assert results.distribution("tam_x_mm2") == ([pytest.approx(0.4), pytest.approx(0.05)], ["LCC", "?"])
    with pytest.raises(ParameterError, match="`metric` must be one of"):
        results.distribution("file")


def test_a_result_without_rows_is_refused() -> None:
    with pytest.raises(ParameterError, match="no BAC rows"):
        batch_results({"output": []})


def test_the_stored_analysis_key_is_the_pages_and_an_absent_one_is_a_miss(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """The key is what the page used before issue 15's batch views (content, weights label, file and check
    digests, stated spacing), so results stored by either are found by both; the cut-off is not in it."""
    from types import SimpleNamespace

    from medlim.core.disk_cache import cache_key
    from medlim.mammography import stored_analysis

    monkeypatch.setenv("MEDLIM_HOME", str(tmp_path))
    model = SimpleNamespace(label="scunet-bac@1", entry=SimpleNamespace(sha256="ab" * 32, familiarity={"sha256": "cd"}))
    digest = "0f" * 32
    key = stored_analysis.analysis_key(digest, model, 0.1)  # type: ignore[arg-type]
    assert key == cache_key(digest, "scunet-bac@1", "ab" * 32, "cd", "0.1", stored_analysis.ANALYSIS_CACHE_VERSION)
    assert stored_analysis.analysis_key(digest, model, None) != key  # type: ignore[arg-type]
    assert stored_analysis.load_analysis(digest, model, 0.1) is None  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="64 lower-case hex"):
        stored_analysis.analysis_key("not a digest", model)  # type: ignore[arg-type]

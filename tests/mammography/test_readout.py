"""One view's readouts as they leave the program (medlim.mammography.readout), hand-computed.

The 2×3 image of ``conftest.py``: p = [[0.9, 0.7, 0.2], [0.95, 0.1, 0.6]],
I = [[150, 90, 200], [100, 255, 120]], breast = all 6 pixels, thesis rule I > X.
At t = 0.5 the mask holds p ∈ {0.9, 0.7, 0.95, 0.6} with I ∈ {150, 90, 100, 120}:
AM = 4, SIM = 460; X = 95 keeps I ∈ {150, 100, 120}: TAM_95 = 3, TSIM_95 = 370;
X = 100 keeps {150, 120}: TAM_100 = 2. PM = 3.45. A pixel is 0.1 × 0.2 = 0.02 mm².
"""

from __future__ import annotations

import json

import pytest

from medlim.errors import ParameterError
from medlim.mammography.analysis import requantify
from medlim.mammography.readout import AnalysedView, BacReadout, readout_of, total_readouts, with_view_labels


def test_readout_values_and_tam_100_beside_the_chosen_x(tiny_analysis) -> None:
    analysis, _record = tiny_analysis()
    readout = readout_of(analysis, requantify(analysis, threshold=0.5, x=95), file="a.dcm")
    assert (readout.am, readout.sim, readout.tam_x, readout.tsim_x) == (4, 460.0, 3, 370.0)
    assert readout.pm == pytest.approx(3.45) and readout.breast_area == 6
    assert readout.am_mm2 == pytest.approx(0.08) and readout.tam_x_mm2 == pytest.approx(0.06)
    assert readout.tam_x_per_breast_area == pytest.approx(0.5)
    assert readout.tam_100 == 2 and readout.tam_100_per_breast_area == pytest.approx(2 / 6)
    assert readout.view_name == "LCC"
    values = json.loads(readout.to_json())
    assert values["warnings"] == ["a warning"] and values["pixel_spacing_mm"] == [0.1, 0.2]
    assert values["tam_100"] == 2 and values["seconds"] == 1.235
    assert readout_of(analysis, requantify(analysis, threshold=0.5, x=95), with_tam_100=False).tam_100 is None


def test_tam_100_at_x_100_is_tam_x_itself(tiny_analysis) -> None:
    analysis, _record = tiny_analysis(x=100.0)
    readout = readout_of(analysis)
    assert readout.tam_x == readout.tam_100 == 2


def test_readout_from_the_store_matches_the_computed_one(tiny_analysis) -> None:
    from medlim.core.store import open_store
    from medlim.core.store.bac import get_bac_result
    from medlim.mammography.batch import save_analysis

    analysis, record = tiny_analysis(x=95.0)
    computed = readout_of(analysis, file="x")
    with open_store() as store:
        result_id = save_analysis(store, analysis, record=record, content_sha256="ab" * 32,
                                  bac_model=_model())  # fmt: skip
        stored = BacReadout.from_stored(get_bac_result(store, result_id), file="x", weights="scunet-bac v2")
    for key in ("pm", "am", "sim", "tam_x", "tsim_x", "x", "threshold", "breast_area", "tam_100", "am_mm2",
                "tam_x_mm2", "intensity_rule", "view", "laterality", "study_date", "patient_key"):  # fmt: skip
        assert getattr(stored, key) == getattr(computed, key), key
    assert stored.warnings == ("a warning",)  # what the analysis said comes back with the numbers


def test_a_stored_readout_keeps_the_check_the_filter_and_the_resampling(tiny_analysis) -> None:
    from dataclasses import replace

    from medlim.core.familiarity import FamiliarityResult
    from medlim.core.store import open_store
    from medlim.core.store.bac import get_bac_result
    from medlim.mammography.batch import save_analysis
    from medlim.mammography.regions import FilterEffect

    analysis, record = tiny_analysis(x=95.0)
    analysis = replace(analysis, warnings=("a warning", "another"),
                       unlike_training=FamiliarityResult(score=12.345, threshold=6.6, flagged=True, reason=None),
                       model_spacing_mm=(0.07, 0.07),
                       region_filter=FilterEffect(floor=0.8, regions=9, dropped=2, dropped_px=265, dropped_mm2=1.3))
    with open_store() as store:
        result_id = save_analysis(store, analysis, record=record, content_sha256="cd" * 32, bac_model=_model())
        row = get_bac_result(store, result_id)
        stored = BacReadout.from_stored(row, file="x", weights="scunet-bac v2")
    assert row.context == {"warnings": ["a warning", "another"], "model_spacing_mm": [0.07, 0.07],
                           "unlike_training": {"score": 12.35, "threshold": 6.6, "flagged": True, "reason": None},
                           "region_filter": {"floor": 0.8, "regions": 9, "dropped": 2, "dropped_px": 265,
                                             "dropped_mm2": 1.3}}  # fmt: skip
    assert stored.warnings == ("a warning", "another") and stored.model_spacing_mm == (0.07, 0.07)
    assert stored.unlike_training == FamiliarityResult(score=12.35, threshold=6.6, flagged=True)  # as the JSON rounds it
    assert stored.region_filter == FilterEffect(floor=0.8, regions=9, dropped=2, dropped_px=265, dropped_mm2=1.3)
    assert stored.to_dict()["region_filter"] == readout_of(analysis).to_dict()["region_filter"]


def _model():
    from types import SimpleNamespace

    entry = SimpleNamespace(name="scunet-bac", version="2", sha256="f" * 64, intended_use="research")
    return SimpleNamespace(entry=entry, preset="thesis", stride=448, merge="max", skip=True,
                           output_activation="sigmoid", label="scunet-bac v2")  # fmt: skip


def test_totals_sum_views_and_mm2_only_when_every_view_has_them(tiny_analysis) -> None:
    with_mm = readout_of(tiny_analysis()[0])
    without_mm = readout_of(tiny_analysis(spacing=None)[0])
    total = total_readouts([with_mm, with_mm])
    assert (total.views, total.am, total.tam_x, total.breast_area) == (2, 8, 4, 12)
    assert total.am_mm2 == pytest.approx(0.16) and total.tam_x_per_breast_area_sum == pytest.approx(4 / 6)
    assert total_readouts([with_mm, without_mm]).am_mm2 is None


def test_totals_sum_what_the_region_filter_dropped(tiny_analysis) -> None:
    from dataclasses import replace

    from medlim.mammography.regions import FilterEffect

    plain = readout_of(tiny_analysis()[0])
    one = replace(plain, region_filter=FilterEffect(floor=0.8, regions=9, dropped=2, dropped_px=265, dropped_mm2=1.3))
    two = replace(plain, region_filter=FilterEffect(floor=0.8, regions=3, dropped=1, dropped_px=40, dropped_mm2=0.45))
    pixels_only = replace(two, region_filter=replace(two.region_filter, dropped_mm2=None))
    total = total_readouts([one, two, plain])  # a view without the filter's account adds nothing
    assert (total.region_filter_dropped, total.region_filter_dropped_px) == (3, 305)
    assert total.region_filter_dropped_mm2 == pytest.approx(1.75) and total.region_filter_text == "3 regions, 1.75 mm²"
    mixed = total_readouts([one, pixels_only])  # mm² only when every filtered view has them
    assert mixed.region_filter_dropped_mm2 is None and mixed.region_filter_text == "3 regions, 305 px"
    none = total_readouts([plain, plain])
    assert none.region_filter_dropped is None and none.region_filter_text is None


def test_unlabelled_view_is_named_by_its_pseudonymous_label(tiny_analysis) -> None:
    from medlim.core.io.pseudonym import file_label

    analysis, record = tiny_analysis(view=None, laterality=None)
    view = AnalysedView(analysis, analysis.metrics, record, "ab" * 32)
    assert view.label == "DOE_JANE_LCC.dcm"  # on screen, in the user's own session
    assert view.download_label == file_label("DOE_JANE_LCC.dcm", content_sha256="ab" * 32)
    assert view.readout().file == view.download_label and "DOE" not in view.readout().to_json()


def test_view_labels_set_by_a_person_fill_only_what_is_missing(tiny_analysis) -> None:
    analysis, record = tiny_analysis(view=None, laterality=None)
    analysis = analysis.__class__(**{**analysis.__dict__, "warnings": ("View or laterality is not recorded x",)})
    labelled, relabelled = with_view_labels(analysis, record, laterality="R", view="MLO")
    assert (labelled.laterality, labelled.view, labelled.warnings) == ("R", "MLO", ())
    assert (relabelled.metadata.laterality, relabelled.metadata.view) == ("R", "MLO")
    kept, _ = with_view_labels(tiny_analysis()[0], record, laterality="R", view="MLO")
    assert (kept.laterality, kept.view) == ("L", "CC")  # what the file records wins
    with pytest.raises(ParameterError, match="laterality"):
        with_view_labels(analysis, record, laterality="left", view=None)

"""The liver steatosis page (``pages/steatosis.py``) and its helpers (``medlim.ui.steatosis``).

AppTest runs the page on a bundled H&E sample with a randomly initialised
Mask R-CNN (seed 0) saved into a temporary registry, so no trained weights
are needed: its detections are arbitrary but real objects, which is enough to
check the plumbing — detections run once, sliders only re-apply cutoffs, the
numbers are the room's report (what ``medlim steatosis segment`` prints for the
same file), presets save and load and the report names one only while its
values are in use.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "steatosis.py")
TIMEOUT = 180


def register_test_model(directory: Path, *, spacing_um: float | None = None) -> None:
    """An untrained steatosis Mask R-CNN (seed 0) as ``maskrcnn-steatosis:0-test`` (trained at ``spacing_um``)."""
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.microscopy.steatosis.network import build_steatosis_maskrcnn

    torch.manual_seed(0)
    fields = {
        "name": "maskrcnn-steatosis", "version": "0-test", "task": "steatosis-instance-segmentation",
        "architecture": "maskrcnn-steatosis", "architecture_kwargs": {"backbone": "resnet10", "detections_per_image": 40},
        "preset": "rgb-unit",
        "input_contract": {"channels": 3, "size": None, "dtype": "float32", "range": [0.0, 1.0],
                           **({} if spacing_um is None else {"pixel_spacing_mm": [spacing_um / 1000] * 2})},
        "output_type": "probability", "thresholds": {"mask": 0.5, "score": 0.5},
        "params": {"tile": 1024, "overlap": 128},
    }
    save_weights(Registry.load(directory), fields, build_steatosis_maskrcnn().eval().state_dict())


@pytest.fixture
def page_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    weights = tmp_path / "weights"
    register_test_model(weights)
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(ROOT / "data_samples"))
    monkeypatch.setenv("MEDLIM_DEVICE", "cpu")
    return weights


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_page_without_weights_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("medlim train steatosis" in w.body for w in at.warning)


def _model(weights: Path):
    from medlim.core.weights import Registry
    from medlim.microscopy.steatosis.analysis import load_steatosis_model

    return load_steatosis_model("maskrcnn-steatosis:0-test", registry=Registry.load(weights), device="cpu")


def _open_sample(at: AppTest, name: str = "he_00001_image.png") -> None:
    sample = at.selectbox(key="steatosis_sample")
    assert sample.options == ["he_00000_image.png", "he_00001_image.png"]
    sample.set_value(name).run()
    assert not at.exception and not at.error


def test_sample_sliders_presets_and_downloads(page_env: Path, monkeypatch: pytest.MonkeyPatch,
                                             recorded_downloads: list[dict]) -> None:
    from medlim.microscopy.steatosis import analysis as steatosis_analysis

    calls: list[int] = []
    original = steatosis_analysis.analyse_image
    monkeypatch.setattr(steatosis_analysis, "analyse_image", lambda *a, **k: calls.append(1) or original(*a, **k))

    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.selectbox(key="steatosis_preset").options[:2] == ["default", "thesis"]
    _open_sample(at)
    assert len(calls) == 1
    kept, detected = (int(v) for v in _metric(at, "Droplets kept").split(" / "))
    assert detected > 0 and 0 <= kept <= detected
    assert _metric(at, "NASH-CRN grade").startswith("S")
    assert any("preset **default**" in m.value for m in at.markdown)
    # issue 14: downloads carry the image's pseudonymous label, never its file name
    import json

    from medlim.core.io.pseudonym import file_label

    label = file_label("he_00001_image.png",
                       data=(ROOT / "data_samples" / "steatosis" / "he_00001_image.png").read_bytes())
    offered = {offer["file_name"]: offer["data"] for offer in recorded_downloads}
    stem = Path(label).stem
    # issue 16: the per-droplet CSV and QuPath GeoJSON under the names `medlim steatosis segment --csv --geojson` writes
    assert set(offered) == {f"{stem}_objects.csv", f"{stem}.geojson", f"{stem}_steatosis.json"}
    assert len(json.loads(offered[f"{stem}.geojson"])["features"]) == detected
    assert json.loads(offered[f"{stem}_steatosis.json"])["file"] == label
    assert not any("he_00001" in str(data) for data in offered.values())

    # Moving both score sliders to 1 discards everything without re-detection; the report is no longer "default".
    assert at.slider(key="steatosis_crowded_min_score").value == 0.02
    at.slider(key="steatosis_crowded_min_score").set_value(1.0).run()
    assert any("preset **custom**" in m.value for m in at.markdown)  # 1 ≥ the minimum score: no crowded floor
    at.slider(key="steatosis_min_score").set_value(1.0).run()
    assert not at.exception
    assert _metric(at, "Droplets kept") == f"0 / {detected}"
    assert _metric(at, "Steatosis (% of tissue)") == "0.0 %"
    assert _metric(at, "NASH-CRN grade").startswith("S0")
    assert any("preset **custom**" in m.value for m in at.markdown)
    assert len(calls) == 1

    # Save the cutoffs as a preset, go to the thesis preset, then load the saved one.
    at.text_input(key="steatosis_preset_name").input("strict").run()
    at.button(key="steatosis_preset_save").click().run()
    assert not at.exception
    assert "strict" in at.selectbox(key="steatosis_preset").options
    assert at.selectbox(key="steatosis_preset").value == "strict"
    assert at.slider(key="steatosis_min_score").value == 1.0
    assert any("Saved preset" in s.body for s in at.success)
    assert any("preset **strict**" in m.value for m in at.markdown)
    at.selectbox(key="steatosis_preset").set_value("thesis").run()
    assert at.slider(key="steatosis_min_score").value == 0.5
    assert at.slider(key="steatosis_crowded_min_score").value == 0.5  # no crowded-fat floor in the thesis
    assert at.slider(key="steatosis_area").value == (0.001, 6.0)
    assert at.radio(key="steatosis_reference").value == "all-detections"
    assert any("preset **thesis**" in m.value for m in at.markdown)
    at.selectbox(key="steatosis_preset").set_value("strict").run()
    assert at.slider(key="steatosis_min_score").value == 1.0
    assert at.radio(key="steatosis_reference").value == "scored"
    assert any("preset **strict**" in m.value for m in at.markdown)
    # Changing one cutoff of a named preset makes the report "custom" (issue 17).
    at.slider(key="steatosis_min_score").set_value(0.9).run()
    assert any("preset **custom**" in m.value for m in at.markdown)
    assert len(calls) == 1


def test_every_cutoff_at_its_widest_discards_nothing(page_env: Path) -> None:
    """Issue 17: at their widest positions the sliders set no limit, so no droplet is discarded — also under the
    thesis's reference (the mean of all detections), which would otherwise cap the area at 10 × that mean."""
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    _open_sample(at)
    detected = int(_metric(at, "Droplets kept").split(" / ")[1])
    at.selectbox(key="steatosis_preset").set_value("thesis").run()
    for name, (low, high, _step) in ui_ranges().items():
        at.slider(key=f"steatosis_{name}").set_value((low, high)).run()
    at.slider(key="steatosis_min_score").set_value(0.0).run()
    assert not at.exception
    assert _metric(at, "Droplets kept") == f"{detected} / {detected}"
    assert any("no upper limit" in m.value and "preset **custom**" in m.value for m in at.markdown)


def ui_ranges() -> dict[str, tuple[float, float, float]]:
    from medlim.ui.steatosis import SLIDER_RANGES

    return SLIDER_RANGES


def _cli_row(weights: Path, path: Path, out: Path, preset: str, capsys: pytest.CaptureFixture[str]) -> dict:
    """What ``medlim steatosis segment FILE --preset PRESET --jsonl`` prints for the file (one JSON line)."""
    import json

    from medlim.cli import main

    capsys.readouterr()
    assert main(["steatosis", "segment", str(path), "--out", str(out), "--preset", preset, "--jsonl",
                 "--weights", "maskrcnn-steatosis:0-test", "--weights-dir", str(weights), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_page_numbers_equal_the_command_line_row(page_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 recorded_downloads: list[dict]) -> None:
    """Issue 17: the page's numbers for a file are those ``medlim steatosis segment`` prints for it (the CLI run
    through its entry point on the same file), at the default cutoffs and at the thesis preset."""
    import json

    path = ROOT / "data_samples" / "steatosis" / "he_00001_image.png"
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    _open_sample(at)
    for preset in ("default", "thesis"):
        if preset != "default":
            at.selectbox(key="steatosis_preset").set_value(preset).run()
        row = _cli_row(page_env, path, tmp_path / preset, preset, capsys)
        assert row["file"] == str(path) and "error" not in row
        assert _metric(at, "Droplets kept") == f"{row['kept']} / {row['detected']}"
        assert _metric(at, "Steatosis (% of tissue)") == f"{100 * row['steatosis_fraction']:.1f} %"
        assert _metric(at, "NASH-CRN grade") == row["nash_crn_band"]
        assert _metric(at, "Donor assessment") == row["donor_band"]
        assert row["preset"] == preset and any(f"preset **{preset}**" in m.value for m in at.markdown)
        report = json.loads(next(o["data"] for o in reversed(recorded_downloads)
                                 if o["file_name"].endswith("_steatosis.json")))
        keys = ("detected", "kept", "steatosis_fraction", "nash_crn_band", "donor_band", "preset", "unlike_training")
        assert {k: report[k] for k in keys} == {k: row[k] for k in keys}
        assert row["unlike_training"] is None  # the test weights carry no training-data check


def test_weights_that_know_their_pixel_size_resize_an_image_of_another(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13: weights trained at 0.5 µm say that a sample without a stated size was taken to be at 0.5 µm; given
    0.25 µm in the page's field, the image is resized to their scale first, and the page says so."""
    weights = tmp_path / "weights"
    register_test_model(weights, spacing_um=0.5)
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(ROOT / "data_samples"))
    monkeypatch.setenv("MEDLIM_DEVICE", "cpu")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    _open_sample(at)
    assert any("trained at 0.5 µm per pixel and took this image to be at that size" in w.body for w in at.warning)
    assert not any("resized to the weights'" in c.value for c in at.caption)
    at.number_input(key="steatosis_pixel_size").set_value(0.25).run()
    assert not at.exception and not at.error
    assert not any("took this image to be at that size" in w.body for w in at.warning)
    assert any("resized to the weights' 0.5 µm per pixel" in c.value for c in at.caption)


def test_an_image_unlike_the_training_images_is_flagged_beside_its_numbers(page_env: Path,
                                                                          recorded_downloads: list[dict]) -> None:
    """Issue 13: with weights whose training-data check was fitted on grey pictures, the H&E sample is flagged: the
    page still shows its numbers, with the warning and the check's figures, and the report download carries them."""
    import json

    from medlim.core.familiarity import attach_familiarity, fit_familiarity
    from medlim.core.weights import Registry
    from medlim.microscopy.steatosis.familiarity import he_features

    rng = np.random.default_rng(0)
    greys = [np.clip(rng.normal(120 + 5 * k, 10, (96, 96)), 0, 255).astype(np.uint8) for k in range(10)]
    check = fit_familiarity(np.stack([he_features(np.repeat(g[..., None], 3, axis=2)) for g in greys]),
                            source="grey test pictures")
    attach_familiarity(Registry.load(page_env).get("maskrcnn-steatosis", "0-test"), check)
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    _open_sample(at)
    assert any("unlike the images the model was trained on" in w.body for w in at.warning)
    assert any("unlike the training images" in c.value for c in at.caption)
    assert int(_metric(at, "Droplets kept").split(" / ")[1]) >= 0
    report = json.loads(next(o["data"] for o in reversed(recorded_downloads)
                             if o["file_name"].endswith("_steatosis.json")))
    assert report["unlike_training"]["flagged"] is True and report["unlike_training"]["threshold"] == round(
        check.threshold, 2)
    assert report["warnings"] and "H&E image of liver tissue" in report["warnings"][0]


def test_overlay_marks_kept_blue_and_discarded_vermillion() -> None:
    from medlim.ui.steatosis import DISCARDED_RGB, KEPT_RGB, overlay_image

    assert (KEPT_RGB, DISCARDED_RGB) == ((0, 114, 178), (213, 94, 0))  # Okabe–Ito: no red/green pair
    image = np.full((40, 40, 3), 200, np.uint8)
    labels = np.zeros((40, 40), np.int32)
    labels[5:15, 5:15] = 1
    labels[25:35, 25:35] = 2
    out = overlay_image(image, labels, np.array([True, False]), alpha=0.5)
    assert out.shape == (40, 40, 3) and out.dtype == np.uint8
    assert tuple(out[10, 10]) == (100, 157, 189)  # kept: 0.5 × 200 + 0.5 × (0, 114, 178)
    assert tuple(out[5, 10]) == KEPT_RGB  # … outlined
    assert np.array_equal(out[30, 30], image[30, 30])  # discarded: inside untouched
    assert tuple(out[25, 30]) == DISCARDED_RGB  # … but outlined
    assert tuple(out[23, 30]) == DISCARDED_RGB  # … and boxed


def test_sliders_at_their_widest_set_no_limit() -> None:
    import math

    from medlim.microscopy.steatosis.droplets import DEFAULT_CUTOFFS, THESIS_CUTOFFS
    from medlim.ui.steatosis import SLIDER_RANGES, crowded_slider_value, cutoffs_from_sliders, slider_values

    widest = {name: (low, high) for name, (low, high, _) in SLIDER_RANGES.items()}
    cutoffs = cutoffs_from_sliders(widest, min_score=0.0, reference="all-detections")
    assert cutoffs.area == cutoffs.perimeter == cutoffs.eccentricity == (0.0, math.inf)
    assert cutoffs_from_sliders(slider_values(DEFAULT_CUTOFFS), min_score=DEFAULT_CUTOFFS.min_score,
                                crowded_min_score=crowded_slider_value(DEFAULT_CUTOFFS),
                                reference="scored") == DEFAULT_CUTOFFS
    # The thesis has no crowded-fat floor: its slider shows the minimum score, which reads back as none.
    assert crowded_slider_value(THESIS_CUTOFFS) == 0.5
    assert cutoffs_from_sliders(slider_values(THESIS_CUTOFFS), min_score=0.5, crowded_min_score=0.5,
                                reference="all-detections") == THESIS_CUTOFFS
    assert slider_values(DEFAULT_CUTOFFS)["area"] == (0.0, 10.0)


def test_histograms_have_axis_titles_and_colour_blind_safe_colours() -> None:
    from medlim.microscopy.steatosis.analysis import SteatosisAnalysis
    from medlim.microscopy.steatosis.droplets import THESIS_CUTOFFS, DropletTable
    from medlim.microscopy.steatosis.report import steatosis_report
    from medlim.ui.steatosis import histogram_figure

    table = DropletTable(area=np.array([10.0, 50.0, 140.0, 200.0]), perimeter=np.array([10.0, 30.0, 50.0, 70.0]),
                         eccentricity=np.array([0.05, 0.5, 0.6, 0.85]), score=np.array([0.9, 0.9, 0.4, 0.9]),
                         centroid=np.zeros((4, 2)), tissue_area=1000.0)
    analysis = SteatosisAnalysis(labels=np.zeros((2, 2), np.int32), table=table, tissue=np.ones((2, 2), bool),
                                 seconds=0.0, model="m")
    figure = histogram_figure(analysis, steatosis_report(table, THESIS_CUTOFFS, model="m"))
    layout = figure.layout
    assert [layout[f"xaxis{i}"].title.text for i in ("", "2", "3")] == [
        "Area (px²)", "Perimeter (px)", "Eccentricity"]
    assert all(layout[f"yaxis{i}"].title.text == "Droplets" for i in ("", "2", "3"))
    assert {trace.marker.color for trace in figure.data} == {"rgb(0, 114, 178)", "rgb(213, 94, 0)"}
    # Bounds at low/high × the mean of all (area 100, perimeter 40, eccentricity 0.5): six dashed black lines.
    lines = [shape for shape in layout.shapes if shape.line.dash == "dash"]
    assert sorted(round(shape.x0, 6) for shape in lines) == [0.1, 0.1, 0.75, 20.0, 160.0, 600.0]
    assert {shape.line.color for shape in lines} == {"black"}


def test_preset_name_is_validated_before_it_is_stored(page_env: Path) -> None:
    from medlim.core.store import open_store
    from medlim.core.store.presets import list_presets

    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    at.text_input(key="steatosis_preset_name").input("../../etc/evil").run()
    at.button(key="steatosis_preset_save").click().run()
    assert not at.exception
    assert "preset name" in at.error[0].body
    with open_store(f"sqlite:///{Path(os.environ['MEDLIM_HOME']) / 'medlim.sqlite'}") as store:
        assert [p.name for p in list_presets(store, "steatosis")] == []


def test_histograms_in_microns_with_absolute_bounds() -> None:
    """Issue 16: with a pixel size the axes are µm² and µm, relative bounds scale with them, absolute ones show."""
    import math

    from medlim.microscopy.objects import MicronSpacing
    from medlim.microscopy.steatosis.analysis import SteatosisAnalysis
    from medlim.microscopy.steatosis.droplets import Cutoffs, DropletTable
    from medlim.microscopy.steatosis.report import steatosis_report
    from medlim.ui.steatosis import histogram_figure

    table = DropletTable(area=np.array([10.0, 50.0, 140.0, 200.0]), perimeter=np.array([10.0, 30.0, 50.0, 70.0]),
                         eccentricity=np.array([0.05, 0.5, 0.6, 0.85]), score=np.array([0.9, 0.9, 0.4, 0.9]),
                         centroid=np.zeros((4, 2)), tissue_area=1000.0, spacing=MicronSpacing(0.5, "user"))
    analysis = SteatosisAnalysis(labels=np.zeros((2, 2), np.int32), table=table, tissue=np.ones((2, 2), bool),
                                 seconds=0.0, model="m")
    cutoffs = Cutoffs(area=(0.0, 1.5), min_score=0.0, reference="all-detections", area_um2=(5.0, math.inf))
    report = steatosis_report(table, cutoffs, model="m")
    assert report.kept_flags.tolist() == [False, True, True, False]  # 2.5 µm² < 5; 200 px² > 1.5 × 100 px²
    figure = histogram_figure(analysis, report)
    assert [figure.layout[f"xaxis{i}"].title.text for i in ("", "2", "3")] == [
        "Area (µm²)", "Perimeter (µm)", "Eccentricity"]
    lines = sorted(round(shape.x0, 6) for shape in figure.layout.shapes if shape.line.dash == "dash")
    assert lines == [5.0, 37.5]  # the absolute 5 µm², and 1.5 × 100 px² × 0.25 µm²/px²


def test_page_pixel_size_absolute_area_and_old_presets(page_env: Path) -> None:
    """Issue 16: the pixel-size field enables absolute µm² cutoffs; presets saved before them still load."""
    from medlim.core.store import open_store
    from medlim.core.store.presets import save_preset

    with open_store(f"sqlite:///{Path(os.environ['MEDLIM_HOME']) / 'medlim.sqlite'}") as store:
        save_preset(store, kind="steatosis", name="old", params={
            "area": [0.0, None], "perimeter": [0.0, None], "eccentricity": [0.0, None], "min_score": 0.0})
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    _open_sample(at)
    assert at.number_input(key="steatosis_area_um2_high").disabled
    at.selectbox(key="steatosis_preset").set_value("old").run()
    assert not at.exception and at.radio(key="steatosis_reference").value == "all-detections"
    detected = int(_metric(at, "Droplets kept").split(" / ")[1])
    assert _metric(at, "Droplets kept") == f"{detected} / {detected}"
    at.number_input(key="steatosis_pixel_size").set_value(0.5).run()
    assert not at.number_input(key="steatosis_area_um2_high").disabled
    assert "area_um2" in at.dataframe[0].value.columns
    at.number_input(key="steatosis_area_um2_low").set_value(1e6).run()  # larger than the whole field
    assert not at.exception and _metric(at, "Droplets kept") == f"0 / {detected}"
    assert any("area ≥ 1e+06 µm²" in m.value for m in at.markdown)

"""The clumped-nuclei page (``pages/nuclei.py``) and its helpers (``medlim.ui.nuclei``).

Helpers are checked on hand-made label images with hand-computed answers. The
page runs in AppTest on a small generated fluorescence phantom (256×344,
nuclei of radius 10–15 px) placed in a temporary samples folder: its numbers
must equal the room's (:mod:`medlim.microscopy.nuclei.measure`, what ``medlim
nuclei segment`` prints), display sliders must not re-run the method, and a
changed method parameter must.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from medlim.errors import ImageTooLargeError, ParameterError
from medlim.microscopy.nuclei.measure import nuclei_readout, nucleus_table, split_clump_count
from medlim.microscopy.nuclei.pipeline import Cut, NucleiParams
from medlim.ui import nuclei as ui

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "nuclei.py")
TIMEOUT = 120  # the first run imports scikit-image, plotly and pandas on a busy CPU
SAMPLE = "microscopy/nuclei/small_image.png"
BROKEN = "microscopy/nuclei/broken_image.png"
GREY_TIFF = "microscopy/nuclei/grey_dapi.tif"


# ----------------------------------------------------------------------------- helpers: parameters


def test_every_method_parameter_is_offered_once() -> None:
    offered = [spec.name for spec in ui.PARAM_SPECS] + ["threshold", "scale", "mean_area"]
    assert sorted(offered) == sorted(f.name for f in fields(NucleiParams))


def test_parameter_specs_hold_the_thesis_defaults_in_range_with_help() -> None:
    defaults = NucleiParams()
    for spec in ui.PARAM_SPECS:
        value = getattr(defaults, spec.name)
        assert spec.label and any(word in spec.help for word in ("thesis", "project", "eq. 3.")), spec.name
        if not isinstance(value, bool):
            assert spec.minimum <= value <= spec.maximum, spec.name
    helps = {spec.name: spec.help for spec in ui.PARAM_SPECS}
    assert "eq. 3.2" in helps["v_threshold"] and "200" in helps["v_threshold"]
    assert "0.7" in helps["q_threshold"] and "eq. 3.3" in {s.name: s.group for s in ui.PARAM_SPECS}["q_threshold"]
    assert "45" in helps["r1"] and "70" in helps["r2"]


def test_params_from_values() -> None:
    assert ui.params_from_values({}) == NucleiParams()
    params = ui.params_from_values({"q_threshold": 0.5, "use_curves": False, "not_a_field": 3},
                                   threshold_fraction=0.25, scale=1.0, mean_area=900.0)
    assert params.q_threshold == 0.5 and params.use_curves is False
    assert params.threshold == 0.25 and params.scale == 1.0 and params.mean_area == 900.0
    assert ui.params_digest(params) != ui.params_digest(NucleiParams())
    with pytest.raises(ParameterError, match="r2"):
        ui.params_from_values({"r1": 45.0, "r2": 20.0})


# ----------------------------------------------------------------------------- helpers: labels and table


def test_touching_nuclei_get_different_colours_isolated_ones_cycle() -> None:
    # Labels 1 and 8 both start at palette index 1 (k mod 7); touching, 8 moves on to 2.
    touching = np.array([[1, 8]])
    assert ui.instance_colours(touching)[[1, 8]].tolist() == [1, 2]
    apart = np.array([[1, 0, 8]])
    assert ui.instance_colours(apart)[[1, 8]].tolist() == [1, 1]
    # Diagonal contact counts as touching.
    diagonal = np.array([[1, 0], [0, 8]])
    assert ui.instance_colours(diagonal)[[1, 8]].tolist() == [1, 2]


def test_nuclei_csv_is_the_room_table_as_bytes() -> None:
    # Per-nucleus measurement lives in the room (medlim.microscopy.nuclei.measure, tested there); the page only
    # encodes its CSV for the download.
    labels = np.zeros((8, 8), np.int32)
    labels[2:5, 3:7] = 3
    table = nucleus_table(labels)
    assert ui.nuclei_csv(table).decode("utf-8") == table.to_csv()
    assert not hasattr(ui, "nucleus_rows") and not hasattr(ui, "split_clump_labels")


def test_labels_png_is_uint16_at_input_size() -> None:
    labels = np.zeros((5, 7), np.int32)
    labels[1:3, 1:3] = 300  # above 255: needs 16 bits
    labels[4, 6] = 2
    decoded = cv2.imdecode(np.frombuffer(ui.labels_png(labels), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint16 and decoded.shape == (5, 7)
    np.testing.assert_array_equal(decoded, labels)
    with pytest.raises(ImageTooLargeError, match="70000"):
        ui.labels_png(np.full((2, 2), 70000, np.int32))


# ----------------------------------------------------------------------------- helpers: overlay and input


def test_overlay_blends_fill_and_draws_opaque_outlines() -> None:
    background = np.full((7, 7), 0.5, np.float32)
    labels = np.zeros((7, 7), np.int32)
    labels[1:6, 1:6] = 1
    colour = ui.OKABE_ITO[1]
    out = ui.overlay_rgb(background, labels, opacity=0.5)
    np.testing.assert_allclose(out[3, 3], 0.5 * 0.5 + 0.5 * colour, atol=1e-6)  # interior
    np.testing.assert_allclose(out[1, 3], colour, atol=1e-6)  # inner boundary
    np.testing.assert_allclose(out[0, 0], [0.5, 0.5, 0.5])  # background untouched
    plain = ui.overlay_rgb(background, labels, opacity=0.0, outlines=False)
    np.testing.assert_allclose(plain, 0.5)
    with pytest.raises(Exception, match="opacity"):
        ui.overlay_rgb(background, labels, opacity=1.5)


def test_overlay_figure_draws_both_kinds_of_cut_at_display_scale() -> None:
    path = np.array([[10.0, 20.0], [12.0, 22.0]])
    cuts = [
        Cut(p=(10, 20), q=(12, 22), kind="ellipse", quality=0.9, path=path, followed_valley=True),
        Cut(p=(10, 20), q=(12, 22), kind="non_adjacent", quality=float("nan"), path=path, followed_valley=False),
    ]
    rows = [ui.NucleusRow(4, 12, 9.0, 19.0, 10.0, 0.5, 1.0, True)]
    figure = ui.overlay_figure(np.zeros((20, 20, 3), np.float32), cuts=cuts, rows=rows, numbers=True, factor=2)
    lines = [trace for trace in figure.data if trace.type == "scatter" and trace.name != "nuclei"]
    assert len(lines) == 4  # casing + line for each kind
    assert [t.line.dash for t in lines if t.line.color == "white"] == ["solid", "dash"]
    # Full-resolution column 20 at 1/2: (20 + 0.5) / 2 − 0.5 = 9.75.
    assert lines[0].x[:2] == (9.75, 10.75) and lines[0].y[:2] == (4.75, 5.75)
    (points,) = [trace for trace in figure.data if trace.name == "nuclei"]
    assert points.x == (9.25,) and points.y == (4.25,) and points.text == ("4",)
    assert list(points.customdata[0]) == [4, 12, "yes"]


def test_dapi_warning() -> None:
    rng = np.random.default_rng(0)
    assert ui.dapi_warning(rng.uniform(0, 0.9, (32, 32)).astype(np.float32)) is None  # grey: DAPI as it is
    assert ui.dapi_warning(np.zeros((8, 8), np.float32)).startswith("The image holds one value everywhere")
    red_only = np.zeros((32, 32, 3), np.float32)
    red_only[..., 0] = rng.uniform(0, 1, (32, 32))
    assert "red" in ui.dapi_warning(red_only)
    blue = np.zeros((32, 32, 3), np.float32)
    blue[..., 2] = rng.uniform(0, 1, (32, 32))
    assert ui.dapi_warning(blue) is None


def test_bundled_samples_are_found_without_ground_truth(tmp_path: Path) -> None:
    folder = tmp_path / "microscopy" / "nuclei"
    folder.mkdir(parents=True)
    truth = np.zeros((4, 4), np.uint16)
    truth[0, 0], truth[2, 2], truth[3, 3] = 1, 2, 300
    cv2.imwrite(str(folder / "a_image.png"), np.zeros((4, 4, 3), np.uint8))
    cv2.imwrite(str(folder / "a_labels.png"), truth)
    (tmp_path / "mammograms").mkdir()
    cv2.imwrite(str(tmp_path / "mammograms" / "x.png"), np.zeros((4, 4), np.uint8))
    assert ui.nuclei_samples(tmp_path) == [folder / "a_image.png"]
    assert ui.truth_count(folder / "a_image.png") == 3
    assert ui.truth_count(folder / "a_labels.png") is None  # no a_labels_labels.png
    assert ui.nuclei_samples(tmp_path / "absent") == []


def test_repository_samples_are_listed_with_their_truth() -> None:
    samples = ui.nuclei_samples(ROOT / "data_samples")
    assert [p.name for p in samples] == ["fluorescence_00000_image.png", "fluorescence_00001_image.png"]
    assert [ui.truth_count(p) for p in samples] == [10, 12]  # seed 20261142, see data_samples/README.md


# ----------------------------------------------------------------------------- the page in AppTest


@pytest.fixture(scope="module")
def samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A samples folder with one small phantom (and its truth) and one damaged PNG."""
    from medlim.phantoms.base import save_png
    from medlim.phantoms.fluorescence import generate_fluorescence

    root = tmp_path_factory.mktemp("nuclei_samples")
    phantom = generate_fluorescence(20261201, size=(256, 344), radius_range=(10.0, 15.0))
    save_png(root / SAMPLE, phantom.image)
    save_png(root / "microscopy/nuclei/small_labels.png", phantom.labels)
    (root / BROKEN).write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    tifffile.imwrite(root / GREY_TIFF, phantom.image[..., 2].astype(np.uint16) * 257)  # 16-bit grey DAPI
    return root


@pytest.fixture
def page(samples_dir: Path, monkeypatch: pytest.MonkeyPatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(samples_dir))
    return AppTest.from_file(PAGE, default_timeout=TIMEOUT)


@pytest.fixture
def count_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every run of the thesis method and the watershed (the page runs in this process)."""
    from medlim.microscopy.nuclei import pipeline, watershed

    calls: list[str] = []
    thesis, baseline = pipeline.segment_nuclei, watershed.watershed_nuclei

    def counting_thesis(*args, **kwargs):
        calls.append("thesis")
        return thesis(*args, **kwargs)

    def counting_watershed(*args, **kwargs):
        calls.append("watershed")
        return baseline(*args, **kwargs)

    monkeypatch.setattr(pipeline, "segment_nuclei", counting_thesis)
    monkeypatch.setattr(watershed, "watershed_nuclei", counting_watershed)
    return calls


def _metrics(at) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def test_page_sample_counts_sliders_parameters_downloads(page, samples_dir: Path, count_runs: list[str],
                                                         recorded_downloads: list[dict]) -> None:
    from medlim.core.io import read_image
    from medlim.microscopy.nuclei.pipeline import segment_nuclei
    from medlim.microscopy.nuclei.watershed import watershed_nuclei

    pixels = read_image(samples_dir / SAMPLE).pixels
    thesis, baseline = segment_nuclei(pixels), watershed_nuclei(pixels)
    count_runs.clear()

    at = page.run()
    assert not at.exception
    assert "Upload a fluorescence image or choose a bundled sample" in at.info[0].value
    assert at.selectbox(key="nuclei_sample").options == [BROKEN, GREY_TIFF, SAMPLE]  # sorted

    at.selectbox(key="nuclei_sample").set_value(SAMPLE).run()
    assert not at.exception and not at.error
    metrics = _metrics(at)
    assert metrics["Nuclei (thesis method)"] == str(thesis.count)
    assert metrics["Nuclei (watershed baseline)"] == str(baseline.count)
    assert metrics["Mean nucleus area (px²)"] == f"{thesis.mean_area:,.0f}"
    assert metrics["Clumps split"] == str(split_clump_count(thesis.labels))
    assert any("Phantom ground truth: **17** nuclei" in c.value for c in at.caption)
    assert sorted(count_runs) == ["thesis", "watershed"]

    # The overlay shows the image and the dividing curves; downloads are offered.
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["type"] for t in figure["data"]][0] == "image"
    curves = [t for t in figure["data"] if t["type"] == "scatter" and t.get("name") != "nuclei"]
    assert len(curves) >= 2 * (len(thesis.cuts) > 0)
    (points,) = [t for t in figure["data"] if t.get("name") == "nuclei"]
    assert len(points["x"]) == thesis.count  # one hover point per nucleus
    downloads = at.get("download_button")
    assert [d.proto.label for d in downloads] == [
        "Download label image (16-bit PNG)",
        "Nuclei (CSV)",
        "Outlines (GeoJSON, QuPath)",
    ]
    table = at.get("arrow_data_frame")[0] if at.get("arrow_data_frame") else at.dataframe[0]
    assert len(table.value) == thesis.count
    # issue 14: downloaded files are named by the image's pseudonymous label, not its file name
    from medlim.core.io.pseudonym import file_label

    stem = Path(file_label(SAMPLE, data=(samples_dir / SAMPLE).read_bytes())).stem
    names = {offer["file_name"] for offer in recorded_downloads}
    assert names == {f"{stem}_labels.png", f"{stem}_objects.csv", f"{stem}.geojson"} and stem.startswith("img-")

    # Display controls redraw without re-running either method.
    before = at.get("plotly_chart")[0].proto.spec
    at.slider(key="nuclei_opacity").set_value(1.0).run()
    at.checkbox(key="nuclei_curves").uncheck().run()
    at.radio(key="nuclei_background").set_value("Original colours").run()
    at.checkbox(key="nuclei_numbers").check().run()
    assert not at.exception
    assert at.get("plotly_chart")[0].proto.spec != before
    shown = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert [t.get("name") for t in shown if t["type"] == "scatter"] == ["nuclei"]  # curves hidden
    assert [t["mode"] for t in shown if t.get("name") == "nuclei"] == ["markers+text"]  # numbered
    assert _metrics(at)["Nuclei (thesis method)"] == str(thesis.count)
    assert sorted(count_runs) == ["thesis", "watershed"]

    # An advanced parameter re-runs the thesis method only, and the page shows its result.
    at.number_input(key="nuclei_p_area_factor").set_value(5.0).run()
    assert not at.exception
    expected = segment_nuclei(pixels, params=NucleiParams(area_factor=5.0))
    assert _metrics(at)["Nuclei (thesis method)"] == str(expected.count)
    assert count_runs.count("thesis") == 3 and count_runs.count("watershed") == 1  # 3 = two page runs + ours

    # Back to the defaults: served from the cache.
    at.button(key="nuclei_reset").click().run()
    assert _metrics(at)["Nuclei (thesis method)"] == str(thesis.count)
    assert count_runs.count("thesis") == 3


def test_page_reads_a_grey_16bit_tiff(page, samples_dir: Path) -> None:
    from medlim.core.io import read_image
    from medlim.microscopy.nuclei.pipeline import segment_nuclei

    expected = segment_nuclei(read_image(samples_dir / GREY_TIFF).pixels)
    at = page.run()
    at.selectbox(key="nuclei_sample").set_value(GREY_TIFF).run()
    assert not at.exception and not at.error and not at.warning
    assert any("Grey image" in c.value for c in at.caption)
    assert _metrics(at)["Nuclei (thesis method)"] == str(expected.count)


def test_page_reports_a_damaged_file_and_a_bad_parameter(page) -> None:
    at = page.run()
    at.selectbox(key="nuclei_sample").set_value(BROKEN).run()
    assert not at.exception
    assert at.error and BROKEN in at.error[0].value
    assert not at.metric

    at.selectbox(key="nuclei_sample").set_value(SAMPLE).run()
    at.number_input(key="nuclei_p_r2").set_value(20.0).run()
    assert not at.exception
    assert any("`r2` (20.0) must not be smaller than `r1` (45.0)" in e.value for e in at.error)
    assert not at.metric


def test_page_labels_match_the_command_line(samples_dir: Path, tmp_path: Path) -> None:
    """The label PNG the page offers is byte-for-byte the array ``medlim nuclei segment`` writes."""
    from medlim.cli import main
    from medlim.core.io import read_image
    from medlim.microscopy.nuclei.pipeline import segment_nuclei

    assert main(["nuclei", "segment", str(samples_dir / SAMPLE), "--out", str(tmp_path)]) == 0
    written = cv2.imread(str(tmp_path / "small_image_labels.png"), cv2.IMREAD_UNCHANGED)
    result = segment_nuclei(read_image(samples_dir / SAMPLE).pixels)
    offered = cv2.imdecode(np.frombuffer(ui.labels_png(result.labels), np.uint8), cv2.IMREAD_UNCHANGED)
    assert offered.dtype == written.dtype == np.uint16
    np.testing.assert_array_equal(offered, written)


def test_page_numbers_equal_the_room_readout_and_table(page, samples_dir: Path,
                                                        recorded_downloads: list[dict]) -> None:
    """Issue 17: every number the page shows is the room's readout for the same file, as the CLI computes it
    (``medlim nuclei segment``: ``read_image`` → ``segment_nuclei`` → :func:`nuclei_readout`; ``--csv`` writes
    :meth:`NucleusTable.to_csv`)."""
    from medlim.core.io import read_image
    from medlim.microscopy.nuclei.pipeline import segment_nuclei
    from medlim.microscopy.nuclei.watershed import watershed_nuclei

    pixels = read_image(samples_dir / SAMPLE).pixels
    thesis, baseline = segment_nuclei(pixels), watershed_nuclei(pixels)
    table = nucleus_table(thesis.labels)
    readout, baseline_readout = nuclei_readout(thesis, table), nuclei_readout(baseline)

    at = page.run()
    at.selectbox(key="nuclei_sample").set_value(SAMPLE).run()
    assert not at.exception and not at.error
    assert _metrics(at) == {
        "Nuclei (thesis method)": str(readout.count),
        "Clumps split": str(readout.clumps_split),
        "Mean nucleus area (px²)": f"{readout.mean_area_px2:,.0f}",
        "Nuclei (watershed baseline)": str(baseline_readout.count),
    }
    assert any(f"{readout.from_split_clumps} of {readout.count} nuclei came from split clumps; {readout.cuts} "
               f"dividing curve(s)" in c.value for c in at.caption)
    shown = at.dataframe[0].value
    assert shown.to_dict("records") == [dict(row) for row in table.objects.rows]
    (csv,) = [offer["data"] for offer in recorded_downloads if offer["file_name"].endswith("_objects.csv")]
    assert csv == table.to_csv()
    (geojson,) = [offer["data"] for offer in recorded_downloads if offer["file_name"].endswith(".geojson")]
    from medlim.microscopy.nuclei.measure import nuclei_exports, nucleus_outlines

    assert geojson == nuclei_exports(nucleus_outlines(thesis.labels, table), table.objects).geojson


def test_page_microns_histograms_and_presets(page, samples_dir: Path) -> None:
    """Issue 16: a pixel size turns the table, histograms and mean area into µm; method parameters save and
    load as named presets."""
    from medlim.core.io import read_image
    from medlim.microscopy.nuclei.pipeline import segment_nuclei
    from medlim.microscopy.objects import MicronSpacing

    at = page.run()
    at.selectbox(key="nuclei_sample").set_value(SAMPLE).run()
    assert any("states no pixel size" in i.value for i in at.info)
    at.number_input(key="nuclei_pixel_size").set_value(0.5).run()
    assert not at.exception and not at.error
    thesis = segment_nuclei(read_image(samples_dir / SAMPLE).pixels)
    table = nucleus_table(thesis.labels, spacing=MicronSpacing(0.5, "user"))
    assert _metrics(at)["Mean nucleus area (µm²)"] == f"{round(thesis.mean_area, 1) * 0.25:,.1f}"
    assert "area_um2" in at.dataframe[0].value.columns
    assert at.dataframe[0].value["area_um2"].tolist() == [row["area_um2"] for row in table.objects.rows]
    histograms = json.loads(at.get("plotly_chart")[2].proto.spec)
    titles = [histograms["layout"][axis]["title"]["text"] for axis in ("xaxis", "xaxis2", "xaxis3", "xaxis4")]
    assert titles == ["Area (µm²)", "Perimeter (µm)", "Equivalent diameter (µm)", "Eccentricity"]
    assert histograms["layout"]["yaxis"]["title"]["text"] == "Nuclei"

    at.number_input(key="nuclei_p_area_factor").set_value(3.0).run()
    at.text_input(key="nuclei_preset_name").set_value("loose").run()
    at.button(key="nuclei_preset_save").click().run()
    assert not at.exception and "loose" in at.selectbox(key="nuclei_preset").options
    at.selectbox(key="nuclei_preset").set_value("thesis").run()
    assert at.number_input(key="nuclei_p_area_factor").value == NucleiParams().area_factor
    at.selectbox(key="nuclei_preset").set_value("loose").run()
    assert at.number_input(key="nuclei_p_area_factor").value == 3.0 and not at.exception

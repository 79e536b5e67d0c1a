"""The mammography (BAC) page (AppTest), against the library and the command line.

The page runs in AppTest on generated small MG DICOM phantoms with tiny test
models: randomly initialised SCU-Nets saved into a temporary weights registry
(``MEDLIM_WEIGHTS_DIR``), so no trained weights are needed. Their output is
nearly constant (~0.46), which is enough to check the plumbing: every number
the page shows must equal what ``medlim bac quantify|report|history`` print for
the same file, weights, cut-off and X (issue 17), and slider moves must not
re-run inference. The tests named after a bug fail on the page before issue 17.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from medlim.cli import main

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "mammography.py")
APP = str(ROOT / "app.py")
TIMEOUT = 120  # first runs import torch; inference of a 1024×832 image takes seconds on a busy CPU


# ----------------------------------------------------------------------------- fixtures


def register_test_model(
    directory: Path, *, version: str = "0-test", threshold: float = 0.5, default: bool = False,
    gate: dict[str, float] | None = None, region_filter: dict[str, Any] | None = None,
) -> None:
    """A randomly initialised SCU-Net (seed 0) as ``scunet-bac@<version>`` with the thesis preset (and the gate and
    region filter given, as a manifest's ``params`` hold them)."""
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.mammography.scunet import build_scunet

    torch.manual_seed(0)
    fields = {
        "name": "scunet-bac",
        "version": version,
        "task": "bac-segmentation",
        "architecture": "scunet",
        "preset": "thesis",
        "input_contract": {"channels": 3, "size": [512, 512], "dtype": "float32", "range": [-1.0, 1.0]},
        "output_type": "probability",
        "thresholds": {"output": threshold},
        "params": {"overlap": 64, "merge": "max", "skip": True, "output_activation": "sigmoid", "x": 100.0,
                   **({} if gate is None else {"gate": gate}),
                   **({} if region_filter is None else {"region_filter": region_filter})},
        **({"default": True} if default else {}),
    }
    save_weights(Registry.load(directory), fields, build_scunet().eval().state_dict())


@pytest.fixture(scope="module")
def exam_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two small (1024×832) left CC phantoms of one patient, a year apart: ``(earlier, later)``."""
    from medlim.phantoms.dicom import write_mammogram_dicom
    from medlim.phantoms.mammogram import generate_mammogram

    folder = tmp_path_factory.mktemp("mammo_samples") / "mammograms"
    paths = []
    for index in (0, 4):  # patient 0, exams 0 and 1, view LCC
        phantom = generate_mammogram(seed=20261201, index=index, size="small", years=2, bac_fraction=1.0)
        meta = phantom.metadata
        paths.append(write_mammogram_dicom(phantom, folder / f"{meta.patient_id}_{meta.study_date}_LCC.dcm"))
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def phantom_dicom(exam_files: tuple[Path, Path]) -> Path:
    return exam_files[0]


@pytest.fixture
def test_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "weights"
    register_test_model(directory)
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(directory))
    return directory


@pytest.fixture
def no_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(tmp_path / "absent"))


@pytest.fixture
def count_inference(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count whole-image inferences (the page runs in this process)."""
    from medlim.mammography import inference

    calls: list[str] = []
    original = inference.predict_probability_map

    def counting(*args, **kwargs):
        calls.append("predict")
        return original(*args, **kwargs)

    monkeypatch.setattr(inference, "predict_probability_map", counting)
    return calls


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _upload(at: AppTest, path: Path) -> AppTest:
    return at.file_uploader(key="bac_upload").upload(path.name, path.read_bytes(), "application/dicom").run()


def _cli_rows(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict]:
    capsys.readouterr()
    assert main(args) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def _reference(path: Path, registry: Path, version: str = "0-test"):
    from medlim.core.io import read_image
    from medlim.core.weights import Registry
    from medlim.mammography.analysis import analyse_mammogram, load_bac_model

    bac_model = load_bac_model(f"scunet-bac@{version}", registry=Registry.load(registry), device="cpu")
    return analyse_mammogram(read_image(path.read_bytes(), name=path.name), bac_model)


# ----------------------------------------------------------------------------- page basics


def test_page_without_bac_weights_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_samples: None) -> None:
    checkpoint = ROOT.parent / "shared" / "reference" / "scunet_published" / "SCUNet_dice_512_512_best_nosigmoid.pt"
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(tmp_path))  # an empty registry
    monkeypatch.setenv("MEDLIM_DATA_ROOTS", f"{tmp_path}{os.pathsep}{checkpoint.parent}")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    assert any("No BAC segmentation weights are registered yet" in w.body for w in at.warning)
    assert at.selectbox(key="bac_weights").options == ["Authors' checkpoint file (.pt)…"]
    assert any("checkpoint file" in i.body for i in at.info)
    at.text_input(key="bac_checkpoint").input(str(tmp_path / "missing.pt")).run()
    assert not at.exception
    assert "No file at" in at.error[0].body
    if checkpoint.is_file():  # the authors' checkpoint loads (published preset) and the page invites an upload
        at.text_input(key="bac_checkpoint").input(str(checkpoint)).run()
        assert not at.exception and not at.error
        assert any("Upload a mammogram" in i.body for i in at.info)


def test_an_exam_opened_again_in_a_new_session_is_read_back_without_inference(
    phantom_dicom: Path, test_registry: Path, count_inference: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: a finished analysis is a stored result (disk cache under MEDLIM_CACHE_MB): another tab opening
    the same exam with the same weights and settings shows it, and its live sliders work, with no inference."""
    import os

    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(phantom_dicom.parents[1]))
    readouts = []
    for _tab in range(2):
        at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
        sample = at.selectbox(key="bac_sample")
        sample.set_value(sample.options[0]).run()
        assert not at.exception and not at.error
        at.slider(key="bac_threshold").set_value(0.0).run()
        readouts.append((_metric(at, "PM"), _metric(at, "AM (mm²)")))
    assert len(count_inference) == 1 and readouts[0] == readouts[1]
    assert list((Path(os.environ["MEDLIM_HOME"]) / "cache" / "bac_analyses").glob("*.npz"))


def test_sample_exam_readouts_slider_save_and_history(
    phantom_dicom: Path, test_registry: Path, count_inference: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from medlim.core.store import list_bac_results, open_store, save_image, upsert_bac_result
    from medlim.mammography.analysis import requantify

    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(phantom_dicom.parents[1]))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="bac_weights").value == "scunet-bac@0-test"
    assert "Upload a mammogram" in at.info[0].body
    sample = at.selectbox(key="bac_sample")
    assert len(sample.options) == 2 and "LCC" in sample.options[0]
    sample.set_value(sample.options[0]).run()
    assert not at.exception and not at.error
    assert len(count_inference) == 1

    reference = _reference(phantom_dicom, test_registry)
    count_inference.clear()  # from here on, any inference would be the page's
    assert at.slider(key="bac_threshold").value == 0.5 and at.slider(key="bac_x").value == 100
    assert _metric(at, "PM") == f"{reference.metrics.pm:,.0f}"
    assert _metric(at, "AM (mm²)") == f"{reference.metrics.am_mm2:,.2f}"  # the phantom has a PixelSpacing
    assert any("PixelSpacing" in c.value for c in at.caption)
    assert any("scunet-bac v0-test" in c.value and "preset thesis (" in c.value for c in at.caption)

    # A lower cut-off: new numbers from the cached map, no second inference.
    at.slider(key="bac_threshold").set_value(0.0).run()
    assert not at.exception and not at.error and count_inference == []
    lowered = requantify(reference, threshold=0.0, x=100)
    assert lowered.am > 0
    assert _metric(at, "AM (mm²)") == f"{lowered.am_mm2:,.2f}"
    assert any(c.value == f"{lowered.tam_x:,} px" for c in at.caption)
    at.slider(key="bac_x").set_value(120).run()
    assert count_inference == []
    at120 = requantify(reference, threshold=0.0, x=120)
    assert _metric(at, "TAM_120 (mm²)") == f"{at120.tam_x_mm2:,.2f}"

    # Display only: overlay off, another window; the readouts stay and nothing is re-run.
    overview = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in overview["data"]] == ["mammogram", "calcification mask", "zoom here"]
    at.toggle(key="bac_overlay").set_value(False).run()
    assert [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]] == ["mammogram", "zoom here"]
    width = next(s for s in at.slider if s.label == "Window width")
    width.set_value(width.value / 2).run()
    assert not at.exception and not at.error and count_inference == []
    assert _metric(at, "AM (mm²)") == f"{lowered.am_mm2:,.2f}"

    # A prior exam of the same patient, stored directly (TAM_100 = 5): the history then has two dates.
    store = open_store()
    meta = reference
    prior_date = f"{int(meta.study_date[:4]) - 1}{meta.study_date[4:]}"
    prior = save_image(store, content_sha256="0" * 64, file_name="prior.dcm", rows=1024, cols=832,
                       modality="MG", view="CC", laterality="L", study_date=prior_date,
                       patient_key=meta.patient_key)  # fmt: skip
    upsert_bac_result(store, image_id=prior.id, weights_name="scunet-bac", weights_version="0-test",
                      preset="thesis", threshold=0.0, x=100.0, pm=1.0, am=10, sim=1000.0, tam_x=5,
                      tsim_x=600.0, breast_area=200_000)  # fmt: skip

    at.button(key="bac_save").click().run()
    assert not at.exception and not at.error and count_inference == []
    assert "Saved 1 view" in at.success[0].body
    (row,) = [r for r in list_bac_results(store, patient_key=meta.patient_key) if r.image.study_date != prior_date]
    assert (row.x, row.tam_x, row.tam_100, row.am) == (120.0, at120.tam_x, lowered.tam_x, lowered.am)
    at.button(key="bac_save").click().run()  # idempotent: one row per view, TAM_100 in it
    assert len(list_bac_results(store, patient_key=meta.patient_key)) == 2

    figure = json.loads(at.get("plotly_chart")[-1].proto.spec)
    exam_trace = next(t for t in figure["data"] if t["name"].startswith("Exam"))
    assert exam_trace["x"] == [prior_date, meta.study_date]
    assert exam_trace["y"] == pytest.approx([5 / 200_000, lowered.tam_x / lowered.breast_area])
    assert figure["layout"]["xaxis"]["title"]["text"] and figure["layout"]["yaxis"]["title"]["text"]
    assert list(at.dataframe[-1].value["Flag"]) == ["cannot tell"]  # one view: no CC/MLO noise estimate


def test_both_cut_off_fields_say_the_weights_default_and_their_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phantom_dicom: Path, no_samples: None
) -> None:
    directory = tmp_path / "gated"
    register_test_model(directory, threshold=0.2, default=True, gate={"floor": 0.2, "seed": 0.95})
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(directory))
    at = _upload(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), phantom_dicom)
    assert not at.exception
    sentence = "keep only regions of p > 0.2 that reach p > 0.95 somewhere"
    single, batch = at.slider(key="bac_threshold").help, at.number_input(key="bac_batch_threshold").help
    assert "Default of these weights: 0.2." in single and sentence in single and "stored probability map" in single
    assert "Default of these weights: 0.2." in batch and sentence in batch
    (caption,) = [c.value for c in at.caption if c.value.startswith("Numbers from")]
    assert caption.endswith("· gate: regions of p > 0.2 kept where they reach p > 0.95.")


def test_page_refuses_a_non_mammogram(test_registry: Path, no_samples: None) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((200, 300), np.uint8)).save(buffer, format="PNG")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.file_uploader(key="bac_upload").upload("thumb.png", buffer.getvalue(), "image/png").run()
    assert not at.exception
    assert len(at.error) == 1
    assert at.error[0].body.startswith("**thumb.png:**") and "at least 512" in at.error[0].body


# ----------------------------------------------------------------------------- issue 17: page state


def test_bug_sliders_keep_their_values_when_the_file_list_is_emptied_and_the_next_exam_uploaded(
    exam_files: tuple[Path, Path], test_registry: Path, no_samples: None
) -> None:
    """Before issue 17 the sliders came back at 0 after an empty upload list: the whole breast red."""
    from medlim.mammography.analysis import requantify

    earlier, later = exam_files
    at = _upload(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), earlier)
    assert (at.slider(key="bac_threshold").value, at.slider(key="bac_x").value) == (0.5, 100)
    at.slider(key="bac_threshold").set_value(0.45).run()
    at.slider(key="bac_x").set_value(110).run()
    at.file_uploader(key="bac_upload").clear().run()
    assert not at.exception and "Upload a mammogram" in at.info[0].body
    _upload(at, later)
    assert not at.exception and not at.error
    assert (at.slider(key="bac_threshold").value, at.slider(key="bac_x").value) == (0.45, 110)
    expected = requantify(_reference(later, test_registry), threshold=0.45, x=110)
    assert _metric(at, "AM (mm²)") == f"{expected.am_mm2:,.2f}"
    assert _metric(at, "TAM_110 (mm²)") == f"{expected.tam_x_mm2:,.2f}"


def _three_versions(directory: Path) -> None:
    """scunet-bac@1 (t = 0.8), @2 (t = 0.6, marked default, as in the shipped manifest), @3 (t = 0.45)."""
    register_test_model(directory, version="1", threshold=0.8)
    register_test_model(directory, version="2", threshold=0.6, default=True)
    register_test_model(directory, version="3", threshold=0.45)


def test_bug_weights_picker_opens_on_the_task_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phantom_dicom: Path, no_samples: None
) -> None:
    """Before issue 17 the picker opened on scunet-bac:1, which the manifest calls superseded by v2."""
    _three_versions(tmp_path / "weights")
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(tmp_path / "weights"))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="bac_weights").value == "scunet-bac@2"
    assert at.selectbox(key="bac_weights").format_func("scunet-bac@2") == "scunet-bac@2 (default)"
    assert "shipped: scunet-bac@2" in [c.value for c in at.sidebar.caption]  # what the chosen model is
    _upload(at, phantom_dicom)
    assert at.slider(key="bac_threshold").value == 0.6
    assert any("scunet-bac v2" in c.value for c in at.caption)

    # A default the user sets on the Models page is followed until a model is chosen here.
    from medlim.core.weights import set_default

    set_default("scunet-bac@3")
    at.run()
    assert at.selectbox(key="bac_weights").value == "scunet-bac@3" and at.slider(key="bac_threshold").value == 0.45
    at.selectbox(key="bac_weights").set_value("scunet-bac@1").run()
    set_default("scunet-bac@2")
    at.run()
    assert at.selectbox(key="bac_weights").value == "scunet-bac@1" and at.slider(key="bac_threshold").value == 0.8


def test_bug_chosen_weights_stick_after_visiting_another_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_samples: None
) -> None:
    """Before issue 17 a chosen version reverted to v1 (and its cut-off 0.80) after another page."""
    _three_versions(tmp_path / "weights")
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(tmp_path / "weights"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/mammography.py").run()
    assert not at.exception
    picker = at.selectbox(key="bac_weights")
    version_3 = next(o for o in picker.options if o.replace(":", "@").endswith("@3"))
    picker.set_value(version_3).run()
    assert at.selectbox(key="bac_weights").value == version_3
    at.switch_page("pages/home.py").run()
    assert not at.exception
    at.switch_page("pages/mammography.py").run()
    assert not at.exception and not at.error
    assert at.selectbox(key="bac_weights").value == version_3


def test_bug_history_does_not_depend_on_the_cutoff_or_x_and_equals_the_cli(
    exam_files: tuple[Path, Path], test_registry: Path, no_samples: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before issue 17 the history matched the exact cut-off (t = 0.39 showed "0 saved exams") and X = 100
    only (a ``bac quantify --x 120`` run never appeared), and the command line had no history."""
    earlier, later = exam_files
    at = _upload(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), later)
    at.slider(key="bac_threshold").set_value(0.4).run()
    at.button(key="bac_save").click().run()
    assert not at.exception and not at.error
    assert any("1 saved exam(s)" in m.value for m in at.markdown)
    at.slider(key="bac_threshold").set_value(0.39).run()
    assert [m.value for m in at.markdown if "saved exam(s)" in m.value][0].count("1 saved exam(s)") == 1

    # The earlier exam, analysed on the command line at X = 120, joins the page's history with its TAM_100.
    (cli_row,) = _cli_rows(["bac", "quantify", str(earlier), "--jsonl", "--threshold", "0.4", "--x", "120",
                            "--device", "cpu"], capsys)  # fmt: skip
    assert cli_row["x"] == 120.0 and cli_row["tam_100"] >= cli_row["tam_x"]
    at.run()
    assert any("2 saved exam(s)" in m.value for m in at.markdown)
    figure = json.loads(at.get("plotly_chart")[-1].proto.spec)
    exam_trace = next(t for t in figure["data"] if t["name"].startswith("Exam"))

    history = _cli_rows(["bac", "history", cli_row["patient_key"], "--jsonl"], capsys)
    assert [row["study_date"] for row in history] == exam_trace["x"]
    assert [row["tam_100_per_breast_area_sum"] for row in history] == pytest.approx(exam_trace["y"])
    assert history[0]["tam_100_per_breast_area_sum"] == pytest.approx(cli_row["tam_100"] / cli_row["breast_area"])
    assert [row["thresholds"] for row in history] == [[0.4], [0.4]]


# ----------------------------------------------------------------------------- issue 17: page equals CLI


def test_every_readout_the_page_shows_equals_cli_quantify(
    phantom_dicom: Path, test_registry: Path, no_samples: None, capsys: pytest.CaptureFixture[str],
    recorded_downloads: list[dict],
) -> None:
    at = _upload(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), phantom_dicom)
    at.slider(key="bac_threshold").set_value(0.4).run()
    at.slider(key="bac_x").set_value(120).run()
    assert not at.exception and not at.error
    (cli,) = _cli_rows(["bac", "quantify", str(phantom_dicom), "--jsonl", "--threshold", "0.4", "--x", "120",
                        "--no-store", "--device", "cpu"], capsys)  # fmt: skip
    assert cli["am"] > 0 and cli["tam_x"] > 0  # the comparison is not of zeros
    shown = {m.label: m.value for m in at.metric}
    assert shown == {
        "PM": f"{cli['pm']:,.0f}",
        "AM (mm²)": f"{cli['am_mm2']:,.2f}",
        "SIM": f"{cli['sim']:,.0f}",
        "TAM_120 (mm²)": f"{cli['tam_x_mm2']:,.2f}",
        "TSIM_120": f"{cli['tsim_x']:,.0f}",
    }
    captions = {c.value for c in at.caption}
    assert {f"{cli['am']:,} px", f"{cli['tam_x']:,} px"} <= captions
    (row,) = at.dataframe[0].value.to_dict("records")
    assert row["PM"] == round(cli["pm"], 1) and row["AM (px)"] == cli["am"] and row["SIM"] == cli["sim"]
    assert row["AM (mm²)"] == round(cli["am_mm2"], 2) and row["TAM_120 (mm²)"] == round(cli["tam_x_mm2"], 2)
    assert row["TAM_120 (px)"] == cli["tam_x"] and row["TSIM_120"] == cli["tsim_x"]
    assert row["Breast area (px)"] == cli["breast_area"]
    assert row["TAM_120 / breast area"] == pytest.approx(cli["tam_x_per_breast_area"])

    # The page's report files are the ones ``medlim bac report`` writes (but for the analysis time).
    out = phantom_dicom.parent.parent / "reports"
    assert main(["bac", "report", str(phantom_dicom), "--out", str(out), "--threshold", "0.4", "--x", "120",
                 "--no-store", "--device", "cpu"]) == 0  # fmt: skip
    offers = {offer["file_name"]: offer["data"] for offer in recorded_downloads}
    stem = f"{cli['patient_key']}_{cli['study_date']}_report"
    assert f"{stem}.csv" in offers and f"{stem}.json" in offers
    page_json = json.loads(offers[f"{stem}.json"]())
    cli_json = json.loads((out / f"{stem}.json").read_text())
    for document in (page_json, cli_json):
        for view in document["views"]:
            view.pop("seconds")
    assert page_json == cli_json
    assert page_json["views"][0]["image"] == "LCC" and page_json["views"][0]["tam_100"] >= cli["tam_x"]
    page_csv = offers[f"{stem}.csv"]().decode().splitlines()
    cli_csv = (out / f"{stem}.csv").read_text().splitlines()
    seconds = page_csv[0].split(",").index("seconds")
    assert [line.split(",")[:seconds] for line in page_csv] == [line.split(",")[:seconds] for line in cli_csv]


def test_zoom_follows_the_zoom_centre_at_full_resolution(
    phantom_dicom: Path, test_registry: Path, no_samples: None
) -> None:
    at = _upload(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), phantom_dicom)
    charts = at.get("plotly_chart")
    overview, zoom = (json.loads(chart.proto.spec) for chart in charts[:2])
    assert overview["data"][0]["dx"] == 1  # 1024 rows: shown as they are (max side 1024)
    image = zoom["data"][0]
    assert (image["x0"], image["y0"], image["dx"]) == (416 - 256, 512 - 256, 1)  # 512 px around the centre
    row = next(s for s in at.slider if s.label == "Zoom centre row")
    row.set_value(1000).run()
    image = json.loads(at.get("plotly_chart")[1].proto.spec)["data"][0]
    assert image["y0"] == 1024 - 512  # kept inside the image
    assert not at.exception and not at.error


# ----------------------------------------------------------------------------- other tabs and inputs


def test_checkpoint_path_is_confined_to_the_data_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    root.mkdir()
    outside = tmp_path / "outside.pt"
    outside.write_bytes(b"not a checkpoint")
    (root / "linked.pt").symlink_to(outside)
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(tmp_path / "absent"))
    monkeypatch.setenv("MEDLIM_DATA_ROOTS", str(root))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert str(root) in at.text_input(key="bac_checkpoint").help
    messages = []
    for typed in ("/etc/passwd", "../../outside.pt", "linked.pt", str(outside), "/no/such/file.pt"):
        at.text_input(key="bac_checkpoint").input(typed).run()
        assert not at.exception
        messages.append(at.error[0].body)
    assert all("checkpoint file must lie inside one of the data folders" in m and str(root) in m for m in messages)
    assert len(set(messages)) == 1  # whether or not the file exists outside the roots


def test_batch_tab_quantifies_a_zip_like_the_cli(
    phantom_dicom: Path, test_registry: Path, no_samples: None, recorded_downloads: list[dict], run_jobs
) -> None:
    from medlim.core.io.pseudonym import file_label
    from medlim.core.jobs import list_jobs
    from medlim.core.store import list_bac_results, open_store
    from medlim.core.weights import Registry
    from medlim.mammography.analysis import load_bac_model
    from medlim.mammography.batch import quantify_files

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("study/LCC.dcm", phantom_dicom.read_bytes())
        archive.writestr("study/broken.dcm", b"\x00" * 128 + b"DICM" + b"\x02\x00")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.file_uploader(key="bac_batch_upload").upload("study.zip", buffer.getvalue(), "application/zip").run()
    at.number_input(key="bac_batch_threshold").set_value(0.0).run()
    at.button(key="bac_batch_run").click().run()
    assert not at.exception and not at.error
    with open_store() as store:  # the batch is a job (issue 15): `medlim bac quantify FILES ...`, uploads on disk
        (job,) = list_jobs(store, kind="bac.quantify")
    argv = job.parameters["argv"]
    assert argv[:2] == ["bac", "quantify"] and argv[argv.index("--threshold") + 1] == "0.0"
    assert [Path(path).name for path in argv[2:4]] == ["00001-LCC.dcm", "00002-broken.dcm"]
    assert all(Path(path).is_file() for path in argv[2:4])
    assert [ended.state for ended in run_jobs()] == ["done"]
    at.run()
    assert not at.exception and not at.error
    table = next(frame.value for frame in at.dataframe if "file" in frame.value.columns)  # the views (exams below)
    assert list(table["file"]) == ["study.zip/study/LCC.dcm", "study.zip/study/broken.dcm"]
    assert list(table["ok"]) == [True, False]
    # issue 14: names are shown in this session, but the downloaded CSV carries pseudonymous labels
    (csv_offer,) = [offer for offer in recorded_downloads if offer["file_name"] == "bac_batch.csv"][-1:]
    text = csv_offer["data"].decode()
    assert "study.zip" not in text and "broken.dcm" not in text and "LCC.dcm" not in text
    assert file_label("study.zip/study/LCC.dcm", data=phantom_dicom.read_bytes()) in text
    assert any("1 could not be analysed" in m.value for m in at.markdown)
    # The CLI's function on the same bytes gives the same numbers.
    bac_model = load_bac_model("scunet-bac", registry=Registry.load(test_registry), device="cpu")
    (cli,) = quantify_files([("LCC.dcm", phantom_dicom.read_bytes())], bac_model, threshold=0.0)
    for key in ("pm", "am", "sim", "tam_x", "tsim_x", "breast_area", "am_mm2", "tam_100"):
        assert table[key].iloc[0] == pytest.approx(cli.values[key]), key
    assert len(list_bac_results(open_store())) == 1  # saved once (the broken file is not)


def test_png_without_view_gets_view_and_laterality_from_the_reader(
    test_registry: Path, no_samples: None, count_inference: list[str]
) -> None:
    from PIL import Image

    rows, cols = 600, 520
    y, x = np.mgrid[0:rows, 0:cols]
    breast = ((x / 480.0) ** 2 + ((y - rows / 2) / 280.0) ** 2) <= 1.0
    buffer = io.BytesIO()
    Image.fromarray(np.where(breast, 90 + (x % 50), 0).astype(np.uint8)).save(buffer, format="PNG")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.file_uploader(key="bac_upload").upload("export.png", buffer.getvalue(), "image/png").run()
    assert not at.exception and not at.error
    assert any("View or laterality is not recorded" in w.body for w in at.warning)
    assert any("no pixel spacing" in c.value for c in at.caption)
    assert _metric(at, "AM (px)") == "0"
    assert at.radio(key="bac_view").options == ["export.png"]
    side = next(s for s in at.selectbox if s.label == "export.png: laterality")
    side.set_value("R").run()
    next(s for s in at.selectbox if s.label == "export.png: view").set_value("MLO").run()
    assert not at.exception and not at.error
    assert at.radio(key="bac_view").options == ["RMLO"]
    assert not any("View or laterality is not recorded" in w.body for w in at.warning)
    assert len(count_inference) == 1


# ----------------------------------------------------------------------------- issue 13: unlike my training data


def test_weights_with_a_region_filter_say_what_it_dropped_as_the_cli_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phantom_dicom: Path, no_samples: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A filter that judges every region tissue (intercept −60): the page's line, table cell and cut-off help, and
    the command line's ``region_filter`` object, agree; the readouts count nothing of what it dropped."""
    from medlim.mammography.regions import REGION_FEATURES, FilterEffect, RegionFilter

    width = len(REGION_FEATURES)
    drop_all = RegionFilter(floor=0.2, mean=(0.0,) * width, scale=(1.0,) * width, coef=(0.0,) * width,
                            intercept=-60.0, threshold=0.5, spacing_mm=0.07)
    directory = tmp_path / "filtered"
    register_test_model(directory, threshold=0.2, default=True, region_filter=drop_all.to_json())
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(directory))
    at = _upload(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), phantom_dicom)
    assert not at.exception and not at.error
    (cli,) = _cli_rows(["bac", "quantify", str(phantom_dicom), "--jsonl", "--no-store", "--device", "cpu"], capsys)
    effect = FilterEffect.from_dict(cli["region_filter"])
    assert effect.regions >= 1 and effect.dropped == effect.regions and effect.dropped_px > 0 and cli["am"] == 0
    assert f"Region filter: {effect.text}." in {c.value for c in at.caption}
    (row,) = at.dataframe[0].value.to_dict("records")
    area = f"{effect.dropped_px:,} px" if effect.dropped_mm2 is None else f"{effect.dropped_mm2:,.2f} mm²"
    assert row["Dropped by region filter"] == f"{effect.dropped} region{'' if effect.dropped == 1 else 's'}, {area}"
    assert row["AM (px)"] == 0
    assert drop_all.describe() in at.slider(key="bac_threshold").help
    (caption,) = [c.value for c in at.caption if c.value.startswith("Numbers from")]
    assert caption.endswith("(I > X) · region filter: regions of p > 0.2 judged tissue dropped, fitted on the site's views.")


def test_training_data_check_warns_on_a_radiograph_and_shows_the_clis_object(
    test_registry: Path, no_samples: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped v2 check stored beside the test model: the page shows the CLI's warning and object."""
    from PIL import Image

    from medlim.core.familiarity import attach_familiarity, load_familiarity
    from medlim.core.weights import Registry
    from medlim.phantoms.radiograph import generate_radiograph

    check = load_familiarity(Registry.load(ROOT / "weights").get("scunet-bac", "2"))
    attach_familiarity(Registry.load(test_registry).get("scunet-bac", "0-test"), check, command="test")
    image = np.clip(np.rint(generate_radiograph(seed=12, body_part="forearm", size=512).image * 255), 0, 255)
    path = tmp_path / "forearm.png"
    Image.fromarray(image.astype(np.uint8)).save(path)
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.file_uploader(key="bac_upload").upload(path.name, path.read_bytes(), "image/png").run()
    assert not at.exception and not at.error
    (cli,) = _cli_rows(["bac", "quantify", str(path), "--jsonl", "--no-store", "--device", "cpu"], capsys)
    flag = cli["unlike_training"]
    assert flag["flagged"] is True and flag["score"] > flag["threshold"]
    (cli_warning,) = [w for w in cli["warnings"] if "unlike the images the model was trained on" in w]
    assert [w.body for w in at.warning if "unlike the images" in w.body] == [f"**forearm.png** (forearm.png): {cli_warning}"]
    shown = f"flagged: unlike the training images (score {flag['score']:.2f}, limit {flag['threshold']:.2f})"
    assert f"Training-data check: {shown}." in {c.value for c in at.caption}
    (row,) = at.dataframe[0].value.to_dict("records")
    assert row["Unlike training"] == f"flagged ({flag['score']:.2f} / {flag['threshold']:.2f})"
    assert row["AM (px)"] == cli["am"]  # the numbers are still given


def test_weights_without_a_check_say_so(phantom_dicom: Path, test_registry: Path, no_samples: None) -> None:
    at = _upload(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), phantom_dicom)
    assert not at.exception and not at.error
    assert "Training-data check: no training-data check stored with these weights." in {c.value for c in at.caption}
    (row,) = at.dataframe[0].value.to_dict("records")
    assert row["Unlike training"] == "—"
    assert "Dropped by region filter" not in row and not any(c.value.startswith("Region filter") for c in at.caption)


def test_a_finished_batch_opens_as_a_result_and_any_view_opens_in_the_viewer_without_inference(
    exam_files: tuple[Path, Path], test_registry: Path, no_samples: None, recorded_downloads: list[dict], run_jobs,
    count_inference: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 15: a finished BAC batch job opens like a result — its views (the job's stored rows, as
    `medlim jobs show ID --json` prints them), its exams' totals, a distribution, CSV and JSON — and any view
    opens in the exam viewer from the analysis the job stored, at the batch's cut-off, without inference."""
    earlier, later = exam_files
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("LCC-2019.dcm", earlier.read_bytes())
        archive.writestr("LCC-2020.dcm", later.read_bytes())
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.file_uploader(key="bac_batch_upload").upload("exams.zip", buffer.getvalue(), "application/zip").run()
    at.number_input(key="bac_batch_threshold").set_value(0.0).run()  # the tiny model's ~0.46 everywhere
    at.button(key="bac_batch_run").click().run()
    (job,) = run_jobs()
    assert job.state == "done" and len(count_inference) == 2  # the worker analysed both views
    count_inference.clear()
    at.run()
    assert not at.exception and not at.error
    shown = _cli_rows(["jobs", "show", str(job.id), "--json"], capsys)[0]["result"]

    views = at.dataframe[-2].value  # the views, as the job stored them (names of this session's upload)
    assert list(views["file"]) == ["exams.zip/LCC-2019.dcm", "exams.zip/LCC-2020.dcm"]
    for key in ("pm", "am", "sim", "tam_x", "tsim_x", "breast_area", "tam_100", "threshold", "x", "study_date"):
        assert list(views[key]) == [row[key] for row in shown["rows"]], key
    exams = at.dataframe[-1].value  # one exam per study date of the one patient
    assert len(shown["exams"]) == 2 and list(exams["Date"]) == [exam["study_date"] for exam in shown["exams"]]
    assert list(exams["Patient key"]) == [shown["rows"][0]["patient_key"]] * 2
    assert list(exams["TAM_100 (px)"]) == [row["tam_x"] for row in shown["rows"]]  # one view each: Σ = the view
    assert list(exams["Σ TAM_100 / breast area"]) == pytest.approx(
        [row["tam_100"] / row["breast_area"] for row in shown["rows"]])
    (distribution,) = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    assert distribution["layout"]["xaxis"]["title"]["text"] == "TAM_100 / breast area"
    assert [trace["name"] for trace in distribution["data"]] == ["LCC"]
    assert distribution["data"][0]["marker"]["color"] == "#0072B2"  # Okabe–Ito, as the history's views
    assert sorted(distribution["data"][0]["x"]) == pytest.approx(
        sorted(row["tam_x_per_breast_area"] for row in shown["rows"]))
    offers = {offer["file_name"]: offer["data"] for offer in recorded_downloads}
    assert json.loads(offers["bac_batch.json"]) == {"job": job.id, **shown}
    assert "LCC-2019" not in offers["bac_batch.csv"].decode() and "LCC-2019" not in offers["bac_batch.json"].decode()

    at.selectbox(key="bac_batch_view").set_value(2).run()
    at.button(key="bac_batch_open").click().run()
    assert not at.exception and not at.error
    assert at.session_state["bac_tabs"] == "Exam"
    assert any("Opened **exams.zip/LCC-2020.dcm** from batch job" in i.value for i in at.info)
    row = shown["rows"][1]
    assert at.slider(key="bac_threshold").value == 0.0 and at.slider(key="bac_x").value == 100
    assert _metric(at, "PM") == f"{row['pm']:,.0f}" and _metric(at, "AM (mm²)") == f"{row['am_mm2']:,.2f}"
    at.slider(key="bac_threshold").set_value(0.5).run()  # live sliders on the stored map
    assert not at.exception and not at.error
    assert count_inference == []  # opened from the job's stored analysis: no inference
    at.button(key="bac_opened_close").click().run()
    assert not any("Opened" in i.value for i in at.info)

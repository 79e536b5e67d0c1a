"""The mammography (BAC) page and its UI helpers (``medlim.ui.mammography``).

The page runs in AppTest on a generated small MG DICOM phantom with a tiny
test model: a randomly initialised SCU-Net saved into a temporary weights
registry (``MEDLIM_WEIGHTS_DIR``), so no trained weights are needed. Its output
is nearly constant (~0.46), which is enough to check the plumbing: the page's
numbers must equal the library's, and slider moves must not re-run inference.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from medlim.mammography.exam import ViewReadout, group_exams, longitudinal_changes

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "mammography.py")
TIMEOUT = 120  # first runs import torch; inference of a 1024×832 image takes seconds on a busy CPU


# ----------------------------------------------------------------------------- fixtures


def register_test_model(directory: Path, *, threshold: float = 0.5) -> None:
    """A randomly initialised SCU-Net (seed 0) as ``scunet-bac:0-test`` with the thesis preset."""
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.mammography.scunet import build_scunet

    torch.manual_seed(0)
    fields = {
        "name": "scunet-bac",
        "version": "0-test",
        "task": "bac-segmentation",
        "architecture": "scunet",
        "preset": "thesis",
        "input_contract": {"channels": 3, "size": [512, 512], "dtype": "float32", "range": [-1.0, 1.0]},
        "output_type": "probability",
        "thresholds": {"output": threshold},
        "params": {"overlap": 64, "merge": "max", "skip": True, "output_activation": "sigmoid", "x": 100.0},
    }
    save_weights(Registry.load(directory), fields, build_scunet().eval().state_dict())


@pytest.fixture(scope="module")
def phantom_dicom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small (1024×832) left CC mammogram phantom as MG DICOM, with BAC."""
    from medlim.phantoms.dicom import write_mammogram_dicom
    from medlim.phantoms.mammogram import generate_mammogram

    folder = tmp_path_factory.mktemp("mammo_samples") / "mammograms"
    phantom = generate_mammogram(seed=20261201, index=0, size="small", bac_fraction=1.0)
    return write_mammogram_dicom(phantom, folder / "PHANTOM-0001_2018-01-01_LCC.dcm")


@pytest.fixture
def test_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "weights"
    register_test_model(directory)
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(directory))
    return directory


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


# ----------------------------------------------------------------------------- page


def test_page_without_bac_weights_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoint = ROOT.parent / "shared" / "reference" / "scunet_published" / "SCUNet_dice_512_512_best_nosigmoid.pt"
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(tmp_path))  # an empty registry
    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(tmp_path / "absent"))
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


def test_sample_exam_readouts_slider_save_and_history(
    phantom_dicom: Path, test_registry: Path, count_inference: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from medlim.core.io import read_image
    from medlim.core.store import list_bac_results, open_store, save_image, upsert_bac_result
    from medlim.mammography.analysis import load_bac_model, requantify
    from medlim.mammography.analysis import analyse_mammogram
    from medlim.core.weights import Registry

    samples = phantom_dicom.parents[1]
    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(samples))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="bac_weights").value == "scunet-bac:0-test"
    assert "Upload a mammogram" in at.info[0].body
    sample = at.selectbox(key="bac_sample")
    assert len(sample.options) == 1 and "LCC" in sample.options[0]
    sample.set_value(sample.options[0]).run()
    assert not at.exception and not at.error
    assert len(count_inference) == 1

    # The page's numbers are the library's, at the weights' defaults (t = 0.5, X = 100).
    bac_model = load_bac_model("scunet-bac:0-test", registry=Registry.load(test_registry), device="cpu")
    record = read_image(phantom_dicom.read_bytes(), name=phantom_dicom.name)
    reference = analyse_mammogram(record, bac_model)
    count_inference.clear()  # from here on, any inference would be the page's
    assert at.slider(key="bac_threshold").value == 0.5 and at.slider(key="bac_x").value == 100
    assert _metric(at, "PM") == f"{reference.metrics.pm:,.0f}"
    assert _metric(at, "AM (mm²)") == f"{reference.metrics.am_mm2:,.2f}"  # the phantom has a PixelSpacing
    assert any(c.value == f"{reference.metrics.am:,} px" for c in at.caption)
    assert any("PixelSpacing" in c.value for c in at.caption)
    assert any("scunet-bac v0-test" in c.value and "preset **thesis**" in c.value for c in at.caption)

    # A lower cut-off: new numbers from the cached map, no second inference.
    at.slider(key="bac_threshold").set_value(0.0).run()
    assert not at.exception and not at.error
    assert count_inference == []
    lowered = requantify(reference, threshold=0.0, x=100)
    assert lowered.am > 0
    assert _metric(at, "AM (mm²)") == f"{lowered.am_mm2:,.2f}"
    assert _metric(at, "TAM_100 (mm²)") == f"{lowered.tam_x_mm2:,.2f}"
    assert any(c.value == f"{lowered.tam_x:,} px" for c in at.caption)
    at.slider(key="bac_x").set_value(120).run()
    assert count_inference == []
    assert _metric(at, "TAM_120 (mm²)") == f"{requantify(reference, threshold=0.0, x=120).tam_x_mm2:,.2f}"
    table = at.dataframe[0].value
    assert int(table["AM (px)"].iloc[0]) == lowered.am

    # Display only: overlay off, another window; the readouts stay and nothing is re-run.
    assert len(at.get("plotly_chart")[0].proto.spec) > 0
    image_traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert [t["name"] for t in image_traces] == ["mammogram", "calcification mask"]
    at.toggle(key="bac_overlay").set_value(False).run()
    assert [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]] == ["mammogram"]
    width = next(s for s in at.slider if s.label == "Window width")
    width.set_value(width.value / 2).run()
    assert not at.exception and not at.error
    assert count_inference == []
    assert _metric(at, "AM (mm²)") == f"{lowered.am_mm2:,.2f}"

    # A prior exam of the same patient, stored directly: the history then has two dates.
    store = open_store()
    meta = record.metadata
    prior_date = f"{int(meta.study_date[:4]) - 1}{meta.study_date[4:]}"
    prior = save_image(store, content_sha256="0" * 64, file_name="prior.dcm", rows=1024, cols=832,
                       modality="MG", view="CC", laterality="L", study_date=prior_date,
                       patient_key=meta.patient_key)  # fmt: skip
    upsert_bac_result(store, image_id=prior.id, weights_name="scunet-bac", weights_version="0-test",
                      preset="thesis", threshold=0.0, x=100.0, pm=1.0, am=10, sim=1000.0, tam_x=5,
                      tsim_x=600.0, breast_area=200_000)  # fmt: skip

    at.button(key="bac_save").click().run()
    assert not at.exception and not at.error
    assert count_inference == []
    assert "Saved 1 view" in at.success[0].body
    rows = [r for r in list_bac_results(store, patient_key=meta.patient_key) if r.image.study_date != prior_date]
    assert sorted(r.x for r in rows) == [100.0, 120.0]  # the chosen X and the longitudinal X = 100
    at100 = next(r for r in rows if r.x == 100.0)
    assert (at100.am, at100.tam_x, at100.threshold) == (lowered.am, lowered.tam_x, 0.0)
    at.button(key="bac_save").click().run()  # idempotent
    assert len(list_bac_results(store, patient_key=meta.patient_key)) == 3

    history = at.get("plotly_chart")[-1].proto
    figure = json.loads(history.spec)
    exam_trace = next(t for t in figure["data"] if t["name"].startswith("Exam"))
    assert exam_trace["x"] == [prior_date, meta.study_date]
    assert exam_trace["y"] == pytest.approx([5 / 200_000, lowered.tam_x / lowered.breast_area])
    changes = at.dataframe[-1].value
    assert list(changes["Flag"]) == ["cannot tell"]  # one view: no CC/MLO noise estimate


def test_page_refuses_a_non_mammogram(test_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(tmp_path / "absent"))
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((200, 300), np.uint8)).save(buffer, format="PNG")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.file_uploader(key="bac_upload").upload("thumb.png", buffer.getvalue(), "image/png").run()
    assert not at.exception
    assert len(at.error) == 1
    assert at.error[0].body.startswith("**thumb.png:**") and "at least 512" in at.error[0].body


# ----------------------------------------------------------------------------- pure helpers


def test_sample_exams_group_views_and_skip_ground_truth(tmp_path: Path) -> None:
    from medlim.ui.mammography import sample_exams

    folder = tmp_path / "mammograms" / "dicom"
    folder.mkdir(parents=True)
    for name in ("P1_2018_LCC.dcm", "P1_2018_RCC.dcm", "P1_2018_LCC_bac.png", "P1_2018_LCC_lookalike.png",
                 "P1_2019_LCC.dcm", "manifest.csv"):  # fmt: skip
        (folder / name).write_bytes(b"x")
    (tmp_path / "nuclei").mkdir()
    (tmp_path / "nuclei" / "cells.png").write_bytes(b"x")
    exams = sample_exams(tmp_path)
    assert [[p.name for p in e.files] for e in exams] == [["P1_2018_LCC.dcm", "P1_2018_RCC.dcm"], ["P1_2019_LCC.dcm"]]
    assert exams[0].label.startswith("P1 2018 — 2 views (LCC, RCC")
    assert sample_exams(tmp_path / "absent") == []


def test_block_max_keeps_a_one_pixel_artery() -> None:
    from medlim.ui.mammography import block_max

    mask = np.zeros((8, 9), bool)
    mask[5, 2] = True
    shrunk = block_max(mask, 4)
    assert shrunk.shape == (2, 2)
    assert shrunk.tolist() == [[False, False], [True, False]]
    assert block_max(mask, 1) is not mask or block_max(mask, 1).sum() == 1


def test_overlay_figure_places_full_resolution_coordinates() -> None:
    from medlim.ui.mammography import overlay_figure

    display = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    mask = np.zeros((3, 4), bool)
    mask[1, 1] = True
    figure = overlay_figure(display, mask, factor=4, origin=(100, 200), opacity=0.3)
    grey, overlay = figure.data
    # Displayed pixel (0, 0) covers full-resolution rows 100..103: its centre is 101.5.
    assert (grey.x0, grey.y0, grey.dx, grey.dy) == (201.5, 101.5, 4, 4)
    assert overlay.opacity == 0.3 and overlay.source.startswith("data:image/png;base64,")
    assert len(overlay_figure(display, None).data) == 1


def test_history_values_filter_and_figure_flags() -> None:
    from types import SimpleNamespace

    from medlim.ui.mammography import change_rows, history_figure, history_values

    def stored(date: str, side: str, view: str, tam: int, *, x: float = 100.0, version: str = "1"):
        image = SimpleNamespace(file_name=f"{side}{view}.dcm", patient_key="K", study_date=date, view=view,
                                laterality=side)  # fmt: skip
        return SimpleNamespace(image=image, weights_name="w", weights_version=version, threshold=0.5, x=x,
                               tam_x=tam, breast_area=1000)  # fmt: skip

    rows = [
        stored("2018-01-01", "L", "CC", 10), stored("2018-01-01", "L", "MLO", 12),
        stored("2019-01-01", "L", "CC", 40), stored("2019-01-01", "L", "MLO", 42),
        stored("2019-01-01", "L", "CC", 99, x=120.0), stored("2019-01-01", "L", "CC", 99, version="2"),
    ]  # fmt: skip
    values = history_values(rows, weights_name="w", weights_version="1", threshold=0.5)
    assert len(values) == 4  # other X and other version left out
    readouts = [ViewReadout(v["patient_key"], v["study_date"], v["laterality"], v["view"], v["tam_x"],
                            v["breast_area"]) for v in values]  # fmt: skip
    exams = group_exams(readouts)
    changes = longitudinal_changes(exams)
    # Totals 0.022 → 0.082: Δ = 0.060 > noise max(|0.010 − 0.012|, |0.040 − 0.042|) = 0.002, so real.
    assert changes[0].delta == pytest.approx(0.060) and changes[0].is_real is True
    figure = history_figure(exams, changes)
    names = [trace.name for trace in figure.data]
    assert names == ["LCC", "LMLO", "Exam: Σ TAM_100 / breast area", "Change: real change"]
    assert list(figure.data[2].y) == pytest.approx([0.022, 0.082])
    assert list(figure.data[3].x) == ["2019-01-01"]
    assert change_rows(changes)[0]["Flag"] == "real change"


def test_report_has_no_identifying_fields_and_names_the_weights(
    phantom_dicom: Path, test_registry: Path
) -> None:
    from medlim.core.io import read_image
    from medlim.core.weights import Registry
    from medlim.mammography.analysis import analyse_mammogram, load_bac_model, requantify
    from medlim.ui.mammography import AnalysedView, mask_png, report_csv, report_json, report_records

    bac_model = load_bac_model("scunet-bac", registry=Registry.load(test_registry), device="cpu")
    record = read_image(phantom_dicom.read_bytes(), name=phantom_dicom.name)
    analysis = analyse_mammogram(record, bac_model)
    view = AnalysedView(analysis, requantify(analysis, threshold=0.0, x=100), record, "a" * 64)
    records = report_records([view], bac_model)
    assert records[0]["am"] == view.metrics.am and records[0]["threshold"] == 0.0
    assert records[0]["image"] == "LCC" and records[0]["preset"] == "thesis"
    assert records[0]["weights"] == "scunet-bac v0-test"
    text = report_csv(records).decode() + report_json(records, bac_model=bac_model, x=100.0).decode()
    for identifying in ("PHANTOM-0001", "Phantom^0001", phantom_dicom.name):
        assert identifying not in text
    document = json.loads(report_json(records, bac_model=bac_model, x=100.0))
    assert document["weights"]["name"] == "scunet-bac" and document["weights"]["preset"] == "thesis"

    import cv2

    mask = cv2.imdecode(np.frombuffer(mask_png(analysis, threshold=0.0), np.uint8), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (1024, 832) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    assert int((mask == 255).sum()) == view.metrics.am


def test_expand_uploads_reads_zip_members_in_memory() -> None:
    from medlim.errors import InputError
    from medlim.ui.mammography import expand_uploads

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("exam/LCC.dcm", b"dicom")
        archive.writestr("exam/LCC_bac.png", b"mask")
        archive.writestr("exam/notes.txt", b"text")
        archive.writestr("__MACOSX/exam/._LCC.dcm", b"fork")
    files = expand_uploads([("study.zip", buffer.getvalue()), ("RCC.dcm", b"r")])
    assert files == [("study.zip/exam/LCC.dcm", b"dicom"), ("RCC.dcm", b"r")]
    with pytest.raises(InputError, match="bad.zip"):
        expand_uploads([("bad.zip", b"not a zip")])


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


def test_zip_bomb_in_a_batch_upload_is_refused_before_it_is_read() -> None:
    from medlim.errors import ArchiveBudgetError
    from medlim.ui.mammography import expand_uploads

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("exam/LCC.dcm", bytes(200 << 20))  # 200 MiB of zeros, ~200 KB compressed
    with pytest.raises(ArchiveBudgetError, match="MEDLIM_ZIP_MAX_RATIO") as caught:
        expand_uploads([("exam.zip", buffer.getvalue())])
    assert caught.value.message.startswith("exam.zip")


def test_downloads_name_an_unlabelled_view_by_its_pseudonymous_label(phantom_dicom: Path, test_registry: Path) -> None:
    import dataclasses

    from medlim.core.io import read_image
    from medlim.core.io.pseudonym import file_label
    from medlim.core.weights import Registry
    from medlim.mammography.analysis import analyse_mammogram, load_bac_model, requantify
    from medlim.ui.mammography import AnalysedView, report_records

    bac_model = load_bac_model("scunet-bac", registry=Registry.load(test_registry), device="cpu")
    data = phantom_dicom.read_bytes()
    record = read_image(data, name="SMITH_ANN_export.dcm")
    analysis = dataclasses.replace(analyse_mammogram(record, bac_model), view=None, laterality=None,
                                   name="SMITH_ANN_export.dcm")
    label = file_label("SMITH_ANN_export.dcm", data=data)
    view = AnalysedView(analysis, requantify(analysis, threshold=0.5, x=100), record, "a" * 64, label)
    assert view.label == "SMITH_ANN_export.dcm"  # on screen, in the user's own session
    assert view.download_label == label and report_records([view], bac_model)[0]["image"] == label


def test_batch_tab_quantifies_a_zip_like_the_cli(
    phantom_dicom: Path, test_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    recorded_downloads: list[dict],
) -> None:
    from medlim.core.store import list_bac_results, open_store
    from medlim.core.weights import Registry
    from medlim.mammography.analysis import load_bac_model
    from medlim.mammography.batch import quantify_files

    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(tmp_path / "absent"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("study/LCC.dcm", phantom_dicom.read_bytes())
        archive.writestr("study/broken.dcm", b"\x00" * 128 + b"DICM" + b"\x02\x00")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.file_uploader(key="bac_batch_upload").upload("study.zip", buffer.getvalue(), "application/zip").run()
    at.number_input(key="bac_batch_threshold").set_value(0.0).run()
    at.button(key="bac_batch_run").click().run()
    assert not at.exception and not at.error
    table = at.dataframe[-1].value
    assert list(table["file"]) == ["study.zip/study/LCC.dcm", "study.zip/study/broken.dcm"]
    assert list(table["ok"]) == [True, False]
    # issue 14: names are shown in this session, but the downloaded CSV carries pseudonymous labels
    from medlim.core.io.pseudonym import file_label

    (csv_offer,) = [offer for offer in recorded_downloads if offer["file_name"] == "bac_batch.csv"][-1:]
    text = csv_offer["data"].decode()
    assert "study.zip" not in text and "broken.dcm" not in text and "LCC.dcm" not in text
    assert file_label("study.zip/study/LCC.dcm", data=phantom_dicom.read_bytes()) in text
    assert "1 could not be analysed" in at.markdown[-1].value or any(
        "1 could not be analysed" in m.value for m in at.markdown
    )
    # The CLI's function on the same bytes gives the same numbers.
    bac_model = load_bac_model("scunet-bac", registry=Registry.load(test_registry), device="cpu")
    (cli,) = quantify_files([("LCC.dcm", phantom_dicom.read_bytes())], bac_model, threshold=0.0)
    for key in ("pm", "am", "sim", "tam_x", "tsim_x", "breast_area", "am_mm2"):
        assert table[key].iloc[0] == pytest.approx(cli.values[key]), key
    assert len(list_bac_results(open_store())) == 1  # saved once (the broken file is not)


def test_png_without_view_gets_view_and_laterality_from_the_reader(
    test_registry: Path, tmp_path: Path, count_inference: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(tmp_path / "absent"))
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

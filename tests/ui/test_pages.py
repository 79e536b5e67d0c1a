"""AppTest tests of the app shell and its pages (run headless, in-process)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60  # first runs import torch / plotly


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def samples_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A samples folder with one 8-bit gradient PNG and one damaged 'DICOM' file."""
    folder = tmp_path / "samples"
    folder.mkdir()
    gradient = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (32, 1))  # 32 x 64, values 0..252
    (folder / "gradient.png").write_bytes(_png_bytes(gradient))
    (folder / "damaged.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10")
    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(folder))
    return folder


def _table_values(at: AppTest) -> dict[str, str]:
    frame = at.table[0].value
    return dict(zip(frame["Field"], frame["Value"]))


def test_app_opens_on_home() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.title[0].value == "medlim"


def test_home_page_says_research_use_device_and_models() -> None:
    at = AppTest.from_file(str(ROOT / "pages" / "home.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "Research use only" in at.info[0].body
    device = at.metric[0]
    assert device.label == "Compute device"
    assert device.value.startswith(("CPU", "CUDA"))
    assert at.subheader[0].value == "Models"


def test_viewer_without_input_invites_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(tmp_path / "absent"))
    at = AppTest.from_file(str(ROOT / "pages" / "viewer.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "Upload one or more images" in at.info[0].body
    assert not at.error


def test_viewer_shows_a_bundled_sample_and_rewindows(samples_dir: Path) -> None:
    at = AppTest.from_file(str(ROOT / "pages" / "viewer.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    at.multiselect(key="viewer_samples").set_value(["gradient.png"]).run()
    assert not at.exception and not at.error
    values = _table_values(at)
    assert values["Format"] == "PNG"
    assert values["Size (width × height)"] == "64 × 32 px"
    assert values["Pixel spacing"].startswith("not recorded")
    sliders = {slider.label: slider for slider in at.slider}
    centre, width = sliders["Window centre (level)"], sliders["Window width"]
    assert (centre.value, width.value) == (126.0, 252.0)  # full range 0..252
    width.set_value(20.0).run()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 2  # image and histogram


def test_viewer_reports_a_damaged_file_and_still_shows_the_others(samples_dir: Path) -> None:
    at = AppTest.from_file(str(ROOT / "pages" / "viewer.py"), default_timeout=TIMEOUT).run()
    at.multiselect(key="viewer_samples").set_value(["damaged.dcm", "gradient.png"]).run()
    assert not at.exception
    assert len(at.error) == 1
    assert at.error[0].body.startswith("**damaged.dcm:**")
    assert len(at.table) == 1  # the PNG is still shown


def test_viewer_upload(samples_dir: Path) -> None:
    at = AppTest.from_file(str(ROOT / "pages" / "viewer.py"), default_timeout=TIMEOUT).run()
    grey16 = (np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) * 500).astype(np.uint16)
    at.file_uploader(key="viewer_upload").upload("scan.png", _png_bytes(grey16), "image/png").run()
    assert not at.exception and not at.error
    values = _table_values(at)
    assert values["File"] == "scan.png"
    assert values["Size (width × height)"] == "10 × 12 px"


def test_home_without_models_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(tmp_path))  # no manifest: an empty registry
    at = AppTest.from_file(str(ROOT / "pages" / "home.py"), default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    assert any("No models are registered yet" in caption.value for caption in at.caption)


def test_home_with_a_broken_manifest_shows_a_medlim_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "pages" / "home.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert len(at.error) == 1
    assert at.error[0].body.startswith("**Weights registry:**")
    assert "medlim weights list" in at.error[0].body


def test_viewer_opens_a_bundled_dicom_sample() -> None:
    samples = sorted((ROOT / "data_samples").rglob("*.dcm"))
    if not samples:
        pytest.skip("no bundled DICOM samples in data_samples/")
    label = samples[0].relative_to(ROOT / "data_samples").as_posix()
    at = AppTest.from_file(str(ROOT / "pages" / "viewer.py"), default_timeout=TIMEOUT).run()
    at.multiselect(key="viewer_samples").set_value([label]).run()
    assert not at.exception and not at.error
    values = _table_values(at)
    assert values["Format"] == "DICOM"
    assert "Patient" not in " ".join(v for k, v in values.items() if k != "Patient key (pseudonymous)")


def _steatosis_fields(version: str, *, default: bool = False) -> dict:
    return {
        "name": "maskrcnn-steatosis", "version": version, "task": "steatosis-instance-segmentation",
        "architecture": "maskrcnn-steatosis",
        "architecture_kwargs": {"backbone": "resnet10", "detections_per_image": 40}, "preset": "rgb-unit",
        "input_contract": {"channels": 3, "size": None, "dtype": "float32", "range": [0.0, 1.0]},
        "output_type": "probability", "thresholds": {"mask": 0.5, "score": 0.5},
        "params": {"tile": 1024, "overlap": 128}, "default": default,
        "description": f"droplet model {version},  trained\non test tiles" if version == "2" else "",
    }


@pytest.fixture
def two_registries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A shipped registry with steatosis versions 1 and 2 (2 the default) and a user registry with version 3."""
    import torch

    from medlim.core.weights import Registries, Registry, save_weights
    from medlim.microscopy.steatosis.network import build_steatosis_maskrcnn

    torch.manual_seed(0)
    state = build_steatosis_maskrcnn().eval().state_dict()
    shipped, user = tmp_path / "weights", tmp_path / "models"
    save_weights(Registry.load(shipped), _steatosis_fields("1"), state)
    save_weights(Registry.load(shipped), _steatosis_fields("2", default=True), state)
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(shipped))
    monkeypatch.setenv("MEDLIM_MODELS_DIR", str(user))
    monkeypatch.setenv("MEDLIM_DEVICE", "cpu")
    fields = {k: v for k, v in _steatosis_fields("3").items() if k not in ("version", "default")}
    assert Registries.load().register(fields, state).label == "maskrcnn-steatosis@3"
    return shipped, user


def test_home_lists_both_registries_with_their_source_and_default(two_registries: tuple[Path, Path]) -> None:
    at = AppTest.from_file(str(ROOT / "pages" / "home.py"), default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    frame = at.table[0].value
    rows = {(r["Model"], r["Version"]): r for r in frame.to_dict("records")}
    assert set(rows) == {("maskrcnn-steatosis", "1"), ("maskrcnn-steatosis", "2"), ("maskrcnn-steatosis", "3")}
    assert [rows[("maskrcnn-steatosis", v)]["Registry"] for v in ("1", "2", "3")] == ["shipped", "shipped", "yours"]
    assert [rows[("maskrcnn-steatosis", v)]["Task default"] for v in ("1", "2", "3")] == ["", "yes", ""]


def test_steatosis_picker_opens_on_the_default_and_keeps_a_choice_across_pages(
    two_registries: tuple[Path, Path],
) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
    at.switch_page("pages/steatosis.py").run()
    assert not at.exception and not at.error
    picker = at.selectbox(key="steatosis_model")
    assert picker.value == "maskrcnn-steatosis@2"  # the shipped default, not the highest version
    assert picker.options[:2] == ["maskrcnn-steatosis@1", "maskrcnn-steatosis@2 (default)"]
    assert picker.options[2].startswith("maskrcnn-steatosis@3 (yours) · ")  # a user's model: with its date
    # under the picker, what the chosen model is: the manifest's description in one line, or its name
    assert "shipped: droplet model 2, trained on test tiles" in [c.value for c in at.caption]
    picker.set_value("maskrcnn-steatosis@3").run()  # your own model loads from the user registry
    assert not at.exception and not at.error
    assert "yours: maskrcnn-steatosis@3" in [c.value for c in at.caption]
    at.switch_page("pages/home.py").run()
    at.switch_page("pages/steatosis.py").run()
    assert not at.exception and not at.error
    assert at.selectbox(key="steatosis_model").value == "maskrcnn-steatosis@3"


@pytest.mark.parametrize("suffix", [".dcm", ".png"])
def test_viewer_metadata_equals_what_image_info_prints(suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 17: every number the viewer shows for a file equals ``medlim image info --jsonl`` for it."""
    import json

    from medlim.cli import main

    samples = sorted((ROOT / "data_samples").rglob(f"*{suffix}"))
    samples = [s for s in samples if not s.name.endswith(("_bac.png", "_mask.png", "_labels.png", "_truth.png"))]
    if not samples:
        pytest.skip(f"no bundled {suffix} samples")
    sample = samples[0]
    at = AppTest.from_file(str(ROOT / "pages" / "viewer.py"), default_timeout=TIMEOUT).run()
    at.multiselect(key="viewer_samples").set_value([sample.relative_to(ROOT / "data_samples").as_posix()]).run()
    assert not at.exception and not at.error
    shown = _table_values(at)
    assert main(["image", "info", str(sample), "--jsonl"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    height, width = row["shape"][:2]
    assert shown["Size (width × height)"].startswith(f"{width} × {height} px")
    for field, key in (("Modality", "modality"), ("View", "view"), ("Laterality", "laterality"),
                       ("Study date", "study_date"), ("Patient key (pseudonymous)", "patient_key"),
                       ("Presentation intent", "presentation_intent")):
        assert shown[field] == ("—" if row[key] in (None, "") else str(row[key])), field
    assert shown["Bits stored"] == str(row["bits_stored"])
    assert shown["Photometric interpretation"] == row["photometric"]
    assert shown["Frame"].endswith(f"of {row['frames']}")
    if row["pixel_spacing_mm"] is None:
        assert shown["Pixel spacing"].startswith("not recorded")
    else:
        assert shown["Pixel spacing"].startswith("{:.4f} × {:.4f} mm".format(*row["pixel_spacing_mm"]))
    warnings = [value for field, value in zip(at.table[0].value["Field"], at.table[0].value["Value"]) if field == "Warning"]
    assert warnings == row["warnings"]

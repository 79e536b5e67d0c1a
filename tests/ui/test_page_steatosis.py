"""The liver steatosis page (``pages/steatosis.py``) and its helpers (``medlim.ui.steatosis``).

AppTest runs the page on a bundled H&E sample with a randomly initialised
Mask R-CNN (seed 0) saved into a temporary registry, so no trained weights
are needed: its detections are arbitrary but real objects, which is enough to
check the plumbing — detections run once, sliders only re-apply cutoffs, the
numbers are the library's, presets save and load.
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


def register_test_model(directory: Path) -> None:
    """An untrained steatosis Mask R-CNN (seed 0) as ``maskrcnn-steatosis:0-test``."""
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.microscopy.steatosis.network import build_steatosis_maskrcnn

    torch.manual_seed(0)
    fields = {
        "name": "maskrcnn-steatosis", "version": "0-test", "task": "steatosis-instance-segmentation",
        "architecture": "maskrcnn-steatosis", "architecture_kwargs": {"backbone": "resnet10", "detections_per_image": 40}, "preset": "rgb-unit",
        "input_contract": {"channels": 3, "size": None, "dtype": "float32", "range": [0.0, 1.0]},
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


def test_sample_sliders_presets_and_downloads(page_env: Path, monkeypatch: pytest.MonkeyPatch,
                                             recorded_downloads: list[dict]) -> None:
    from medlim.microscopy.steatosis import analysis as steatosis_analysis

    calls: list[int] = []
    original = steatosis_analysis.analyse_image
    monkeypatch.setattr(steatosis_analysis, "analyse_image", lambda *a, **k: calls.append(1) or original(*a, **k))

    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    sample = at.selectbox(key="steatosis_sample")
    assert sample.options == ["he_00000_image.png", "he_00001_image.png"]
    sample.set_value("he_00001_image.png").run()
    assert not at.exception and not at.error
    assert len(calls) == 1
    kept, detected = (int(v) for v in _metric(at, "Droplets kept").split(" / "))
    assert detected > 0 and 0 <= kept <= detected
    assert _metric(at, "NASH-CRN grade").startswith("S")
    assert any("preset **Thesis defaults**" in m.value for m in at.markdown)
    # issue 14: downloads carry the image's pseudonymous label, never its file name
    import json

    from medlim.core.io.pseudonym import file_label

    label = file_label("he_00001_image.png",
                       data=(ROOT / "data_samples" / "steatosis" / "he_00001_image.png").read_bytes())
    offered = {offer["file_name"]: offer["data"] for offer in recorded_downloads}
    stem = Path(label).stem
    assert set(offered) == {f"{stem}_droplets.csv", f"{stem}_droplets.geojson", f"{stem}_steatosis.json"}
    assert json.loads(offered[f"{stem}_steatosis.json"])["file"] == label
    assert not any("he_00001" in str(data) for data in offered.values())

    # Moving the score slider to 1 discards everything without re-detection.
    at.slider(key="steatosis_min_score").set_value(1.0).run()
    assert not at.exception
    assert _metric(at, "Droplets kept") == f"0 / {detected}"
    assert _metric(at, "Steatosis (% of tissue)") == "0.0 %"
    assert _metric(at, "NASH-CRN grade").startswith("S0")
    assert len(calls) == 1

    # Save the cutoffs as a preset, go back to the thesis defaults, then load the preset.
    at.text_input(key="steatosis_preset_name").input("strict").run()
    at.button(key="steatosis_preset_save").click().run()
    assert not at.exception
    assert "strict" in at.selectbox(key="steatosis_preset").options
    assert at.selectbox(key="steatosis_preset").value == "strict"
    assert at.slider(key="steatosis_min_score").value == 1.0
    assert any("Saved preset" in s.body for s in at.success)
    at.selectbox(key="steatosis_preset").set_value("Thesis defaults").run()
    assert at.slider(key="steatosis_min_score").value == 0.5
    at.selectbox(key="steatosis_preset").set_value("strict").run()
    assert at.slider(key="steatosis_min_score").value == 1.0
    assert any("preset **strict**" in m.value for m in at.markdown)
    assert len(calls) == 1


def test_overlay_marks_discarded_droplets() -> None:
    from medlim.ui.steatosis import DISCARDED_RGB, overlay_image

    image = np.full((40, 40, 3), 200, np.uint8)
    labels = np.zeros((40, 40), np.int32)
    labels[5:15, 5:15] = 1
    labels[25:35, 25:35] = 2
    out = overlay_image(image, labels, np.array([True, False]))
    assert out.shape == (40, 40, 3) and out.dtype == np.uint8
    assert not np.array_equal(out[10, 10], image[10, 10])  # kept: filled
    assert np.array_equal(out[30, 30], image[30, 30])  # discarded: inside untouched
    assert tuple(out[25, 30]) == DISCARDED_RGB  # … but outlined
    assert tuple(out[23, 30]) == DISCARDED_RGB  # … and boxed


def test_readout_bands() -> None:
    from medlim.microscopy.steatosis.droplets import CutoffResult
    from medlim.ui.steatosis import readout

    result = CutoffResult(kept=np.array([True, False]), means={}, detected=2, kept_count=1, kept_area=35.0,
                          steatosis_fraction=0.35)
    values = readout(result)
    assert values["steatosis_percent"] == 35.0
    assert values["nash_crn"].startswith("S2") and values["donor"] == "≥ 30 %"


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

"""AppTest tests of the out-of-distribution page (pages/ood.py)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "ood.py")
TIMEOUT = 90


def _registry(directory: Path) -> Path:
    """Random-weight TEND and CVAD detectors (ID = hand) with a fixed threshold 0.3."""
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.curation.ood.nets import build_cvad, build_tend

    torch.manual_seed(0)
    registry = Registry(directory)
    for name, architecture, model, kwargs, params in (
        ("tend-test", "tend", build_tend(width=2, embedding=16), {"width": 2, "embedding": 16},
         {"weight": 0.5, "margin": 150.0}),
        ("cvad-test", "cvad", build_cvad(width=2, latent=16), {"width": 2, "latent": 16},
         {"rec_min": 0.0, "rec_max": 0.1, "data": {"seed": 1, "variability": 0.7}}),
    ):
        save_weights(registry, {
            "name": name, "version": "1", "task": "ood-detection", "architecture": architecture,
            "architecture_kwargs": {"channels": 1, "input_size": 64, **kwargs}, "preset": "ood-grey",
            "input_contract": {"channels": 1, "size": [64, 64]}, "thresholds": {"score": 0.3},
            "params": {"input_size": 64, "id_classes": ["hand"], **params}, "description": f"{name} for tests",
        }, model.eval().state_dict())
    return directory


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = _registry(tmp_path / "weights")
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(directory))
    return directory


def test_without_detectors_the_page_says_how_to_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "medlim train tend" in at.info[0].value


def test_generated_phantoms_are_scored_with_plots_and_galleries(weights: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="ood_detector").value == "tend-test@1"
    at.number_input(key="ood_n").set_value(2).run()
    table = at.dataframe[0].value
    assert len(table) == 14  # 2 per class × 7 classes
    assert {"file", "score", "threshold", "is_ood", "p", "d", "label"} <= set(table.columns)
    assert (table["label"] == "ID").sum() == 2
    slider = at.slider(key="ood_threshold")
    assert slider.value == pytest.approx(0.3)  # the calibrated threshold
    assert (table["is_ood"] == (table["score"] >= 0.3)).all()
    subheaders = [s.value for s in at.subheader]
    assert any("Fig. 4.3" in s for s in subheaders) and "ROC" in subheaders and "Galleries" in subheaders
    assert len(at.get("plotly_chart")) == 2
    # moving the threshold above every score: nothing is OOD any more
    slider.set_value(slider.max).run()
    assert not at.dataframe[0].value["is_ood"].any()
    assert at.metric[1].value == "0"


def test_cvad_has_no_distance_plot(weights: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.selectbox(key="ood_detector").set_value("cvad-test@1").run()
    at.number_input(key="ood_n").set_value(1).run()
    assert not at.exception
    assert {"rec", "dis"} <= set(at.dataframe[0].value.columns)
    assert any("needs TEND's distance" in c.value for c in at.caption)


def test_phantom_variability_defaults_to_the_detectors_training_data(weights: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.number_input(key="ood_n").set_value(1).run()
    def variability() -> float:  # the widget's key follows the detector, so it is found by its label
        return next(n for n in at.number_input if n.label == "Within-site variation").value

    assert variability() == 0.0  # tend-test records none: fixed acquisition
    at.selectbox(key="ood_detector").set_value("cvad-test@1").run()
    assert not at.exception and variability() == 0.7


def test_upload_of_a_zip_with_folder_labels(weights: Path) -> None:
    from medlim.phantoms.radiograph import generate_radiograph

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for k, part in enumerate(("hand", "shoulder", "hand")):
            image = generate_radiograph(seed=1, index=k, body_part=part, size=64).image
            png = io.BytesIO()
            Image.fromarray((image * 255).astype(np.uint8)).save(png, format="PNG")
            archive.writestr(f"{part}/{k}.png", png.getvalue())
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.radio(key="ood_source").set_value("Upload").run()
    assert not at.exception
    assert "Upload images" in at.info[0].value  # nothing uploaded yet
    # AppTest cannot fill a file uploader (the browser test does); check the zip path the page uses
    from medlim.ui.mammography import expand_uploads

    members = expand_uploads([("batch.zip", buffer.getvalue())])
    names = sorted(name for name, _ in members)
    assert names == ["batch.zip/hand/0.png", "batch.zip/hand/2.png", "batch.zip/shoulder/1.png"]
    assert [Path(n).parent.name for n in names] == ["hand", "hand", "shoulder"]  # the page's label rule

"""AppTest tests of the out-of-distribution page (pages/ood.py).

The page and ``medlim ood score|evaluate`` call the same service
(:mod:`medlim.curation.ood.service`); the tests check that every number the page
shows for a set of images equals what the command line prints for them.
"""

from __future__ import annotations

import ast
import io
import json
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
    """Random-weight TEND (the task default) and CVAD detectors (ID = hand) with a fixed threshold 0.3."""
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.curation.ood.nets import build_cvad, build_tend

    torch.manual_seed(0)
    registry = Registry(directory)
    for name, architecture, model, kwargs, params, default in (
        ("tend-test", "tend", build_tend(width=2, embedding=16), {"width": 2, "embedding": 16},
         {"weight": 0.5, "margin": 150.0}, True),
        ("cvad-test", "cvad", build_cvad(width=2, latent=16), {"width": 2, "latent": 16},
         {"rec_min": 0.0, "rec_max": 0.1, "data": {"seed": 1, "variability": 0.7}}, False),
    ):
        save_weights(registry, {
            "name": name, "version": "1", "task": "ood-detection", "architecture": architecture,
            "architecture_kwargs": {"channels": 1, "input_size": 64, **kwargs}, "preset": "ood-grey",
            "input_contract": {"channels": 1, "size": [64, 64]}, "thresholds": {"score": 0.3},
            "params": {"input_size": 64, "id_classes": ["hand"], **params}, "description": f"{name} for tests",
            "default": default,
        }, model.eval().state_dict())
    return directory


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = _registry(tmp_path / "weights")
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(directory))
    return directory


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((np.clip(array, 0, 1) * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _mura_folder(root: Path, parts: dict[str, str]) -> Path:
    """``root/<folder>/patient<k>/image<k>.png`` radiograph phantoms, MURA style (``{folder: body part}``)."""
    from medlim.phantoms.radiograph import generate_radiograph

    for folder, part in parts.items():
        for k in range(3):
            path = root / folder / f"patient{k}" / f"image{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_png(generate_radiograph(seed=5, index=k, body_part=part, size=64).image))
    return root


def _zip_of(root: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(root.rglob("*.png")):
            archive.writestr(path.relative_to(root).as_posix(), path.read_bytes())
    return buffer.getvalue()


def _metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def _upload(at: AppTest, archive: bytes, *, labels: bool) -> AppTest:
    at.radio(key="ood_source").set_value("Upload").run()
    at.file_uploader(key="ood_upload").upload("batch.zip", archive, "application/zip").run()
    if labels:
        at.checkbox(key="ood_labels").check().run()
    return at


def _cli_score(weights: Path, folder: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict]:
    from medlim.cli import main

    capsys.readouterr()
    assert main(["ood", "score", "--detector", "tend-test@1", "--weights-dir", str(weights), str(folder),
                 "--jsonl", *extra]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_without_detectors_the_page_says_how_to_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "medlim train tend" in at.info[0].value


def test_generated_phantoms_are_scored_with_plots_and_galleries(weights: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="ood_detector").value == "tend-test@1"  # the task default
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
    assert _metrics(at)["Predicted OOD"] == "0"


def test_every_chart_has_axis_titles_and_no_red_green_pair(weights: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.number_input(key="ood_n").set_value(2).run()
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    for chart in charts:
        layout = json.loads(chart.proto.spec)["layout"]
        axes = [value for name, value in layout.items() if name.startswith(("xaxis", "yaxis"))]
        assert axes and all(axis.get("title", {}).get("text") for axis in axes), layout
        colours = {str(trace.get("marker", {}).get("color", "")).lower()
                   for trace in json.loads(chart.proto.spec)["data"]}
        assert not colours & {"#2e9d4f", "#d62728", "green", "red"}


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


def test_phantom_numbers_equal_ood_evaluate(weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medlim.cli import main

    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.number_input(key="ood_n").set_value(2).run()
    shown = _metrics(at)
    assert main(["ood", "evaluate", "--detector", "tend-test", "--weights-dir", str(weights), "--n", "2",
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert shown["Images"] == str(printed["n_id"] + printed["n_ood"]) == "14"
    assert shown["AUROC"] == f"{printed['auroc']:.3f}"
    flagged = round(printed["stored_tpr"] * printed["n_ood"] + printed["stored_fpr"] * printed["n_id"])
    assert shown["Predicted OOD"] == str(flagged)


def test_upload_with_mura_folders_equals_the_cli(weights: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    folder = _mura_folder(tmp_path / "mura", {"XR_HAND": "hand", "XR_SHOULDER": "shoulder", "XR_ELBOW": "elbow"})
    at = _upload(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), _zip_of(folder), labels=True)
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    shown = _metrics(at)
    rows = _cli_score(weights, folder, capsys, "--labels-from-folders")
    summary = rows.pop()["summary"]
    assert (table["label"] == "ID").sum() == 3 and summary["n_id"] == 3  # XR_HAND counts as class 'hand'
    assert summary["id_folders"] == [["XR_HAND", "hand"]]
    by_member = {row["file"].split("batch.zip/", 1)[1]: row for row in table.to_dict("records")}
    for row in rows:
        page_row = by_member[Path(row["file"]).relative_to(folder).as_posix()]
        assert page_row["score"] == pytest.approx(row["score"], rel=1e-9, abs=1e-12)
        assert (page_row["is_ood"], page_row["label"]) == (row["is_ood"], row["label"])
    assert shown == {"Images": str(summary["images"]), "Predicted OOD": str(summary["predicted_ood"]),
                     "AUROC": f"{summary['auroc']:.3f}"}
    warnings = [w.value for w in at.warning]
    assert warnings == summary["notes"]  # the same notes (an AUROC below 0.5 gets its hint on both)
    if summary["auroc"] < 0.5:
        assert any("below 0.5" in note for note in warnings)


def test_upload_where_no_folder_names_the_class_says_so(weights: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder = _mura_folder(tmp_path / "mura", {"XR_SHOULDER": "shoulder", "XR_ELBOW": "elbow"})
    at = _upload(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), _zip_of(folder), labels=True)
    assert not at.exception
    assert _metrics(at)["AUROC"] == "—"
    assert any("no folder matched class 'hand'" in w.value and "AUROC is not meaningful" in w.value
               for w in at.warning)
    summary = _cli_score(weights, folder, capsys, "--labels-from-folders")[-1]["summary"]
    assert summary["auroc"] is None and "no folder matched class 'hand'" in summary["notes"][0]


def test_the_detector_choice_sticks_across_pages(weights: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A chosen detector is kept after another page was shown; the user's own default opens first."""
    import torch

    from medlim.core.weights import Registries
    from medlim.curation.ood.nets import build_tend

    monkeypatch.setenv("MEDLIM_MODELS_DIR", str(tmp_path / "models"))
    registries = Registries.load()
    entry = registries.register({
        "name": "tend-test", "task": "ood-detection", "architecture": "tend",
        "architecture_kwargs": {"channels": 1, "input_size": 64, "width": 2, "embedding": 16}, "preset": "ood-grey",
        "input_contract": {"channels": 1, "size": [64, 64]}, "thresholds": {"score": 0.3},
        "params": {"input_size": 64, "id_classes": ["hand"], "weight": 0.5, "margin": 150.0},
    }, build_tend(width=2, embedding=16).eval().state_dict())
    assert entry.label == "tend-test@2"
    registries.set_default("tend-test@2")
    torch.manual_seed(0)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/ood.py").run()
    assert at.selectbox(key="ood_detector").value == "tend-test@2"  # your default wins over the shipped one
    at.selectbox(key="ood_detector").set_value("cvad-test@1").run()
    at.switch_page("pages/home.py").run()
    assert not at.exception and at.title[0].value == "medlim"
    at.switch_page("pages/ood.py").run()
    assert not at.exception
    assert at.selectbox(key="ood_detector").value == "cvad-test@1"


def test_the_page_imports_nothing_from_the_mammography_room() -> None:
    tree = ast.parse(Path(PAGE).read_text(encoding="utf-8"))
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {m for m in modules if m and m.startswith("medlim.ui.mammography")}


@pytest.fixture
def stats_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A random-weight TEND (ID = hand) carrying acquisition statistics, as `medlim train tend --data` stores them."""
    from tests.ood_helpers import save_tend_with_statistics

    directory = save_tend_with_statistics(tmp_path / "weights", name="tend-stats", description="tend-stats for tests",
                                          default=True)
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(directory))
    return directory


def test_a_detector_with_acquisition_statistics_scores_fused_unless_switched_off(
        stats_weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medlim.cli import main

    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.number_input(key="ood_n").set_value(2).run()
    assert not at.exception and at.checkbox(key="ood_stats").value is True
    for switch in ("on", "off"):
        if switch == "off":
            at.checkbox(key="ood_stats").uncheck().run()
            assert not at.exception
        shown = _metrics(at)
        assert main(["ood", "evaluate", "--detector", "tend-stats", "--weights-dir", str(stats_weights), "--n", "2",
                     "--stats", switch, "--json"]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert shown["AUROC"] == f"{printed['auroc']:.3f}", switch
        flagged = round(printed["stored_tpr"] * printed["n_ood"] + printed["stored_fpr"] * printed["n_id"])
        assert shown["Predicted OOD"] == str(flagged), switch
    stored = json.loads((stats_weights / "manifest.json").read_text())["models"][0]["params"]["acquisition"]
    assert printed["stored_threshold"] == pytest.approx(0.3)  # off: the detector's own threshold
    assert main(["ood", "evaluate", "--detector", "tend-stats", "--weights-dir", str(stats_weights), "--n", "2",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stored_threshold"] == pytest.approx(stored["threshold"])

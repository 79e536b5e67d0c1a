"""End-to-end smoke: a tiny MedShift run through the library and the command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medlim.curation.shift.classifier import ClassifierConfig
from medlim.curation.shift.data import phantom_image_set, write_image_set
from medlim.curation.shift.detectors import DetectorConfig
from medlim.curation.shift.distance import dataset_otdd
from medlim.curation.shift.pipeline import ShiftConfig, run_shift
from medlim.curation.shift.report import curated_manifest, report_dict, write_outputs

TINY = ShiftConfig(detector=DetectorConfig(input_size=32, epochs=1, head_epochs=1), classifier=ClassifierConfig(epochs=1),
                   k=2, otdd_repeats=2, otdd_max_samples=8, batch_size=5)


@pytest.fixture(scope="module")
def tiny_run():
    import torch

    torch.set_num_threads(1)
    internal = phantom_image_set(seed=11, per_class=6, body_parts=("hand", "elbow"))
    external = phantom_image_set(seed=12, per_class=6, site="mixed", body_parts=("hand", "elbow", "finger"))
    stages: list[tuple[str, int, int]] = []
    result = run_shift(internal, external, TINY, progress=lambda s, d, t: stages.append((s, d, t)))
    return internal, external, result, stages


def test_run_shapes_progress_and_evidence(tiny_run) -> None:
    internal, external, result, stages = tiny_run
    assert len(result.files) == 12 and result.settings["skipped_unknown_class"] == 6  # finger is not internal
    assert set(result.classes) == {"hand", "elbow"} and result.groups.max() <= 1
    assert [r.level for r in result.topk] == [2, 1] and [level for level, _ in result.otdd] == [2, 1]
    assert result.topk[0].count == 12 and result.topk[1].count == int((result.groups == 0).sum())
    # streamed in batches of 5 with progress after each
    assert [s for s in stages if s[0] == "score external"] == [("score external", 5, 12), ("score external", 10, 12),
                                                                 ("score external", 12, 12)]
    truth = np.array([external.sites[external.files.index(f)] != "internal" for f in result.files])
    assert result.evidence["n_shifted"] == int(truth.sum())
    # the lowest group of each class holds that class's lowest scores
    for name in ("hand", "elbow"):
        rows = np.asarray(result.classes) == name
        assert result.scores[rows][result.groups[rows] == 0].max() < result.scores[rows][result.groups[rows] == 1].min()


def test_the_default_run_fuses_the_acquisition_statistics(tiny_run) -> None:
    _, _, result, _ = tiny_run
    assert result.settings["stats"] is True and result.settings["method"] == "medshift-cvad+stats"
    assert set(result.evidence["auroc_parts"]) == {"cvad", "stats"}
    # the table is labelled by what scored the images, never passing the fused score off as CVAD alone
    assert result.evidence["shift_types"]["rows"][0]["detector"] == "medshift-cvad+stats"
    assert set(result.evidence["shift_types_parts"]) == {"cvad", "stats"}


def test_outputs_and_manifest(tiny_run, tmp_path: Path) -> None:
    _, _, result, _ = tiny_run
    paths = write_outputs(result, tmp_path)
    report = json.loads(paths["report"].read_text())
    assert report["series"]["levels"] == [2, 1] and len(report["series"]["otdd_mean"]) == 2
    assert report == json.loads(json.dumps(report_dict(result)))
    with paths["images"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["file", "class", "score", "group"] and len(rows) == 12
    assert paths["histograms"].is_file() and (tmp_path / "plotly.min.js").is_file()
    tags = {rows[0]["file"]: "drop", rows[1]["file"]: "keep"}
    kept = curated_manifest(rows, tags)
    assert len(kept) == 11 and rows[0]["file"] not in {r["file"] for r in kept}
    assert next(r for r in kept if r["file"] == rows[1]["file"])["tag"] == "keep"
    strict = curated_manifest(rows, tags, drop_groups_from=1)
    assert all(int(r["group"]) == 0 or r["tag"] == "keep" for r in strict)


def test_dataset_otdd_of_a_dataset_with_itself_is_zero() -> None:
    a = phantom_image_set(seed=5, per_class=4, body_parts=("hand", "elbow"))
    measured = dataset_otdd(a, a, features="pixels", size=16, max_samples=100, repeats=2)
    result, settings = measured.result, measured.settings
    assert result.mean == pytest.approx(0.0, abs=1e-9) and (result.n_a, result.n_b) == (8, 8)
    b = phantom_image_set(seed=6, per_class=4, site="external", body_parts=("hand", "elbow"))
    other = dataset_otdd(a, b, features="pixels", size=16, max_samples=100, repeats=2).result
    assert other.mean > 0.5 and "exact" in settings["outer"]
    assert measured.to_json()["otdd_mean"] == result.mean and measured.to_json()["features"] == "pixels"


def test_cli_run_tag_export_otdd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from medlim.cli import main

    monkeypatch.setenv("MEDLIM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEDLIM_DATABASE_URL", raising=False)
    internal = write_image_set(phantom_image_set(seed=21, per_class=5, body_parts=("hand", "elbow")),
                               tmp_path / "internal", size=64)
    external = write_image_set(phantom_image_set(seed=22, per_class=4, site="mixed", body_parts=("hand", "elbow")),
                               tmp_path / "external", size=64)
    out = tmp_path / "out"
    assert main(["shift", "run", "--internal", str(internal), "--external", str(external), "--k", "2",
                 "--out", str(out), "--size", "32", "--epochs", "1", "--head-epochs", "1", "--classifier-epochs", "1",
                 "--repeats", "2", "--max-samples", "8", "--dataset", "ext"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["k"] == 2 and summary["levels"] == [2, 1] and len(summary["macro_f1"]) == 2
    assert (out / "report.json").is_file() and (out / "images.csv").is_file()
    assert main(["shift", "tag", "--dataset", "ext", "--group", "1", "--tag", "drop"]) == 0
    dropped = int(capsys.readouterr().out.split()[0])
    manifest = tmp_path / "kept.csv"
    assert main(["shift", "export", "--dataset", "ext", "--out", str(manifest)]) == 0
    with manifest.open() as handle:
        kept = list(csv.DictReader(handle))
    assert len(kept) == 8 - dropped and all(r["group"] == "0" for r in kept)
    capsys.readouterr()
    assert main(["shift", "otdd", str(internal), str(internal), "--size", "16", "--repeats", "2", "--json"]) == 0
    otdd = json.loads(capsys.readouterr().out)
    assert otdd["otdd_mean"] == pytest.approx(0.0, abs=1e-9) and otdd["otdd_std"] == pytest.approx(0.0, abs=1e-9)
    assert (otdd["repeats"], otdd["n_a"], otdd["n_b"], otdd["features"]) == (2, 10, 10, "pixels")
    assert otdd["settings"]["size"] == 16


def _multi_label_set(root: Path, rows: list[tuple[str, int, str]]) -> Path:
    """Write 8×8 constant PNGs (value 0 or 255) under ``root/chest/`` with a ``labels`` manifest column."""
    import cv2

    (root / "chest").mkdir(parents=True)
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "class", "labels"])
        for name, value, labels in rows:
            cv2.imwrite(str(root / "chest" / name), np.full((8, 8), value, np.uint8))
            writer.writerow([f"chest/{name}", "chest", labels])
    return root


def test_cli_otdd_per_class_on_multi_label_data(tmp_path: Path, capsys) -> None:
    from medlim.cli import main

    # pixel features at 8 px: black = 0 ∈ R^64, white = 1 ∈ R^64, ‖black − white‖² = 64
    a = _multi_label_set(tmp_path / "a", [("a1.png", 0, "Effusion|Fracture"), ("a2.png", 255, "Fracture|Nodule")])
    b = _multi_label_set(tmp_path / "b", [("b1.png", 0, "Fracture"), ("b2.png", 255, "Nodule")])
    assert main(["shift", "otdd", str(a), str(b), "--per-class", "--size", "8", "--repeats", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["per_class"]
    assert list(rows) == ["Effusion", "Fracture", "Nodule"] and out["settings"]["labels"] == list(rows)
    # Effusion: A has {black} / has-not {white}; B has-not {black, white}. W2² of {0} or {1} vs {0, 1} = ½·64 = 32,
    # so d(black, black) = d(white, white) = √32 and the crossings √(64 + 32): OTDD = √32
    assert rows["Effusion"]["otdd_mean"] == pytest.approx(np.sqrt(32.0))
    # Fracture: A has {black, white}; B has {black}, has-not {white}: again every W2² = 32 -> √32
    assert rows["Fracture"]["otdd_mean"] == pytest.approx(np.sqrt(32.0))
    # Nodule: both sets have {white} and have-not {black}: matched clouds, identity coupling -> 0
    assert rows["Nodule"]["otdd_mean"] == pytest.approx(0.0, abs=1e-9)
    assert [(r["positives_a"], r["positives_b"]) for r in rows.values()] == [(1, 0), (2, 1), (1, 1)]
    assert all((r["n_a"], r["n_b"], r["repeats"], r["otdd_std"]) == (2, 2, 2, 0.0) for r in rows.values())
    # the text form prints one row per label
    assert main(["shift", "otdd", str(a), str(b), "--per-class", "--size", "8", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["class", "otdd_mean", "otdd_std"]
    assert [line.split()[0] for line in lines[1:4]] == ["Effusion", "Fracture", "Nodule"]
    assert float(lines[2].split()[1]) == pytest.approx(np.sqrt(32.0), rel=1e-5)


def test_per_class_otdd_of_a_single_label_set_uses_its_classes() -> None:
    from medlim.curation.shift.distance import dataset_otdd_per_class

    a = phantom_image_set(seed=5, per_class=3, body_parts=("hand", "elbow"))
    measured = dataset_otdd_per_class(a, a, size=16, max_samples=100, repeats=1)
    assert [item.label for item in measured.labels] == ["elbow", "hand"]
    assert [(item.positives_a, item.positives_b) for item in measured.labels] == [(3, 3), (3, 3)]
    assert all(item.result.mean == pytest.approx(0.0, abs=1e-9) for item in measured.labels)
    assert measured["hand"].positives_a == 3 and list(measured.to_json()["per_class"]) == ["elbow", "hand"]


# ----------------------------------------------------------------------------- issue 17: typed report, one config, replace


def test_report_round_trips_through_json(tiny_run, tmp_path: Path) -> None:
    from medlim.curation.shift.report import ShiftReport

    _, _, result, _ = tiny_run
    report = ShiftReport.from_result(result)
    data = json.loads(json.dumps(report.to_json()))
    again = ShiftReport.from_json(data)
    assert again.to_json() == data
    assert again.levels == [2, 1] and again.otdd_mean == [level.result.mean for level in report.otdd]
    assert again.method == "medshift-cvad" and again.external_source == result.settings["external_source"]
    assert again.internal_scores.keys() == result.internal_scores.keys()
    paths = write_outputs(result, tmp_path)
    assert ShiftReport.from_json(json.loads(paths["report"].read_text())).to_json() == data


def test_run_defaults_are_the_pipelines() -> None:
    from medlim.curation.shift.service import ShiftRunConfig

    config = ShiftRunConfig()
    assert config.shift_config() == ShiftConfig()
    assert (config.epochs, config.head_epochs, config.classifier_epochs, config.otdd_max_samples) == (60, 20, 4, 500)


def test_cli_run_refuses_a_taken_name_unless_replace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from medlim.cli import main
    from medlim.core.store import open_store
    from medlim.core.store.curation import get_scores, set_tags, tag_map

    monkeypatch.setenv("MEDLIM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEDLIM_DATABASE_URL", raising=False)
    tiny = ["--size", "32", "--epochs", "1", "--head-epochs", "1", "--classifier-epochs", "1", "--repeats", "1",
            "--max-samples", "8", "--k", "2", "--dataset", "ext"]
    first = ["shift", "run", "--internal", "phantom:internal:21:5:hand,elbow",
             "--external", "phantom:mixed:22:4:hand,elbow", "--out", str(tmp_path / "one"), *tiny]
    assert main(first) == 0
    url = f"sqlite:///{tmp_path / 'home' / 'medlim.sqlite'}"
    with open_store(url) as store:
        old = {s.file for s in get_scores(store, "ext")}
        set_tags(store, "ext", {min(old): "drop"})
    capsys.readouterr()
    second = ["shift", "run", "--internal", "phantom:internal:21:5:hand,elbow",
              "--external", "phantom:mixed:23:3:hand,elbow", "--out", str(tmp_path / "two"), *tiny]
    assert main(second) == 2
    assert "a run is saved as 'ext' already" in capsys.readouterr().err
    assert not (tmp_path / "two").exists()  # refused before any training
    with open_store(url) as store:
        assert {s.file for s in get_scores(store, "ext")} == old and len(tag_map(store, "ext")) == 1
    assert main([*second, "--replace"]) == 0
    with open_store(url) as store:
        new = {s.file for s in get_scores(store, "ext")}
        assert len(new) == 6 and new != old and tag_map(store, "ext") == {}


def test_cli_show_and_topk_print_the_stored_run(tiny_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys) -> None:
    from medlim.cli import main
    from medlim.core.store import open_store
    from medlim.core.store.curation import set_tags
    from medlim.curation.shift.report import ShiftReport, save_result, topk_table_rows

    _, _, result, _ = tiny_run
    monkeypatch.setenv("MEDLIM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEDLIM_DATABASE_URL", raising=False)
    with open_store(f"sqlite:///{tmp_path / 'home' / 'medlim.sqlite'}") as store:
        save_result(store, result, home=tmp_path / "home", dataset="tiny")
        set_tags(store, "tiny", {result.files[0]: "keep"})
    assert main(["shift", "show", "--dataset", "tiny", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["external_images"], shown["k"], shown["tagged"]) == (12, 2, 1)
    assert sum(g["images"] for g in shown["groups"]) == 12
    assert shown["otdd"]["otdd_mean"] == pytest.approx(result.otdd_series)
    assert main(["shift", "topk", "--dataset", "tiny", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    expected = json.loads(json.dumps(ShiftReport.from_result(result).to_json()))["topk"]
    assert len(table) == len(topk_table_rows(result.topk)) == 2 * (2 + 2)  # 2 levels × (2 classes + macro + weighted)
    assert table[0]["subset"] == "TOP 2" and table[0]["images"] == expected[0]["per_class"][0]["count"]
    assert main(["shift", "show", "--dataset", "unknown"]) == 2

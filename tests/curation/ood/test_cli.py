"""``medlim ood score|evaluate`` and ``medlim train tend`` argument handling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlim.cli import main
from medlim.cli.ood import _id_classes
from medlim.errors import ParameterError


def test_score_jsonl_on_a_folder(ood_registry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "rad"
    assert main(["phantom", "radiograph", "--out", str(data), "--n", "3", "--seed", "1", "--size", "64", "--quiet"]) == 0
    capsys.readouterr()
    code = main(["ood", "score", "--detector", "tend-test", "--weights-dir", str(ood_registry), str(data), "--jsonl"])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3
    assert {"file", "score", "threshold", "is_ood", "p", "d"} <= set(rows[0])
    assert all(r["threshold"] == 0.3 and r["is_ood"] == (r["score"] >= 0.3) for r in rows)
    assert rows[0]["score"] == pytest.approx(0.5 * rows[0]["p"] + 0.5 * rows[0]["d"] / 150.0)


def test_score_cvad_table_and_threshold_override(ood_registry: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "rad"
    main(["phantom", "radiograph", "--out", str(data), "--n", "2", "--seed", "1", "--size", "64", "--quiet"])
    capsys.readouterr()
    code = main(["ood", "score", "--detector", "cvad-test@1", "--weights-dir", str(ood_registry),
                 "--threshold", "-1", str(data)])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["file", "score", "threshold", "is_ood", "rec", "dis"]
    assert all(line.split("\t")[3] == "True" for line in lines[1:])


def test_evaluate_prints_the_protocol(ood_registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ood", "evaluate", "--detector", "ae-test", "--weights-dir", str(ood_registry), "--n", "2", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["setting"] == "one-vs-rest" and report["n_id"] == 2 and report["n_ood"] == 12
    for key in ("auroc", "aupr", "fpr_at_95_tpr", "gmean_threshold", "tpr", "fpr", "diff", "stored_threshold"):
        assert key in report
    assert set(report["transform_accuracy"]) == {"random_cut", "crop_resize", "noise", "blur"}


def test_evaluate_uses_the_detectors_training_variability(ood_registry: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from medlim.curation.ood import data as ood_data

    manifest = ood_registry / "manifest.json"
    content = json.loads(manifest.read_text())
    for entry in content["models"]:
        if entry["name"] == "ae-test":
            entry["params"]["data"] = {"seed": 1, "variability": 0.6}
    manifest.write_text(json.dumps(content))
    seen: list[float] = []
    original = ood_data.phantom_set

    def recording(**kwargs):  # noqa: ANN003, ANN202 - a pass-through spy
        seen.append(kwargs["variability"])
        return original(**kwargs)

    monkeypatch.setattr(ood_data, "phantom_set", recording)
    args = ["ood", "evaluate", "--detector", "ae-test", "--weights-dir", str(ood_registry), "--n", "1"]
    assert main([*args, "--n-shift", "0"]) == 0 and main([*args, "--n-shift", "0", "--variability", "0"]) == 0
    assert seen == [0.6, 0.0]
    seen.clear()  # with shifted phantoms, the side-by-side table's reference images use the same variability
    assert main([*args, "--n-shift", "1"]) == 0 and seen and set(seen) == {0.6}
    capsys.readouterr()


def test_missing_inputs_are_user_errors(ood_registry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ood", "score", "--detector", "tend-test", "--weights-dir", str(ood_registry), str(tmp_path / "none")])
    assert code == 2 and "no such file" in capsys.readouterr().err
    code = main(["ood", "score", "--detector", "nope", "--weights-dir", str(ood_registry), str(tmp_path)])
    assert code == 2


def test_id_class_syntax() -> None:
    assert _id_classes("hand") == ("hand",)
    assert _id_classes("hand, wrist") == ("hand", "wrist")
    assert _id_classes("!hand") == ("finger", "wrist", "forearm", "elbow", "humerus", "shoulder")
    with pytest.raises(ParameterError):
        _id_classes("!knee")


def test_evaluate_prints_the_thesis_tables(ood_registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ood", "evaluate", "--detector", "ae-test@1", "--weights-dir", str(ood_registry), "--n", "2"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ae-test@1: one-vs-rest, ID = hand (2 ID / 12 OOD images)")
    for heading in ("AUROC  AUPR", "Table 4.3", "Table 4.5", "random_cut", "share predicted OOD per class"):
        assert heading in text
    # issue 13: held-out ID phantoms under six named shifts, this detector and its TEND and CVAD companions
    assert "ID images with a shift type" in text and "detectors side by side" in text
    assert main(["ood", "evaluate", "--detector", "ae-test@1", "--weights-dir", str(ood_registry), "--n", "2",
                 "--n-shift", "0"]) == 0
    assert "shift type" not in capsys.readouterr().out  # none asked for


def test_phantom_recipe_refuses_options_of_user_training(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "tend", "--id-class", "hand", "--max-minutes", "1"]) == 2
    assert "--max-minutes apply to training on your folder (--data DIR)" in capsys.readouterr().err


def test_phantom_recipe_registers_in_the_user_registry_at_the_next_free_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped tend-humerus is v3: a phantom run of the same name becomes v4 of the user registry."""
    shipped = Path(__file__).resolve().parents[3] / "weights" / "manifest.json"
    before = shipped.read_bytes()
    code = main(["train", "cvad", "--id-class", "humerus", "--name", "tend-humerus", "--n-train", "4", "--n-calib",
                 "1", "--n-heldout", "1", "--width", "2", "--latent", "16", "--epochs", "1", "--disc-epochs", "1",
                 "--batch-size", "2"])
    assert code == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["registered"] == [{"name": "tend-humerus", "version": "4"}]
    assert set(result["validation"]["tend-humerus"]) >= {"auroc", "threshold"}
    assert shipped.read_bytes() == before
    from medlim.settings import get_settings

    assert (get_settings().models_dir / "tend-humerus-4.safetensors").is_file()
    assert main(["train", "cvad", "--id-class", "humerus", "--name", "tend-humerus", "--version", "3"]) == 2
    assert "already exists in the shipped registry" in capsys.readouterr().err


def _mura(root: Path, folders: dict[str, str], n: int = 3) -> Path:
    """``root/<folder>/patient<k>/image.png`` radiograph phantoms (``{folder: body part}``), MURA style."""
    import cv2

    from medlim.phantoms.radiograph import generate_radiograph

    for folder, part in folders.items():
        for k in range(n):
            path = root / folder / f"patient{k}" / "image.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            image = generate_radiograph(seed=3, index=k, body_part=part, size=64).image
            cv2.imwrite(str(path), (image * 255).astype("uint8"))
    return root


def test_evaluate_counts_mura_folders_as_the_detectors_class(ood_registry: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    data = _mura(tmp_path / "mura", {"XR_HAND": "hand", "XR_ELBOW": "elbow", "XR_SHOULDER": "shoulder"})
    args = ["ood", "evaluate", "--detector", "tend-test", "--weights-dir", str(ood_registry), "--data", str(data)]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["n_id"], report["n_ood"], report["setting"]) == (3, 6, "one-vs-rest")
    assert report["id_folders"] == [["XR_HAND", "hand"]]
    assert report["class_ood_rate"].keys() == {"XR_ELBOW", "XR_HAND", "XR_SHOULDER"}
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "ID folders: XR_HAND → hand" in text
    assert any(line.split()[:2] == ["XR_HAND", "ID"] for line in text.splitlines())
    assert ("note: AUROC" in text) == (report["auroc"] < 0.5)


def test_evaluate_says_plainly_when_no_folder_names_the_class(ood_registry: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    data = _mura(tmp_path / "mura", {"XR_ELBOW": "elbow", "XR_SHOULDER": "shoulder"})
    assert main(["ood", "evaluate", "--detector", "tend-test", "--weights-dir", str(ood_registry),
                 "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "no folder matched class 'hand' (folders: XR_ELBOW, XR_SHOULDER)" in err
    assert "every image is counted as OOD; AUROC is not meaningful" in err


def test_score_labels_from_folders_ends_with_the_pages_summary(ood_registry: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = _mura(tmp_path / "mura", {"XR_HAND": "hand", "XR_ELBOW": "elbow"}, n=2)
    base = ["ood", "score", "--detector", "tend-test", "--weights-dir", str(ood_registry), str(data)]
    assert main([*base, "--labels-from-folders", "--jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rows, summary = lines[:-1], lines[-1]["summary"]
    assert [r["label"] for r in rows] == ["OOD", "OOD", "ID", "ID"]  # XR_ELBOW sorts before XR_HAND
    assert (summary["images"], summary["n_id"], summary["n_ood"]) == (4, 2, 2)
    assert summary["predicted_ood"] == sum(r["is_ood"] for r in rows)
    from medlim.curation.ood.calibration import auroc

    assert summary["auroc"] == pytest.approx(auroc(np.array([r["label"] == "OOD" for r in rows]),
                                                   np.array([r["score"] for r in rows])))
    assert main([*base, "--labels-from-folders"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split("\t")[-1] == "label" and table[1].split("\t")[-1] == "OOD"
    assert table[5] == "# tend-test@1: 4 images scored"
    assert table[7] == f"# labels from folders: 2 ID / 2 OOD; AUROC {summary['auroc']:.3f}"
    assert main([*base, "--summary", "--jsonl"]) == 0  # the summary without labels
    last = json.loads(capsys.readouterr().out.splitlines()[-1])["summary"]
    assert last["auroc"] is None and "n_id" not in last and last["images"] == 4


def test_score_without_detector_uses_the_tasks_default(ood_registry: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from medlim.core.weights import Registries

    data = _mura(tmp_path / "mura", {"hand": "hand"}, n=1)
    args = ["ood", "score", "--weights-dir", str(ood_registry), str(data), "--jsonl"]
    assert main(args) == 2
    assert "no ood-detection model is marked default" in capsys.readouterr().err
    Registries.load(weights_dir=ood_registry).set_default("cvad-test@1")  # the user's own default
    assert main(args) == 0
    assert {"rec", "dis"} <= set(json.loads(capsys.readouterr().out.splitlines()[0]))

"""The OOD room's service: the report the page shows and ``medlim ood score`` prints."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from medlim.curation.ood.labels import folder_labels
from medlim.curation.ood.scoring import Detector, OodScores
from medlim.curation.ood.service import (
    OodInput,
    build_report,
    expand_uploads,
    inputs_from_paths,
    phantom_report,
    score_inputs,
)


class _Named:
    """What :func:`build_report` reads of a detector."""

    name, kind, threshold = "toy@1", "ae", 0.5


def test_report_by_hand() -> None:
    scores = OodScores(score=np.array([0.1, 0.9, 0.5, 0.3]), threshold=0.5,
                       parts={"rec": np.array([0.1, 0.9, 0.5, 0.3])}, files=("a", "b", "c", "d"))
    labels = folder_labels([("XR_HAND",), ("XR_ELBOW",), ("hand",), ("shoulder",)], ["hand"])
    report = build_report(_Named(), scores, labels=labels)
    # OOD scores {0.9, 0.3} against ID scores {0.1, 0.5}: pairs won 0.9>0.1, 0.9>0.5, 0.3>0.1 → 3 of 4
    assert report.auroc == pytest.approx(0.75)
    assert report.summary_texts() == {"Images": "4", "Predicted OOD": "2", "AUROC": "0.750"}
    assert [row["label"] for row in report.rows()] == ["ID", "OOD", "ID", "OOD"]
    assert report.summary()["id_folders"] == [["XR_HAND", "hand"], ["hand", "hand"]]
    higher = report.with_threshold(0.95)
    assert higher.summary_texts() == {"Images": "4", "Predicted OOD": "0", "AUROC": "0.750"}
    assert report.notes == ()
    inverted = build_report(_Named(), scores, labels=folder_labels([("elbow",), ("hand",), ("x",), ("hand",)],
                                                                   ["hand"]))
    assert inverted.auroc == pytest.approx(0.25) and "below 0.5" in inverted.notes[0]
    unmatched = build_report(_Named(), scores, labels=folder_labels([("a",)] * 4, ["hand"]))
    assert unmatched.auroc is None and unmatched.summary_texts()["AUROC"] == "—"
    assert "no folder matched class 'hand'" in unmatched.notes[0]
    assert any(line.startswith("# note: no folder matched class 'hand'") for line in unmatched.summary_lines())


def _radiograph_png(part: str, index: int) -> bytes:
    from PIL import Image

    from medlim.phantoms.radiograph import generate_radiograph

    buffer = io.BytesIO()
    image = generate_radiograph(seed=2, index=index, body_part=part, size=64).image
    Image.fromarray((image * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_expand_uploads_keeps_the_folders_inside_a_zip() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("XR_HAND/p1/a.png", _radiograph_png("hand", 0))
        archive.writestr("XR_HAND/p1/a_mask.png", b"mask")
        archive.writestr("notes.txt", b"text")
        archive.writestr("XR_HAND/p1/b.bmp", b"BM")  # kept, so that its row says the format is not read
    inputs = expand_uploads([("batch.zip", buffer.getvalue()), ("loose.png", b"png")])
    assert [(i.name, i.folders) for i in inputs] == [("batch.zip/XR_HAND/p1/a.png", ("XR_HAND", "p1")),
                                                     ("batch.zip/XR_HAND/p1/b.bmp", ("XR_HAND", "p1")),
                                                     ("loose.png", ())]


def test_inputs_from_paths_give_folders_below_the_folder_given(tmp_path: Path) -> None:
    for relative in ("XR_HAND/p1/a.png", "XR_ELBOW/b.png"):
        path = tmp_path / "data" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    inputs = inputs_from_paths([tmp_path / "data", tmp_path / "data" / "XR_ELBOW" / "b.png"])
    assert [i.folders for i in inputs] == [("XR_ELBOW",), ("XR_HAND", "p1"), ("XR_ELBOW",)]
    assert inputs[0].name == str(tmp_path / "data" / "XR_ELBOW" / "b.png")


def test_score_inputs_streams_rows_labels_them_and_lists_failures(ood_registry: Path) -> None:
    from medlim.core.weights import Registry
    from medlim.curation.ood.scoring import load_detector

    detector = load_detector("tend-test", registry=Registry.load(ood_registry))
    inputs = [OodInput("XR_HAND/a.png", _radiograph_png("hand", 0), ("XR_HAND",)),
              OodInput("broken.png", b"not an image", ("XR_HAND",)),
              OodInput("XR_ELBOW/b.png", _radiograph_png("elbow", 1), ("XR_ELBOW",))]
    streamed: list[dict] = []
    report = score_inputs(detector, inputs, label_folders=True, keep_inputs=True, chunk=2, on_row=streamed.append)
    assert [row["file"] for row in streamed] == ["XR_HAND/a.png", "broken.png", "XR_ELBOW/b.png"]
    assert [row.get("label") for row in streamed] == ["ID", None, "OOD"]
    assert [f["file"] for f in report.failures] == ["broken.png"]
    assert report.files == ("XR_HAND/a.png", "XR_ELBOW/b.png") and report.inputs.shape == (2, 64, 64)
    # the score of each image is the detector's on that image alone
    alone = detector.score(report.inputs).score
    np.testing.assert_allclose(report.scores.score, alone, rtol=1e-9)
    assert [row["score"] for row in streamed if "score" in row] == pytest.approx(alone.tolist(), rel=1e-9)
    assert report.labels is not None and report.labels.n_id == 1
    assert report.auroc == (1.0 if alone[1] > alone[0] else 0.0 if alone[1] < alone[0] else 0.5)


def test_phantom_report_equals_the_evaluation_protocol(ood_registry: Path) -> None:
    from medlim.core.weights import Registry
    from medlim.curation.ood.data import phantom_set
    from medlim.curation.ood.evaluate import evaluate_detector
    from medlim.curation.ood.scoring import load_detector
    from medlim.phantoms.radiograph import BODY_PARTS

    detector: Detector = load_detector("cvad-test", registry=Registry.load(ood_registry))
    report = phantom_report(detector, seed=9000, per_class=2)
    evaluation = evaluate_detector(detector, phantom_set(seed=9000, per_class=2, body_parts=BODY_PARTS, size=64),
                                   seed=9000)
    assert report.auroc == pytest.approx(evaluation.metrics.auroc, abs=1e-12)
    assert int(report.flagged.sum()) == int(evaluation.scores.is_ood.sum())
    assert report.labels is not None and report.labels.n_id == 2
    assert report.notes == evaluation.notes  # an AUROC below 0.5 (this untrained detector) is hinted at on both

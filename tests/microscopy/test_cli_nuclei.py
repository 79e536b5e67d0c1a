from __future__ import annotations

import json

import cv2
import numpy as np

from medlim.cli import main
from medlim.phantoms.base import save_png
from medlim.phantoms.fluorescence import generate_fluorescence


def test_segment_writes_uint16_labels_and_jsonl(tmp_path, capsys):
    phantom = generate_fluorescence(21, size=(200, 260))
    save_png(tmp_path / "cells.png", phantom.image)
    for method in ("thesis", "watershed"):
        out = tmp_path / method
        assert main(["nuclei", "segment", str(tmp_path / "cells.png"), "--out", str(out), "--method", method, "--jsonl"]) == 0
        row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert set(row) == {"file", "count", "seconds"} and row["count"] > 0
        labels = cv2.imread(str(out / "cells_labels.png"), cv2.IMREAD_UNCHANGED)
        assert labels.dtype == np.uint16 and labels.shape == (200, 260)
        assert len(np.unique(labels[labels > 0])) == row["count"]


def test_segment_missing_file_is_a_user_error(tmp_path, capsys):
    assert main(["nuclei", "segment", str(tmp_path / "nope.png"), "--out", str(tmp_path)]) == 2
    assert "nope.png" in capsys.readouterr().err


def test_evaluate_jsonl(capsys):
    assert main(["nuclei", "evaluate", "--n", "1", "--size", "200", "260", "--jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [line.get("method") for line in lines[:2]] == ["thesis", "watershed"]
    assert {"jaccard", "precision", "recall", "f1", "hausdorff", "object_f1"} <= set(lines[0])
    assert set(lines[-1]["summary"]) == {"thesis", "watershed"}

"""``medlim ood score`` answers every file and streams (issue 14): small batches, bad files as rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlim.cli import main
from medlim.core.io.pseudonym import file_label
from medlim.errors import ParameterError


@pytest.fixture
def radiographs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[Path]:
    folder = tmp_path / "rad"
    assert main(["phantom", "radiograph", "--out", str(folder), "--n", "5", "--seed", "1", "--size", "64", "--quiet"]) == 0
    capsys.readouterr()
    return sorted(folder.rglob("*.png"))


def _score(registry: Path, *args: str) -> int:
    return main(["ood", "score", "--detector", "tend-test", "--weights-dir", str(registry), *args])


def test_score_answers_every_file_and_goes_on(ood_registry: Path, radiographs: list[Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from medlim.core.weights import Registry
    from medlim.curation.ood.data import read_inputs
    from medlim.curation.ood.scoring import load_detector

    broken, empty = tmp_path / "broken.png", tmp_path / "empty.png"
    broken.write_bytes(b"not an image")
    empty.write_bytes(b"")
    good = radiographs[:2]
    assert _score(ood_registry, str(good[0]), str(broken), str(empty), str(good[1]), "--jsonl") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in rows] == [str(good[0]), str(broken), str(empty), str(good[1])]
    assert [r.get("error") for r in rows] == [None, "UnsupportedFormatError", "EmptyFileError", None]
    assert set(rows[2]) == {"file", "error", "message"}
    # The same scores as scoring the two good files together: nothing depends on the rest of the batch.
    detector = load_detector("tend-test", registry=Registry.load(ood_registry))
    expected = detector.score(read_inputs(good, detector.input_size)).score
    assert [rows[0]["score"], rows[3]["score"]] == pytest.approx(expected.tolist(), rel=1e-6)
    assert rows[0]["warnings"] == [] and {"p", "d", "threshold", "is_ood"} <= set(rows[0])


def test_score_files_reads_in_small_batches(ood_registry: Path, radiographs: list[Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import medlim.core.io as io
    from medlim.core.weights import Registry
    from medlim.curation.ood.scoring import load_detector, score_files

    read: list[str] = []
    original = io.read_image

    def counting(source, **kwargs):  # noqa: ANN001, ANN003, ANN202 - a pass-through spy
        read.append(Path(source).name)
        return original(source, **kwargs)

    monkeypatch.setattr(io, "read_image", counting)
    detector = load_detector("tend-test", registry=Registry.load(ood_registry))
    rows = score_files(detector, [(str(p), p) for p in radiographs], chunk=2)
    first = next(rows)
    assert len(read) == 2  # the first row leaves after two of the five files were read
    rest = list(rows)
    assert len(read) == 5 and [first["file"], *(r["file"] for r in rest)] == [str(p) for p in radiographs]
    one_batch = list(score_files(detector, [(str(p), p) for p in radiographs], chunk=32))
    assert [r["score"] for r in one_batch] == pytest.approx([first["score"], *(r["score"] for r in rest)], rel=1e-6)
    with pytest.raises(ParameterError):
        next(score_files(detector, [], chunk=0))


def test_score_table_escapes_names_and_pseudonymises(ood_registry: Path, radiographs: list[Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    named = tmp_path / "Smith\tJohn\nfake.png"
    named.write_bytes(radiographs[0].read_bytes())
    assert _score(ood_registry, str(named)) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert header.split("\t") == ["file", "score", "threshold", "is_ood", "p", "d"]
    cells = line.split("\t")
    assert len(cells) == 6 and cells[0] == str(tmp_path / "Smith\\tJohn\\nfake.png")
    assert _score(ood_registry, str(named), "--jsonl", "--pseudonymise-names") == 0
    captured = capsys.readouterr()
    assert "Smith" not in captured.out + captured.err
    assert json.loads(captured.out)["file"] == file_label(str(named))
    assert np.isfinite(json.loads(captured.out)["score"])

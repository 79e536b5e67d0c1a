"""Files a MedShift run cannot use: left out when listed (no image) or when read (not decodable), and the check
before a run (``medlim shift check``, the Curation page) that counts what it will use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlim.curation.shift.check import ClassImages, LeftOutImage, check_shift_data
from medlim.curation.shift.classifier import ClassifierConfig
from medlim.curation.shift.data import folder_set, phantom_image_set, write_image_set
from medlim.curation.shift.detectors import DetectorConfig
from medlim.curation.shift.pipeline import ShiftConfig, analyse, fit_internal, score_external
from medlim.errors import ParameterError

TINY = ShiftConfig(detector=DetectorConfig(input_size=32, epochs=1, head_epochs=1), classifier=ClassifierConfig(epochs=1),
                   k=2, otdd_repeats=2, otdd_max_samples=8, batch_size=3)
#: The external image cut to half its bytes: position 1 of 8 (hand 0–3, then elbow 4–7, as written).
TRUNCATED = "hand/mixed-42-00001.png"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An internal folder of 2 × 5 images and an external one of 2 × 4, one external PNG truncated."""
    root = tmp_path_factory.mktemp("left-out")
    internal = write_image_set(phantom_image_set(seed=41, per_class=5, body_parts=("hand", "elbow")),
                               root / "internal", size=32)
    external = write_image_set(phantom_image_set(seed=42, per_class=4, site="mixed", body_parts=("hand", "elbow")),
                               root / "external", size=32)
    _truncate(external / TRUNCATED)
    return internal, external


@pytest.fixture(scope="module")
def models(folders: tuple[Path, Path]):  # noqa: ANN201 - InternalModels
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield fit_internal(folder_set(folders[0]), TINY)
    torch.set_num_threads(before)


def test_a_truncated_external_png_is_left_out_when_read_and_the_run_goes_on(folders, models) -> None:
    external = folder_set(folders[1])
    assert len(external) == 8 and external.left_out == ()  # its first bytes are a PNG's: the listing keeps it
    lines: list[str] = []
    scored = score_external(models, external, TINY, log=lines.append)
    assert scored.positions.tolist() == [0, 2, 3, 4, 5, 6, 7]  # 8 images, position 1 left out
    (item,) = scored.left_out
    assert (item.dataset, item.file) == ("external", TRUNCATED)
    assert item.why.startswith("mixed-42-00001.png ends before its image data does (the PNG file is truncated)")
    assert lines == [f"left out of the external data, cannot be read: {TRUNCATED}: {item.why}"]
    assert len(scored.scores) == len(scored.probabilities) == len(scored.labels) == 7
    assert sorted(scored.pool.tolist()) == list(range(7)) and len(scored.pool_features) == 7  # renumbered
    result = analyse(models, scored, external, TINY)
    assert len(result.files) == 7 and TRUNCATED not in result.files
    assert result.left_out == (item,) and result.settings["left_out_external"] == 1
    assert result.settings["n_external"] == 7 and result.settings["left_out_internal"] == 0


def test_an_engine_leaves_the_image_out_alike(folders, models) -> None:
    from medlim.core.engines import LocalEngine

    class ReadingApart(LocalEngine):
        """The engine path of stage 2 (a reading step, a model step), run in this process."""

        name = "apart"

    external = folder_set(folders[1])
    here = score_external(models, external, TINY)
    apart = score_external(models, external, TINY, engine=ReadingApart())
    assert apart.positions.tolist() == here.positions.tolist() == [0, 2, 3, 4, 5, 6, 7]
    assert [(i.dataset, i.file) for i in apart.left_out] == [("external", TRUNCATED)]
    np.testing.assert_allclose(apart.scores, here.scores, rtol=1e-5)


def test_each_image_is_read_once(folders, models, monkeypatch: pytest.MonkeyPatch) -> None:
    import medlim.core.io as io

    reads: list[str] = []
    read_image = io.read_image

    def counted(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        reads.append(Path(path).relative_to(folders[1]).as_posix())
        return read_image(path, *args, **kwargs)

    monkeypatch.setattr(io, "read_image", counted)
    external = folder_set(folders[1])
    assert reads == []  # listing reads first bytes only
    score_external(models, external, TINY)
    assert len(reads) == 8 and len(set(reads)) == 8 and TRUNCATED in reads  # the truncated one too, once


def test_an_internal_class_left_with_too_few_images_stops_the_run_saying_why(tmp_path: Path) -> None:
    internal = write_image_set(phantom_image_set(seed=43, per_class=5, body_parts=("hand", "elbow")),
                               tmp_path / "internal", size=32)
    _truncate(internal / "hand" / "internal-43-00002.png")
    listed = folder_set(internal)
    assert check_shift_data(listed, listed).ok  # the check before a run reads first bytes only
    with pytest.raises(ParameterError, match=r"^class 'hand' has 4 internal images \(1 more left out: they cannot "
                                             r"be read\); a detector needs at least 5\.$"):
        fit_internal(listed, TINY)


def test_cli_run_says_the_left_out_image_and_goes_on(folders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from medlim.cli import main

    monkeypatch.setenv("MEDLIM_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    assert main(["shift", "run", "--internal", str(folders[0]), "--external", str(folders[1]), "--out", str(out),
                 "--k", "2", "--size", "32", "--epochs", "1", "--head-epochs", "1", "--classifier-epochs", "1",
                 "--repeats", "2", "--max-samples", "8", "--stats", "off", "--no-store"]) == 0
    captured = capsys.readouterr()
    err = captured.err.replace("\r", "\n").splitlines()
    assert err[:6] == ["internal: internal, 10 images", "external: external, 8 images",  # the check first
                       "class  internal  external", "elbow         5         4", "hand          5         4",
                       "The run can start."]
    said = [line for line in err if "left out" in line]
    assert len(said) == 2 and said[0].startswith(f"left out of the external data, cannot be read: {TRUNCATED}: ")
    assert said[1] == "1 of the external folder's images could not be decoded and were left out (1 left out in all)."
    assert json.loads(captured.out)["left_out"] == {"internal": 0, "external": 1}
    assert len((out / "images.csv").read_text().splitlines()) == 1 + 7


def test_a_jobs_log_names_the_left_out_file_by_its_label(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medlim.core.io.pseudonym import file_label, withholding_names

    monkeypatch.setenv("MEDLIM_HOME", str(tmp_path / "home"))
    item = LeftOutImage(dataset="external", file="hand/Doe^Jane.png", why="Doe^Jane.png ends before its image data")
    assert item.line() == "left out of the external data, cannot be read: hand/Doe^Jane.png: " + item.why
    with withholding_names():
        assert item.line() == f"left out of the external data, cannot be read: {file_label('hand/Doe^Jane.png')}"
        assert "Doe" not in json.dumps(item.to_json())


# ----------------------------------------------------------------------------- the check before a run


def _png(path: Path) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((4, 4), np.uint8))


def _class_folders(root: Path, counts: dict[str, int]) -> Path:
    for name, count in counts.items():
        for k in range(count):
            _png(root / name / f"{k}.png")
    return root


def test_check_counts_images_per_class_and_says_what_stops_the_run(tmp_path: Path, capsys) -> None:
    from medlim.cli import main

    internal = _class_folders(tmp_path / "internal", {"hand": 5, "elbow": 4})
    (internal / "elbow" / "notes.png").write_text("not an image")
    external = _class_folders(tmp_path / "external", {"hand": 3, "elbow": 2, "finger": 1})
    check = check_shift_data(folder_set(internal), folder_set(external))
    assert check.classes == (ClassImages("elbow", 4, 2), ClassImages("finger", 0, 1), ClassImages("hand", 5, 3))
    ((dataset, file),) = [(item.dataset, item.file) for item in check.left_out]
    assert (dataset, file) == ("internal", "elbow/notes.png")
    assert check.problems == ("class 'elbow' has 4 internal images; a detector needs at least 5.",)
    assert check.notes == ("external images of classes the internal data lacks are not scored: finger 1.",)
    assert not check.ok and (check.images("internal"), check.images("external")) == (9, 6)

    assert main(["shift", "check", "--internal", str(internal), "--external", str(external)]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[:6] == ["internal: internal, 9 images", "external: external, 6 images",
                           "class   internal  external", "elbow          4         2",
                           "finger         0         1", "hand           5         3"]
    assert printed[6].startswith("left out of the internal data, cannot be read: elbow/notes.png: ")
    assert printed[7:] == ["1 of the internal folder's images left out; the run uses the other 9.",
                           "note: external images of classes the internal data lacks are not scored: finger 1.",
                           "1 problem(s) stop the run:",
                           "  class 'elbow' has 4 internal images; a detector needs at least 5."]

    _png(internal / "elbow" / "4.png")
    assert main(["shift", "check", "--internal", str(internal), "--external", str(external), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["ok"] is True and shown["problems"] == [] and shown["internal"] == {"name": "internal", "images": 10}
    assert shown["classes"][0] == {"class": "elbow", "internal images": 5, "external images": 2}


def test_check_refuses_one_internal_class_and_no_shared_class(tmp_path: Path) -> None:
    one = folder_set(_class_folders(tmp_path / "one", {"hand": 5}))
    other = folder_set(_class_folders(tmp_path / "other", {"finger": 2}))
    assert check_shift_data(one, other).problems == (
        "the internal dataset needs at least 2 classes, ['hand'] is given.",
        "no external image belongs to an internal class ['hand']; external classes: ['finger'].")
    assert check_shift_data(phantom_image_set(seed=1, per_class=5, body_parts=("hand", "elbow")), one).ok


def test_otdd_leaves_a_truncated_image_out_and_says_so(folders, capsys) -> None:
    from medlim.cli import main

    internal, external = folders
    assert main(["shift", "otdd", str(internal), str(external), "--size", "16", "--max-samples", "5",
                 "--repeats", "2", "--json"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    # 10 internal images and 8 external ones, one of which does not decode: 7 reach the distance
    assert document["settings"]["left_out_unreadable"] == {"a": 0, "b": 1}
    assert document["n_a"] == 5 and document["n_b"] == 5  # each repeat subsamples 5 of 10 and of 7
    assert f"left out of the external data, cannot be read: {TRUNCATED}: mixed-42-00001.png ends before" in captured.err


def test_a_ray_session_scores_and_leaves_out_as_this_process_does(folders, models) -> None:
    """The engine path of stage 2 in a real local Ray session (one model worker process), not a stand-in."""
    import shutil
    import tempfile

    ray = pytest.importorskip("ray")
    from medlim.core.engines import RayEngine

    if ray.is_initialized():
        pytest.skip("another Ray session is open in this process")
    temp_dir = tempfile.mkdtemp(prefix="medlim-ray-", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", _temp_dir=temp_dir)
    try:
        external = folder_set(folders[1])
        here = score_external(models, external, TINY)
        remote = score_external(models, external, TINY, engine=RayEngine(workers=1))
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert remote.positions.tolist() == here.positions.tolist() == [0, 2, 3, 4, 5, 6, 7]
    assert [(i.dataset, i.file) for i in remote.left_out] == [("external", TRUNCATED)]
    np.testing.assert_allclose(remote.scores, here.scores, rtol=1e-5)
    np.testing.assert_allclose(remote.probabilities, here.probabilities, rtol=1e-5, atol=1e-7)

"""The engines (issue 15, "Scale-out on Ray"): the Ray engine answers every file as the local one does.

Every Ray test of the project lives here and shares one local Ray session
(started once for the module: Ray takes 5–20 s to start on a busy machine).
The BAC, shift and retrieval comparisons and the two-node cluster are marked
slow (each starts model workers that load torch; minutes on a shared 2-core
machine); the toy work and ``ood score`` run by default.
The model workers run one torch thread each; the local runs they are compared
with are given one thread too, so the convolutions add in the same order and
masks match byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from medlim.cli import main
from medlim.core.engines import FileWork, LocalEngine, RayEngine, engine_from_settings
from medlim.errors import InputError, ParameterError, WorkerLostError
from medlim.settings import Settings

#: The phantom mammograms' probability maps of the random test SCU-Net lie in about 0.45–0.47:
#: a cut-off inside that band gives masks with many pixels near the cut-off (a strict test of "identical").
BAC_THRESHOLD = "0.4625"


# --- a toy per-file work: module-level functions, sent to Ray's workers by value -------------------------------


def _read_number(name: str, source: str) -> int:
    if source.startswith("bad"):
        raise InputError(f"{name} cannot be read: {source}")
    return int(source)


def _square_numbers(model: int, names: Sequence[str], numbers: Sequence[int]) -> list[tuple[int, int]]:
    if any(number == 13 for number in numbers):
        raise InputError("13 is refused by the model")
    return [(model * number * number, os.getpid()) for number in numbers]


def _model_two() -> int:
    return 2


def _toy_work(batch: int = 1) -> FileWork:
    return FileWork(read=_read_number, infer=_square_numbers, load_model=_model_two, batch=batch)


def _toy_items() -> list[tuple[str, str]]:
    return [("a", "1"), ("b", "bad-x"), ("c", "3"), ("d", "13"), ("e", "4"), ("f", "5"), ("g", "6"), ("h", "7")]


def _summary(attempts: Iterator) -> list[tuple]:
    return [(a.index, a.name, None if a.result is None else a.result[0], a.failure) for a in attempts]


def test_local_engine_answers_every_item_in_order_with_failures_as_rows() -> None:
    progress: list[tuple[int, str]] = []
    attempts = _summary(LocalEngine().attempts(_toy_work(), _toy_items(), progress=lambda i, n, s: progress.append((i, n))))
    assert [a[:3] for a in attempts] == [(1, "a", 2), (2, "b", None), (3, "c", 18), (4, "d", None), (5, "e", 32),
                                         (6, "f", 50), (7, "g", 72), (8, "h", 98)]
    assert attempts[1][3] == {"file": "b", "error": "InputError", "message": "b cannot be read: bad-x"}
    assert attempts[3][3] == {"file": "d", "error": "InputError", "message": "13 is refused by the model"}
    assert progress == [(i, name) for i, (name, _) in enumerate(_toy_items(), start=1)]


def test_local_engine_batches_skips_and_hides_names() -> None:
    skip = lambda name, source: ("stored", 0) if name == "c" else None  # noqa: E731
    attempts = _summary(LocalEngine().attempts(_toy_work(batch=3), _toy_items(), skip=skip,
                                               hidden=lambda source: ("bad-x",)))
    assert attempts[2][2] == "stored"
    # a model error fails every file of its call: d with e and f (chunks a-c, d-f, g-h)
    assert [a[1] for a in attempts if a[3] and a[3]["message"] == "13 is refused by the model"] == ["d", "e", "f"]
    assert attempts[6][2] == 2 * 6 * 6
    assert attempts[1][3]["message"] == "b cannot be read: b"  # the hidden text replaced by the name
    with pytest.raises(ParameterError, match="batch"):
        FileWork(read=_read_number, infer=_square_numbers, load_model=_model_two, batch=0)


def test_engine_from_settings() -> None:
    settings = Settings.from_env({"MEDLIM_ENGINE": "ray", "MEDLIM_RAY_ADDRESS": "ray://head:10001",
                                  "MEDLIM_RAY_WORKERS": "3"})
    engine = engine_from_settings(settings=settings)
    assert isinstance(engine, RayEngine) and (engine.address, engine.workers) == ("ray://head:10001", 3)
    assert isinstance(engine_from_settings("local", settings=settings), LocalEngine)
    assert engine_from_settings("ray", workers=5, settings=Settings.from_env({})).workers == 5
    with pytest.raises(ParameterError, match="MEDLIM_ENGINE"):
        Settings.from_env({"MEDLIM_ENGINE": "spark"})
    with pytest.raises(ParameterError, match="engine"):
        engine_from_settings("spark", settings=settings)
    with pytest.raises(ParameterError, match="workers"):
        RayEngine(workers=0)


def test_the_ray_reading_layout_comes_from_the_option_else_the_environment() -> None:
    assert engine_from_settings("ray", settings=Settings.from_env({})).reading is None  # auto: by the cluster
    from_env = Settings.from_env({"MEDLIM_RAY_READING": "Tasks"})
    assert from_env.ray_reading == "tasks" and engine_from_settings("ray", settings=from_env).reading == "tasks"
    assert engine_from_settings("ray", reading="actors", settings=from_env).reading == "actors"
    assert engine_from_settings("ray", reading="auto", settings=from_env).reading is None
    with pytest.raises(ParameterError, match="MEDLIM_RAY_READING"):
        Settings.from_env({"MEDLIM_RAY_READING": "threads"})
    with pytest.raises(ParameterError, match="reading"):
        engine_from_settings("ray", reading="threads", settings=from_env)
    with pytest.raises(ParameterError, match="reading"):
        RayEngine(reading="threads")


# --- one Ray session for the module ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    temp_dir = tempfile.mkdtemp(prefix="medlim-ray-", dir="/tmp")
    # Three logical CPUs: two model workers of one CPU each and the reading tasks (half a CPU each).
    ray.init(num_cpus=3, include_dashboard=False, logging_level="WARNING", _temp_dir=temp_dir)
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The local run with the model workers' single torch thread (the same summation order)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("reading", ["actors", "tasks"])  # without GPUs the default is "actors"
def test_ray_engine_gives_the_local_attempts_from_two_worker_processes(ray_session: None, reading: str) -> None:
    skip = lambda name, source: ("stored", 0) if name == "g" else None  # noqa: E731
    local = list(LocalEngine().attempts(_toy_work(), _toy_items(), skip=skip))
    progress: list[int] = []
    remote = list(RayEngine(workers=2, reading=reading).attempts(_toy_work(), _toy_items(), skip=skip,
                                                                 progress=lambda i, n, s: progress.append(i)))
    assert _summary(iter(remote)) == _summary(iter(local))
    assert progress == list(range(1, 9))
    workers = {a.result[1] for a in remote if a.ok and a.result[0] != "stored"}
    assert len(workers) == 2 and os.getpid() not in workers  # two actor processes did the model work


def _square_or_die(model: int, names: Sequence[str], numbers: Sequence[int]) -> list[tuple[int, int]]:
    """The toy model, except that a 66 kills the worker process (as an out-of-memory kill would)."""
    if 66 in numbers:
        os._exit(1)
    return _square_numbers(model, names, numbers)


def test_a_worker_that_dies_on_a_file_fails_that_file_and_the_run_goes_on(ray_session: None) -> None:
    work = FileWork(read=_read_number, infer=_square_or_die, load_model=_model_two)
    items = [("a", "1"), ("b", "66"), ("c", "3"), ("d", "4"), ("e", "5")]
    attempts = _summary(RayEngine(workers=2).attempts(work, items))
    assert [a[:3] for a in attempts] == [(1, "a", 2), (2, "b", None), (3, "c", 18), (4, "d", 32), (5, "e", 50)]
    assert attempts[1][3]["error"] == "WorkerLostError" and "--resume" in attempts[1][3]["message"]


@pytest.mark.slow
def test_workers_dying_on_many_files_stop_the_run_after_the_answered_ones(ray_session: None) -> None:
    work = FileWork(read=_read_number, infer=_square_or_die, load_model=_model_two)
    items = [("a", "1"), *((f"x{i}", "66") for i in range(5)), ("z", "2")]
    answered = []
    with pytest.raises(WorkerLostError, match="stopped 4 times"):
        for attempt in RayEngine(workers=1).attempts(work, items):
            answered.append((attempt.name, attempt.ok))
    assert answered == [("a", True), ("x0", False), ("x1", False), ("x2", False)]


def test_ray_engine_refuses_more_workers_than_the_cluster_holds(ray_session: None) -> None:
    with pytest.raises(ParameterError, match="fewer workers"):
        list(RayEngine(workers=3).attempts(_toy_work(), _toy_items()))


# --- the commands --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mammograms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("exam")
    assert main(["phantom", "mammogram", "--out", str(folder), "--n", "2", "--seed", "5", "--size", "small"]) == 0
    (folder / "broken.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00")
    return folder


@pytest.fixture
def bac_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry with a randomly initialised SCU-Net (seed 0) as ``scunet-bac@0``."""
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.mammography.scunet import build_scunet

    torch.manual_seed(0)
    folder = tmp_path / "weights"
    folder.mkdir()
    save_weights(Registry(folder), {
        "name": "scunet-bac", "version": "0", "task": "bac-segmentation", "architecture": "scunet",
        "preset": "published",
        "input_contract": {"channels": 3, "size": [512, 512], "dtype": "float32", "range": [-2.24, 5.72]},
        "output_type": "probability", "thresholds": {"output": 0.5},
        "params": {"overlap": 32, "merge": "max", "output_activation": "sigmoid"},
    }, build_scunet().state_dict())
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(folder))
    return folder


def _rows(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def _quantify(folder: Path, out: Path, *options: str) -> None:
    assert main(["bac", "quantify", str(folder), "--jsonl", "--device", "cpu", "--threshold", BAC_THRESHOLD,
                 "--out", str(out), *options]) == 0


def _assert_same_bac_rows(local: list[dict], remote: list[dict]) -> None:
    assert [r["file"] for r in remote] == [r["file"] for r in local]
    for mine, theirs in zip(local, remote):
        if not mine["ok"]:
            assert theirs == mine  # the same error row
            continue
        for key, value in mine.items():
            if key in ("seconds", "mask"):
                continue
            if isinstance(value, float):
                assert theirs[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
            else:
                assert theirs[key] == value, key


@pytest.mark.slow
def test_bac_quantify_on_ray_equals_local_masks_readouts_errors_and_resume(
    ray_session: None, one_thread: None, mammograms: Path, bac_weights: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _quantify(mammograms, tmp_path / "local", "--no-store")
    local = _rows(capsys)
    _quantify(mammograms, tmp_path / "ray", "--engine", "ray", "--ray-workers", "2")
    remote = _rows(capsys)
    assert len(local) == 3 and [r["ok"] for r in local] == [True, True, False]
    assert local[2]["error"] == "TruncatedFileError"
    _assert_same_bac_rows(local, remote)
    for mine, theirs in zip(local[:2], remote[:2]):
        ours, ray_mask = Path(mine["mask"]).read_bytes(), Path(theirs["mask"]).read_bytes()
        assert ours == ray_mask  # identical masks, byte for byte
        assert int((cv2.imread(theirs["mask"], cv2.IMREAD_UNCHANGED) == 255).sum()) == theirs["am"] > 0
    assert not any(r.get("reused") for r in remote)
    # The Ray run wrote the store as the local one does: resuming reuses both analyses.
    _quantify(mammograms, tmp_path / "again", "--engine", "ray", "--resume")
    resumed = _rows(capsys)
    assert [r.get("reused") for r in resumed] == [True, True, None]
    for mine, stored in zip(local[:2], resumed[:2]):  # the store keeps the readouts (not every detail of a row)
        for key in ("pm", "am", "sim", "tam_x", "tsim_x", "breast_area", "threshold", "x"):
            assert stored[key] == pytest.approx(mine[key], rel=1e-6, abs=1e-6), key
    assert resumed[2] == local[2]


def test_ood_score_on_ray_equals_local(ray_session: None, one_thread: None, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from tests.curation.ood.conftest import make_registry

    registry = make_registry(tmp_path / "weights")
    folder = tmp_path / "rad"
    assert main(["phantom", "radiograph", "--out", str(folder), "--n", "3", "--seed", "1", "--size", "64", "--quiet"]) == 0
    (folder / "broken.png").write_bytes(b"not an image")
    capsys.readouterr()
    command = ["ood", "score", "--detector", "tend-test", "--weights-dir", str(registry), str(folder), "--jsonl"]
    assert main(command) == 0
    local = _rows(capsys)
    assert main([*command, "--engine", "ray"]) == 0
    captured = capsys.readouterr()
    remote = [json.loads(line) for line in captured.out.splitlines()]
    assert len(local) > 3 and [r["file"] for r in remote] == [r["file"] for r in local]
    assert [r.get("error") for r in local].count("UnsupportedFormatError") == 1
    for mine, theirs in zip(local, remote):
        assert set(theirs) == set(mine)
        for key, value in mine.items():
            assert theirs[key] == (pytest.approx(value, rel=1e-6, abs=1e-6) if isinstance(value, float) else value)
    assert f"[{len(local)}/{len(local)}]" in captured.err


@pytest.mark.slow
def test_bac_quantify_on_a_started_ray_cluster_with_two_workers(
    ray_session: None, one_thread: None, mammograms: Path, bac_weights: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``medlim bac quantify --engine ray`` in its own process against a two-node cluster (``MEDLIM_RAY_ADDRESS``)."""
    from ray.cluster_utils import Cluster

    _quantify(mammograms, tmp_path / "local", "--no-store")
    local = _rows(capsys)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=2)
        environment = {**os.environ, "MEDLIM_RAY_ADDRESS": cluster.address, "MEDLIM_ENGINE": "ray"}
        done = subprocess.run(
            [sys.executable, "-m", "medlim", "bac", "quantify", str(mammograms), "--jsonl", "--device", "cpu",
             "--threshold", BAC_THRESHOLD, "--out", str(tmp_path / "ray"), "--ray-workers", "2", "--no-store"],
            env=environment, capture_output=True, text=True, timeout=400, check=False)
    finally:
        cluster.shutdown()
    assert done.returncode == 0, done.stderr[-2000:]
    remote = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    _assert_same_bac_rows(local, remote)
    for mine, theirs in zip(local[:2], remote[:2]):
        assert np.array_equal(cv2.imread(mine["mask"], cv2.IMREAD_UNCHANGED), cv2.imread(theirs["mask"], cv2.IMREAD_UNCHANGED))


@pytest.mark.slow
def test_shift_scoring_stage_on_ray_equals_local(ray_session: None, one_thread: None) -> None:
    from medlim.curation.shift.classifier import ClassifierConfig
    from medlim.curation.shift.data import phantom_image_set
    from medlim.curation.shift.detectors import DetectorConfig
    from medlim.curation.shift.pipeline import ShiftConfig, fit_internal, score_external

    config = ShiftConfig(detector=DetectorConfig(input_size=32, epochs=1, head_epochs=1),
                         classifier=ClassifierConfig(epochs=1), k=2, otdd_repeats=2, otdd_max_samples=8, batch_size=5,
                         otdd_pool=7)
    internal = phantom_image_set(seed=11, per_class=6, body_parts=("hand", "elbow"))
    external = phantom_image_set(seed=12, per_class=6, site="mixed", body_parts=("hand", "elbow", "finger"))
    models = fit_internal(internal, config)
    local = score_external(models, external, config)
    stages: list[tuple[str, int, int]] = []
    remote = score_external(models, external, config, engine=RayEngine(workers=2),
                            progress=lambda stage, done, total: stages.append((stage, done, total)))
    assert stages == [("score external", 5, 12), ("score external", 10, 12), ("score external", 12, 12)]
    assert np.array_equal(remote.positions, local.positions) and np.array_equal(remote.pool, local.pool)
    assert remote.skipped == local.skipped == 6
    for name in ("scores", "probabilities", "pool_features"):
        np.testing.assert_allclose(getattr(remote, name), getattr(local, name), rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.slow
def test_retrieval_build_on_ray_equals_local(ray_session: None, one_thread: None, tmp_path: Path) -> None:
    import torch

    from medlim.core.store import open_store
    from medlim.core.weights import Registry, save_weights
    from medlim.curation.retrieval.nets import EmbeddingNet
    from medlim.curation.retrieval.service import build_collection, open_collection
    from medlim.phantoms.radiograph import BODY_PARTS

    torch.manual_seed(0)
    (tmp_path / "weights").mkdir()
    registry = Registry(tmp_path / "weights")
    save_weights(registry, {
        "name": "tiny-embed", "version": "1", "task": "image-retrieval", "architecture": "retrieval-resnet18",
        "architecture_kwargs": {"width": 4}, "preset": "ood-grey",
        "input_contract": {"channels": 1, "size": [32, 32], "dtype": "float32", "range": [0.0, 1.0]},
        "params": {"input_size": 32, "method": "oscars", "classes": list(BODY_PARTS)},
    }, EmbeddingNet(width=4).eval().state_dict())
    folder = tmp_path / "rad"
    assert main(["phantom", "radiograph", "--n", "3", "--seed", "3", "--size", "32", "--quiet", "--out", str(folder)]) == 0
    with open_store() as store:
        local = build_collection(folder, "tiny-embed", tmp_path / "local.npz", store=store, registry=registry)
        progress: list[tuple[int, int]] = []
        remote = build_collection(folder, "tiny-embed", tmp_path / "ray.npz", store=store, registry=registry,
                                  engine=RayEngine(workers=2), progress=lambda done, total: progress.append((done, total)))
    assert remote.count == local.count > 0 and progress[-1] == (local.count, local.count)
    ours, theirs = open_collection(tmp_path / "local.npz").vectors(), open_collection(tmp_path / "ray.npz").vectors()
    assert np.array_equal(ours[0], theirs[0])
    np.testing.assert_allclose(theirs[1], ours[1], rtol=1e-6, atol=1e-6)


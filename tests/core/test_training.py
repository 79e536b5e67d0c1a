"""The training harness: time budget, best-state loop, dataset preparation, recorded command, result line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlim.core.training import (
    DatasetProblemsError,
    Deadline,
    NotValidatedError,
    TrainingOutcome,
    TrainingPlan,
    ValidationScore,
    fit,
    prepare_training_data,
    recorded_command,
)
from medlim.core.weights import InputContract, WeightsEntry
from medlim.errors import MedlimError, ParameterError


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_deadline_counts_from_its_start_and_shares_what_is_left() -> None:
    clock = FakeClock()
    deadline = Deadline(0.5, clock=clock)  # 30 s
    clock.now += 12.0
    assert deadline.elapsed() == 12.0 and deadline.remaining() == 18.0 and not deadline.expired()
    stage = deadline.share(0.5)  # half of the 18 s left
    clock.now += 9.0
    assert stage.expired() and not deadline.expired() and deadline.remaining() == 9.0
    clock.now += 9.0
    assert deadline.expired() and deadline.remaining() == 0.0
    free = Deadline(None, clock=clock)
    assert free.remaining() == float("inf") and not free.expired() and free.share(0.1).remaining() == float("inf")
    with pytest.raises(ParameterError, match="--max-minutes"):
        Deadline(-1.0)


def test_spent_fraction_is_a_schedules_time_fraction_and_survives_a_resume() -> None:
    clock = FakeClock()
    deadline = Deadline(1.0, clock=clock)  # 60 s
    clock.now += 15.0
    stage = deadline.share(0.5)  # 22.5 s of the 45 s left
    clock.now += 9.0
    assert deadline.spent_fraction() == pytest.approx(24 / 60) and stage.spent_fraction() == pytest.approx(9 / 22.5)
    clock.now += 100.0
    assert stage.spent_fraction() == 1.0 and Deadline(None, clock=clock).spent_fraction() == 0.0
    # a resumed job catches up what its earlier attempt spent: start and end move together
    resumed = Deadline(1.0, clock=clock)
    resumed.catch_up(30.0)
    assert resumed.spent_fraction() == pytest.approx(0.5)


def _loop(clock: FakeClock, scores: list[float], *, epoch_s: float = 10.0, val_s: float = 2.0):
    """train_epoch / validate / snapshot over a fake clock; the state is the epoch number."""
    trained: list[int] = []
    queue = list(scores)

    def train_epoch(epoch: int) -> str:
        clock.now += epoch_s
        trained.append(epoch)
        return f"epoch {epoch}"

    def validate() -> ValidationScore:
        clock.now += val_s
        return ValidationScore(score=queue.pop(0), metric="dice", metrics={"dice": 0.0})

    return trained, train_epoch, validate, (lambda: trained[-1])


def test_fit_keeps_the_best_state_and_stops_after_patience() -> None:
    clock = FakeClock()
    trained, train_epoch, validate, snapshot = _loop(clock, [0.5, 0.7, 0.6, 0.65, 0.9])
    lines: list[str] = []
    result = fit(train_epoch, epochs=5, validate=validate, snapshot=snapshot, deadline=Deadline(None, clock=clock),
                 patience=2, label="net", progress=lines.append)
    # scores 0.5, 0.7 (best), 0.6, 0.65: two without improvement → stop after epoch 4
    assert trained == [1, 2, 3, 4] and result.state == 2 and result.best.score == 0.7
    assert (result.best_epoch, result.epochs_run, result.validations, result.stopped) == (2, 4, 4, "early stopping")
    assert result.history == ((1, 0.5), (2, 0.7), (3, 0.6), (4, 0.65))
    assert "net validation after epoch 2: dice 0.7000 (best so far)" in lines
    assert result.to_json()["dice"] == 0.7 and result.to_json()["best_epoch"] == 2


def test_fit_stops_before_an_epoch_that_would_overrun_the_budget() -> None:
    clock = FakeClock()
    trained, train_epoch, validate, snapshot = _loop(clock, [0.1, 0.2, 0.3])
    # 30 s; epoch 10 s + validation 2 s: after 2 epochs (24 s) only 6 s are left < 12 s needed
    result = fit(train_epoch, epochs=10, validate=validate, snapshot=snapshot, deadline=Deadline(0.5, clock=clock))
    assert trained == [1, 2] and result.stopped == "time budget" and result.state == 2 and result.validations == 2


def test_fit_that_never_validated_raises_and_keeps_nothing() -> None:
    clock = FakeClock()
    trained, train_epoch, validate, snapshot = _loop(clock, [0.9], epoch_s=40.0)
    with pytest.raises(NotValidatedError, match="never validated.*0.5 min.*1 of 3 epochs") as caught:
        fit(train_epoch, epochs=3, validate=validate, snapshot=snapshot, deadline=Deadline(0.5, clock=clock),
            label="SCU-Net")
    assert isinstance(caught.value, MedlimError) and trained == [1]
    clock = FakeClock()
    trained, train_epoch, validate, snapshot = _loop(clock, [0.9])
    with pytest.raises(NotValidatedError, match="validates from epoch 4"):
        fit(train_epoch, epochs=3, validate=validate, snapshot=snapshot, deadline=Deadline(None, clock=clock),
            first_validation=4)


def test_fit_validates_only_after_the_warm_up_and_breaks_ties() -> None:
    clock = FakeClock()
    trained: list[int] = []
    scores = iter([(0.8, 0.1), (0.8, 0.5), (0.8, 0.2)])

    def validate() -> ValidationScore:
        score, tiebreak = next(scores)
        return ValidationScore(score=score, tiebreak=tiebreak)

    result = fit(lambda epoch: trained.append(epoch), epochs=5, validate=validate, snapshot=lambda: trained[-1],
                 deadline=Deadline(None, clock=clock), first_validation=3)
    assert trained == [1, 2, 3, 4, 5] and result.validations == 3 and result.state == 4


def _image(path: Path, value: int) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    pattern = (np.arange(16 * 16).reshape(16, 16) * (value + 1)) % 251
    cv2.imwrite(str(path), pattern.astype(np.uint8))


def _folders(root: Path, per_class: int = 25, start: int = 0) -> Path:
    for name in ("a", "b"):
        for k in range(per_class):
            _image(root / name / f"{name}{k}.png", start + (k if name == "a" else 100 + k))
    return root


def test_prepare_splits_20_percent_by_image_and_records_no_paths(tmp_path: Path) -> None:
    data = prepare_training_data(_folders(tmp_path / "PATIENT_DOE"), "ood", seed=3)
    # 25 per class: round(0.2 × 25) = 5 held out per class
    assert len(data.val) == 10 and len(data.train) == 40 and data.val_dataset is data.dataset
    record = data.record()
    assert record["source"] == "user" and record["split"]["by"] == "image" and record["split"]["seed"] == 3
    assert record["fingerprint"]["id"] == data.fingerprint.id and record["fingerprint"]["classes"] == {"a": 25, "b": 25}
    assert "PATIENT_DOE" not in json.dumps(record) and "a0.png" not in json.dumps(record)
    assert data.command_options() == [("--data", data.fingerprint.id)]


def test_prepare_with_a_validation_folder(tmp_path: Path) -> None:
    data = prepare_training_data(_folders(tmp_path / "train"), "ood", val_dir=_folders(tmp_path / "val", 6, start=7))
    assert len(data.train) == 50 and len(data.val) == 12 and data.val_dataset is not data.dataset
    assert data.split["by"] == "folder" and data.split["val_fingerprint"]["id"] == data.val_fingerprint.id
    assert data.command_options() == [("--data", data.fingerprint.id), ("--val", data.val_fingerprint.id)]
    with pytest.raises(ParameterError, match="same images"):
        prepare_training_data(tmp_path / "train", "ood", val_dir=tmp_path / "train")


def test_prepare_lists_every_problem_and_skip_bad_drops_the_rows(tmp_path: Path) -> None:
    root = _folders(tmp_path / "data")
    (root / "a" / "broken.png").write_bytes(b"not an image")
    (root / "b" / "copy.png").write_bytes((root / "b" / "b0.png").read_bytes())
    with pytest.raises(DatasetProblemsError) as caught:
        prepare_training_data(root, "ood")
    kinds = sorted(problem.kind for problem in caught.value.problems)
    assert kinds == ["duplicate_image", "unreadable"]
    assert "a/broken.png" in caught.value.message and "--skip-bad" in caught.value.message
    lines: list[str] = []
    data = prepare_training_data(root, "ood", skip_bad=True, progress=lines.append)
    assert len(data.dataset) == 50 and data.record()["dropped"] == 2
    assert any("left out 2 bad entries" in line for line in lines)


def test_skip_bad_cannot_fix_a_dataset_that_is_too_small(tmp_path: Path) -> None:
    root = _folders(tmp_path / "small", per_class=4)
    with pytest.raises(DatasetProblemsError, match="cannot fix") as caught:
        prepare_training_data(root, "ood", skip_bad=True)
    assert {problem.kind for problem in caught.value.problems} == {"too_few_images"}


def test_recorded_command_and_plan() -> None:
    command = recorded_command("medlim train tend", [("--data", "0123abcd"), ("--name", None), ("--skip-bad", True),
                                                     ("--quiet", False), ("--id-class", "left hand")])
    assert command == "medlim train tend --data 0123abcd --skip-bad --id-class 'left hand'"
    plan = TrainingPlan(task="tend", settings={"input_size": 64, "lr": float("nan")}, reasons={"input_size": "x"},
                        overridden=("lr",))
    assert plan.to_json() == {"task": "tend", "settings": {"input_size": 64, "lr": None},
                              "reasons": {"input_size": "x"}, "overridden": ["lr"]}


def test_outcome_is_one_line_of_strict_json() -> None:
    entry = WeightsEntry(name="tend-x", version="4", task="ood-detection", architecture="tend", file="f.safetensors",
                         sha256="a" * 64, preset="ood-grey", input_contract=InputContract(channels=1))
    outcome = TrainingOutcome(registered=(entry,), validation={"tend-x": {"auroc": 0.75, "aupr": float("nan")}},
                              extra={"data": {"fingerprint": "abc"}})
    line = outcome.result_line()
    assert "\n" not in line
    assert json.loads(line) == {"registered": [{"name": "tend-x", "version": "4"}],
                                "validation": {"tend-x": {"auroc": 0.75, "aupr": None}},
                                "data": {"fingerprint": "abc"}}

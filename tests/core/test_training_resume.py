"""Training resumes per epoch inside a job and registers once (issue 15; medlim.core.training_resume)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medlim.core import training_resume
from medlim.core.training import Deadline, ValidationScore, fit
from medlim.core.training_resume import FitCheckpoint, capture_state, fit_resume, restore_state


class _Stop(Exception):
    """Stands for a worker killed in the middle of an epoch."""


class _TinyTrainer:
    """A two-layer regression with Adam, a step scheduler, dropout and its own numpy stream."""

    def __init__(self, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=1e-2)
        self.schedule = torch.optim.lr_scheduler.StepLR(self.optimiser, step_size=2, gamma=0.5)
        self.rng = np.random.default_rng(seed)
        self.steps = 0
        data = np.random.default_rng(99)
        self.x = torch.from_numpy(data.normal(size=(32, 4)).astype(np.float32))
        self.y = self.x.sum(dim=1, keepdim=True)
        self.stop_at: int | None = None

    def train_epoch(self, epoch: int) -> str:
        if epoch == self.stop_at:
            raise _Stop(f"killed in epoch {epoch}")
        self.model.train()
        for batch in np.array_split(self.rng.permutation(len(self.x)), 4):
            loss = torch.nn.functional.mse_loss(self.model(self.x[batch]), self.y[batch])
            self.optimiser.zero_grad()
            loss.backward()
            self.optimiser.step()
            self.steps += 1
        self.schedule.step()
        return f"epoch {epoch}"

    def validate(self) -> ValidationScore:
        self.model.eval()
        with torch.no_grad():
            error = float(torch.nn.functional.mse_loss(self.model(self.x), self.y))
        return ValidationScore(score=-error, metric="neg_mse", metrics={"mse": error}, payload=np.float64(error))

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {key: value.clone() for key, value in self.model.state_dict().items()}

    def parts(self) -> dict[str, object]:
        return {"model": self.model, "optimiser": self.optimiser, "schedule": self.schedule, "rng": self.rng,
                "steps": self.steps}

    def apply(self, values: dict[str, object]) -> None:
        self.steps = int(values["steps"])  # type: ignore[call-overload]


def _fit(trainer: _TinyTrainer, folder: Path | None, *, epochs: int = 6, patience: int | None = None):
    resume = None if folder is None else fit_resume("tiny", ("command", {"lr": 1e-2}), trainer.parts,
                                                    apply=trainer.apply, folder=folder)
    return fit(trainer.train_epoch, epochs=epochs, validate=trainer.validate, snapshot=trainer.snapshot,
               deadline=Deadline(None), patience=patience, label="tiny", resume=resume)


def _same(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> bool:
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


@pytest.mark.parametrize("stop_at", [2, 4, 6])
def test_interrupted_fit_resumes_at_the_next_epoch_with_the_same_weights(tmp_path: Path, stop_at: int) -> None:
    straight = _TinyTrainer()
    expected = _fit(straight, None)
    first = _TinyTrainer()
    first.stop_at = stop_at
    with pytest.raises(_Stop):
        _fit(first, tmp_path)
    saved = FitCheckpoint(tmp_path, "tiny", ("command", {"lr": 1e-2})).load()
    assert saved is not None and saved["fit"]["epoch"] == stop_at - 1
    lines: list[str] = []
    second = _TinyTrainer(seed=123)  # a fresh process: other initial weights and streams, all restored
    torch.manual_seed(5)
    result = fit(second.train_epoch, epochs=6, validate=second.validate, snapshot=second.snapshot,
                 deadline=Deadline(None), label="tiny", progress=lines.append,
                 resume=fit_resume("tiny", ("command", {"lr": 1e-2}), second.parts, apply=second.apply,
                                   folder=tmp_path))
    assert f"tiny: resumed after epoch {stop_at - 1} from the job's checkpoint" in lines
    assert not any(line == f"epoch {stop_at - 1}" for line in lines)
    assert _same(result.state, expected.state)
    assert _same(second.model.state_dict(), straight.model.state_dict())
    assert result.best_epoch == expected.best_epoch and result.history == expected.history
    assert result.epochs_run == 6 and second.steps == straight.steps
    assert isinstance(result.best.payload, float) and result.best.payload == pytest.approx(expected.best.payload)


def test_a_checkpoint_of_another_run_is_ignored(tmp_path: Path) -> None:
    trainer = _TinyTrainer()
    trainer.stop_at = 3
    with pytest.raises(_Stop):
        _fit(trainer, tmp_path)
    other = _TinyTrainer()
    resume = fit_resume("tiny", ("another command", {"lr": 1e-2}), other.parts, folder=tmp_path)
    lines: list[str] = []
    result = fit(other.train_epoch, epochs=2, validate=other.validate, snapshot=other.snapshot,
                 deadline=Deadline(None), progress=lines.append, resume=resume)
    assert result.epochs_run == 2 and not any("resumed" in line for line in lines)


def test_early_stopping_is_kept_across_a_resume(tmp_path: Path) -> None:
    trainer = _TinyTrainer()
    trainer.validate = lambda: ValidationScore(score=0.0)  # type: ignore[method-assign]
    first = _fit(trainer, tmp_path, patience=1)
    assert first.stopped == "early stopping" and first.epochs_run == 2
    again = _TinyTrainer()
    again.stop_at = 1  # it must not train at all
    again.validate = trainer.validate  # type: ignore[method-assign]
    second = _fit(again, tmp_path, patience=1)
    assert second.stopped == "early stopping" and second.epochs_run == 2


def test_the_budget_spent_before_is_counted(tmp_path: Path) -> None:
    now = [0.0]
    clock = lambda: now[0]  # noqa: E731
    command = Deadline(10.0, clock=clock)
    stage = command.share(0.5)
    now[0] = 100.0
    stage.catch_up(250.0)
    assert command.elapsed() == pytest.approx(250.0) and command.remaining() == pytest.approx(350.0)
    assert stage.remaining() == pytest.approx(50.0)
    stage.catch_up(200.0)  # already counted: no change
    assert command.remaining() == pytest.approx(350.0)


def test_global_streams_are_restored() -> None:
    state = capture_state({"counter": 3})
    expected = (torch.rand(2), np.random.rand(2), __import__("random").random())
    values = restore_state({"counter": 0}, state)
    assert values == {"counter": 3}
    again = (torch.rand(2), np.random.rand(2), __import__("random").random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def test_checkpoint_is_written_atomically_and_read_without_code(tmp_path: Path) -> None:
    checkpoint = FitCheckpoint(tmp_path, "tiny", ("a",))
    checkpoint.save({"array": np.arange(3), "value": np.float32(1.5)})
    assert [p.name for p in tmp_path.iterdir()] == ["train-tiny.pt"]
    loaded = checkpoint.load()
    assert loaded is not None and np.array_equal(loaded["array"], np.arange(3)) and loaded["value"] == 1.5
    (tmp_path / "train-tiny.pt").write_bytes(b"torn")
    assert checkpoint.load() is None


def test_outside_a_job_nothing_is_saved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(training_resume.ENV_VARIABLE, raising=False)
    assert fit_resume("tiny", (), dict) is None
    assert training_resume.recorded_registrations() == []


def test_registration_is_recorded_and_told(tmp_path: Path) -> None:
    heard: list[list[dict[str, str]]] = []
    token = training_resume.registration_listener.set(heard.append)
    try:
        training_resume.record_registrations(tmp_path, [{"name": "m", "version": "2"}])
    finally:
        training_resume.registration_listener.reset(token)
    assert json.loads((tmp_path / "registered.json").read_text()) == [{"name": "m", "version": "2"}]
    assert heard == [[{"name": "m", "version": "2"}]]
    assert training_resume.recorded_registrations(tmp_path) == [{"name": "m", "version": "2"}]


def test_a_folder_left_by_another_job_with_the_same_id_is_emptied() -> None:
    folder = training_resume.job_training_folder(7, identity="job 7 of the old store")
    FitCheckpoint(folder, "tiny", ("a",)).save({"epoch": 1})
    training_resume.record_registrations(folder, [{"name": "m", "version": "1"}])
    assert training_resume.job_training_folder(7, identity="job 7 of the old store") == folder
    assert training_resume.recorded_registrations(folder) and (folder / "train-tiny.pt").is_file()
    training_resume.job_training_folder(7, identity="job 7 of a new store")
    assert training_resume.recorded_registrations(folder) == [] and not (folder / "train-tiny.pt").exists()


# -------------------------------------------------------------------------------------------------
# run_epochs: a stage without validation (OSCARS's detectors, the phantom recipes)


def _run(trainer: _TinyTrainer, folder: Path | None, *, epochs: int = 5, deadline: Deadline | None = None,
         progress=None) -> int:  # noqa: ANN001
    from medlim.core.training import run_epochs

    resume = None if folder is None else fit_resume("plain", ("recipe", 1), trainer.parts, apply=trainer.apply,
                                                    folder=folder)
    return run_epochs(trainer.train_epoch, epochs=epochs, deadline=deadline, label="plain", progress=progress,
                      resume=resume)


@pytest.mark.parametrize("stop_at", [2, 5])
def test_interrupted_run_epochs_resumes_at_the_next_epoch_with_the_same_weights(tmp_path: Path,
                                                                                stop_at: int) -> None:
    straight = _TinyTrainer()
    assert _run(straight, None) == 5
    first = _TinyTrainer()
    first.stop_at = stop_at
    with pytest.raises(_Stop):
        _run(first, tmp_path)
    saved = FitCheckpoint(tmp_path, "plain", ("recipe", 1)).load()
    assert saved is not None and saved["fit"]["epoch"] == stop_at - 1
    second, lines = _TinyTrainer(seed=7), []
    trained: list[int] = []
    train_epoch = second.train_epoch
    second.train_epoch = lambda epoch: (trained.append(epoch), train_epoch(epoch))[1]  # type: ignore[method-assign]
    assert _run(second, tmp_path, progress=lines.append) == 5
    assert trained == list(range(stop_at, 6))  # epochs 1..stop_at-1 are not trained again
    assert lines[0] == f"plain: resumed after epoch {stop_at - 1} from the job's checkpoint"
    assert _same(second.model.state_dict(), straight.model.state_dict()) and second.steps == straight.steps == 20


def test_a_finished_stage_is_restored_without_training(tmp_path: Path) -> None:
    done = _TinyTrainer()
    assert _run(done, tmp_path, epochs=3) == 3
    again = _TinyTrainer(seed=3)
    again.stop_at = 1  # any epoch would raise
    assert _run(again, tmp_path, epochs=3) == 3
    assert _same(again.model.state_dict(), done.model.state_dict()) and again.steps == 12


def test_run_epochs_stops_when_the_budget_does_not_cover_another_epoch(tmp_path: Path) -> None:
    now = [0.0]
    trainer = _TinyTrainer()
    train_epoch = trainer.train_epoch

    def slow_epoch(epoch: int) -> str:  # every epoch takes 40 s of a 1-minute budget
        now[0] += 40.0
        return train_epoch(epoch)

    trainer.train_epoch = slow_epoch  # type: ignore[method-assign]
    assert _run(trainer, tmp_path, deadline=Deadline(1.0, clock=lambda: now[0])) == 1  # 20 s left < 40 s
    again = _TinyTrainer()
    again.stop_at = 1
    assert _run(again, tmp_path, deadline=Deadline(1.0, clock=lambda: now[0])) == 1  # the stop is kept

"""A ``train`` job killed mid-run resumes after its last epoch and registers once (issue 15).

The job runs ``medlim train tend --data ...`` through the real job runner on an
SQLite store; "killed" is a :class:`Crash` (a ``BaseException`` the job machinery
does not catch, as with SIGKILL), raised right after the harness saved an
epoch, right after the models were registered, or right before the job's end
was written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
import torch

from medlim.cli import main
from medlim.core.jobs import claim_next_job, get_job, job_log, requeue_stale_jobs, submit_job
from medlim.core.jobs.queue import Lease
from medlim.core.jobs.runner import run_job
from medlim.core.store import open_store
from medlim.core.store.schema import utc_now
from medlim.core.training_resume import ENV_VARIABLE, FitCheckpoint, job_training_folder
from medlim.core.weights import Registry
from medlim.core.weights.files import load_state_dict

TINY_TEND = ["--width", "2", "--ae-epochs", "2", "--epochs", "3", "--warmup-epochs", "1", "--batch-size", "4"]


class Crash(BaseException):
    """Stands for the worker dying (not caught by the job machinery)."""


def _argv(shapes: Path, registry: Path) -> list[str]:
    return ["train", "tend", "--data", str(shapes), "--id-class", "disc", *TINY_TEND, "--weights-dir", str(registry)]


def _crash_on_save(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    """The worker dies right after the harness's ``after``-th epoch checkpoint (then saving works again)."""
    real, saves = FitCheckpoint.save, []

    def save(self: FitCheckpoint, state) -> None:  # noqa: ANN001
        real(self, state)
        saves.append(self.stage)
        if len(saves) == after:
            raise Crash(f"killed after saving {self.stage}")

    monkeypatch.setattr(FitCheckpoint, "save", save)


def _resume(store, job_id: int) -> Lease:  # noqa: ANN001 - a Store
    """The dead attempt's job queued again by the stale-job rule and claimed by another worker."""
    assert requeue_stale_jobs(store, stale_s=60, now=utc_now() + dt.timedelta(seconds=61)) == [job_id]
    lease = claim_next_job(store, "second-worker")
    assert lease is not None and lease.attempt == 2
    return lease


def _versions(registry: Path) -> list[tuple[str, str]]:
    return sorted((entry.name, entry.version) for entry in Registry.load(registry).list())


def _registered(job) -> list[dict[str, str]]:  # noqa: ANN001 - a Job
    return job.result["output"][-1]["registered"]


def test_a_killed_training_job_resumes_after_its_last_epoch_with_the_same_weights(
    shapes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_argv(shapes, tmp_path / "straight")) == 0  # the foreground command: no job, no checkpoint
    capsys.readouterr()
    assert ENV_VARIABLE not in os.environ
    with open_store(f"sqlite:///{tmp_path / 'jobs.sqlite'}") as store:
        job = submit_job(store, "train", {"argv": _argv(shapes, tmp_path / "job")})
        first = claim_next_job(store, "first-worker")
        with pytest.MonkeyPatch.context() as patch, pytest.raises(Crash):
            _crash_on_save(patch, after=3)  # AE epochs 1 and 2, TEND epoch 1
            run_job(store, first)
        assert _versions(tmp_path / "job") == []
        ended = run_job(store, _resume(store, job.id))
        assert ended.state == "done", ended.error
        log = [line.line for line in job_log(store, job.id) if line.attempt == 2]
    assert "AE baseline: resumed after epoch 2 from the job's checkpoint" in log
    assert "TEND: resumed after epoch 1 from the job's checkpoint" in log
    assert not any(line.startswith(("ae epoch", "tend epoch 1/")) for line in log)
    assert _registered(ended) == [{"name": "ae-disc", "version": "1"}, {"name": "tend-disc", "version": "1"}]
    assert _versions(tmp_path / "job") == [("ae-disc", "1"), ("tend-disc", "1")]
    for name in ("ae-disc", "tend-disc"):
        resumed = load_state_dict(Registry.load(tmp_path / "job").get(name))
        straight = load_state_dict(Registry.load(tmp_path / "straight").get(name))
        assert resumed.keys() == straight.keys()
        assert all(torch.equal(resumed[key], straight[key]) for key in resumed), name
    assert not list(job_training_folder(job.id).glob("train-*.pt"))  # the epochs are dropped once done


def test_a_job_killed_after_registering_returns_its_registration_without_a_second_version(
    shapes: Path, tmp_path: Path
) -> None:
    import medlim.curation.ood.folder as ood_folder

    def killed(*_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
        raise Crash("killed after registering")

    with open_store(f"sqlite:///{tmp_path / 'jobs.sqlite'}") as store:
        job = submit_job(store, "train", {"argv": _argv(shapes, tmp_path / "job")})
        with pytest.MonkeyPatch.context() as patch, pytest.raises(Crash):
            patch.setattr(ood_folder, "attach_input_checks", killed)
            run_job(store, claim_next_job(store, "first-worker"))
        assert get_job(store, job.id).checkpoint["registered"] == [{"name": "ae-disc", "version": "1"},
                                                                   {"name": "tend-disc", "version": "1"}]
        assert _versions(tmp_path / "job") == [("ae-disc", "1"), ("tend-disc", "1")]
        ended = run_job(store, _resume(store, job.id))
    assert ended.state == "done", ended.error
    assert _registered(ended) == [{"name": "ae-disc", "version": "1"}, {"name": "tend-disc", "version": "1"}]
    assert _versions(tmp_path / "job") == [("ae-disc", "1"), ("tend-disc", "1")]  # no version 2


def test_a_job_killed_before_its_end_was_written_returns_the_recorded_result(
    shapes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medlim.core.jobs.runner as runner
    import medlim.curation.ood.folder as ood_folder

    real_finish = runner.finish_job

    def killed(store, lease, state, **kwargs):  # noqa: ANN001, ANN003, ANN202
        if state == "done":
            raise Crash("killed before the job's end was written")
        return real_finish(store, lease, state, **kwargs)

    with open_store(f"sqlite:///{tmp_path / 'jobs.sqlite'}") as store:
        job = submit_job(store, "train", {"argv": _argv(shapes, tmp_path / "job")})
        with pytest.MonkeyPatch.context() as patch, pytest.raises(Crash):
            patch.setattr(runner, "finish_job", killed)
            run_job(store, claim_next_job(store, "first-worker"))
        recorded = get_job(store, job.id).checkpoint["result"]
        monkeypatch.setattr(ood_folder, "train_on_folder", lambda *a, **k: pytest.fail("trained again"))
        ended = run_job(store, _resume(store, job.id))
    assert ended.state == "done" and json.dumps(ended.result, sort_keys=True) == json.dumps(recorded, sort_keys=True)
    assert _versions(tmp_path / "job") == [("ae-disc", "1"), ("tend-disc", "1")]


def test_a_job_that_fails_drops_its_epochs(shapes: Path, tmp_path: Path) -> None:
    import medlim.curation.ood.folder as ood_folder
    from medlim.errors import ParameterError

    def refused(*_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
        raise ParameterError("refused after training")

    with open_store(f"sqlite:///{tmp_path / 'jobs.sqlite'}") as store:
        job = submit_job(store, "train", {"argv": _argv(shapes, tmp_path / "job")})
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ood_folder, "attach_input_checks", refused)
            ended = run_job(store, claim_next_job(store, "first-worker"))
    assert ended.state == "failed" and ended.error is not None and ended.error.message == "refused after training"
    assert not list(job_training_folder(job.id).glob("train-*.pt"))

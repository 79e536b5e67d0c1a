"""Resuming a training job after its worker died: per-epoch checkpoints and one registration (issue 15).

A ``train`` job runs ``medlim train MODEL --data ...`` in a worker's child; the
job runner names a per-job folder (``MEDLIM_HOME/jobs/<job id>``) in the
environment variable :data:`ENV_VARIABLE`. When it is set, the harness
(:func:`medlim.core.training.fit`):

* saves after every epoch ``train-<stage>.pt`` in that folder (written to a
  temporary name in the same folder, then ``os.replace``): the trainer's state
  (model, optimiser, scheduler, its random streams), torch's, numpy's and
  Python's global random streams, the epoch, the best state so far with its
  validation, and the budget already spent;
* on start, loads that file when its key (the stage, the recorded command —
  which names the data by its fingerprint — and the plan) matches, and goes on
  from the next epoch with what is left of the budget; a file of another run is
  ignored.

Registration happens once: :func:`register_once` writes ``registered.json`` in
the folder beside the model (and tells the job, through
:data:`registration_listener`, so its checkpoint in the store records it); a
resumed attempt finds the entry there and returns it instead of registering a
second version. Without the variable (the foreground command) nothing is
saved and nothing is read.

The files are loaded with ``torch.load(weights_only=True)``: no code is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlim.core.paths import validate_name

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.weights import Registries
    from medlim.core.weights.entry import WeightsEntry
    from medlim.settings import Settings

__all__ = [
    "ENV_VARIABLE",
    "REGISTERED_NAME",
    "JOB_MARKER_NAME",
    "FitCheckpoint",
    "FitResume",
    "capture_state",
    "claim_once",
    "fit_resume",
    "job_checkpoint_folder",
    "job_training_folder",
    "recorded_registrations",
    "register_once",
    "registration_listener",
    "restore_state",
]

#: The environment variable naming the running job's folder (unset: a foreground command).
ENV_VARIABLE = "MEDLIM_JOB_CHECKPOINT_DIR"
#: The file (in the job's folder) listing the models the job registered.
REGISTERED_NAME = "registered.json"
_CHECKPOINT_FORMAT = 1

#: Called with the job's registrations (``[{"name", "version"}, ...]``) each time one is added; the job runner
#: sets it to record them in the job's checkpoint in the store.
registration_listener: ContextVar[Callable[[list[dict[str, str]]], None] | None] = ContextVar(
    "medlim_registration_listener", default=None)


#: The file (in the job's folder) naming the job its files belong to.
JOB_MARKER_NAME = "job.json"


def job_training_folder(job_id: int, *, identity: str = "", settings: Settings | None = None) -> Path:
    """``MEDLIM_HOME/jobs/<job id>``: where a training job keeps its resume files (created).

    Args:
        job_id: the job's id.
        identity: what tells this job from an earlier one with the same id (its creation time and
            parameters; a new results store numbers its jobs from 1 again): a folder left by another
            job is emptied first.
        settings: default :func:`~medlim.settings.get_settings`.
    """
    from medlim.settings import get_settings

    if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id < 1:
        raise ValueError(f"`job_id` must be a positive integer, {job_id!r} is given.")
    folder = Path((settings or get_settings()).home) / "jobs" / str(job_id)
    folder.mkdir(parents=True, exist_ok=True)
    if identity:
        marker = folder / JOB_MARKER_NAME
        try:
            kept = marker.read_text(encoding="utf-8")
        except OSError:
            kept = None
        if kept != identity:
            for path in [*folder.glob("train-*.pt"), folder / REGISTERED_NAME]:
                path.unlink(missing_ok=True)
            text = identity.encode("utf-8")
            _atomic_write(marker, lambda file: file.write(text))
    return folder


def job_checkpoint_folder(environ: Mapping[str, str] | None = None) -> Path | None:
    """The running job's folder from :data:`ENV_VARIABLE`, or ``None`` (a foreground command)."""
    value = (os.environ if environ is None else environ).get(ENV_VARIABLE, "").strip()
    return Path(value) if value else None


# -------------------------------------------------------------------------------------------------
# states of a trainer's parts


def _storable(value: Any) -> Any:
    """``value`` as ``torch.load(weights_only=True)`` reads it back: numpy arrays tagged, numpy scalars plain."""
    import torch

    if isinstance(value, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.array(value, copy=True))}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu").clone()
    if isinstance(value, Mapping):
        return {key: _storable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_storable(item) for item in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def _from_storable(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__ndarray__"}:
            return value["__ndarray__"].numpy()
        return {key: _from_storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_storable(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_from_storable(item) for item in value)
    return value


def capture_state(parts: Mapping[str, Any]) -> dict[str, Any]:
    """The state of a trainer's parts, ready for a checkpoint.

    Args:
        parts: name → a module, optimiser or scheduler (its ``state_dict``), a
            ``np.random.Generator`` or ``torch.Generator`` (its stream state), or
            a plain value (counters, flags, tensors such as a memory bank).

    Returns:
        name → state; plus ``"__global_rng__"``: torch's (CPU and CUDA), numpy's and Python's global streams.
    """
    import torch

    out: dict[str, Any] = {}
    for name, part in parts.items():
        if isinstance(part, np.random.Generator):
            out[name] = {"numpy_generator": part.bit_generator.state}
        elif isinstance(part, torch.Generator):
            out[name] = {"torch_generator": part.get_state()}
        elif hasattr(part, "state_dict") and hasattr(part, "load_state_dict"):
            out[name] = {"state_dict": _storable(part.state_dict())}
        else:
            out[name] = {"value": _storable(part)}
    legacy = np.random.get_state()
    out["__global_rng__"] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": _storable(list(legacy)),
        "python": random.getstate(),
    }
    return out


def restore_state(parts: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
    """Load ``state`` (from :func:`capture_state`) into ``parts`` in place; the plain values, for the caller to set.

    Raises:
        KeyError: ``state`` lacks a part (a checkpoint of another trainer).
    """
    import torch

    values: dict[str, Any] = {}
    for name, part in parts.items():
        saved = state[name]
        if "numpy_generator" in saved:
            part.bit_generator.state = saved["numpy_generator"]
        elif "torch_generator" in saved:
            part.set_state(saved["torch_generator"])
        elif "state_dict" in saved:
            part.load_state_dict(_from_storable(saved["state_dict"]))
        else:
            values[name] = _from_storable(saved["value"])
    rng = state.get("__global_rng__")
    if rng:
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(tuple(_from_storable(rng["numpy"])))
        random.setstate(rng["python"])
    return values


# -------------------------------------------------------------------------------------------------
# one fit's file


def _key(parts: Sequence[Any]) -> str:
    text = json.dumps(list(parts), sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write through ``write(file)`` to a temporary name in ``path``'s folder, then ``os.replace``."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class FitCheckpoint:
    """``<folder>/train-<stage>.pt``: the resume state of one fit, valid only for the same ``key``.

    Args:
        folder: the job's folder.
        stage: the fit's name within the command (``"scunet"``, ``"cvad-generator"``, ``"detector-0"``).
        key: what the run is: the recorded command (data by fingerprint), the plan; hashed.
    """

    def __init__(self, folder: Path, stage: str, key: Sequence[Any]) -> None:
        self.folder = Path(folder)
        self.stage = validate_name(stage, what="training stage")
        self.key = _key([stage, *key])

    @property
    def path(self) -> Path:
        return self.folder / f"train-{self.stage}.pt"

    def load(self) -> dict[str, Any] | None:
        """The saved state of this run, or ``None`` (no file, a file of another run, or an unreadable one)."""
        import torch

        if not self.path.is_file():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # a torn or foreign file: start over rather than fail the job
            return None
        if not isinstance(saved, dict) or saved.get("key") != self.key or saved.get("format") != _CHECKPOINT_FORMAT:
            return None
        return _from_storable(saved["state"])

    def save(self, state: Mapping[str, Any]) -> None:
        """Replace the file atomically with ``state`` (tensors, numpy values, plain values)."""
        import torch

        self.folder.mkdir(parents=True, exist_ok=True)
        payload = {"format": _CHECKPOINT_FORMAT, "key": self.key, "state": _storable(dict(state))}
        _atomic_write(self.path, lambda file: torch.save(payload, file))


@dataclass(frozen=True)
class FitResume:
    """What :func:`medlim.core.training.fit` needs to save and resume a trainer.

    Attributes:
        checkpoint: the fit's file.
        capture: the trainer's whole state now (:func:`capture_state` of its parts).
        restore: loads such a state back into the trainer.
    """

    checkpoint: FitCheckpoint
    capture: Callable[[], dict[str, Any]]
    restore: Callable[[dict[str, Any]], None]


def fit_resume(stage: str, key: Sequence[Any], parts: Callable[[], Mapping[str, Any]], *,
               apply: Callable[[dict[str, Any]], None] | None = None,
               folder: Path | None = None) -> FitResume | None:
    """A :class:`FitResume` for a running job's fit, or ``None`` outside a job (nothing saved or read).

    Args:
        stage: the fit's name within the command.
        key: what identifies the run (recorded command, plan settings); a saved file of another key is ignored.
        parts: the trainer's parts now (see :func:`capture_state`); called at each save and at the restore.
        apply: sets the plain values back (counters, flags); default: ignore them.
        folder: the job's folder (default: :func:`job_checkpoint_folder`).
    """
    folder = folder if folder is not None else job_checkpoint_folder()
    if folder is None:
        return None

    def restore(state: dict[str, Any]) -> None:
        values = restore_state(parts(), state)
        if apply is not None:
            apply(values)

    return FitResume(FitCheckpoint(folder, stage, key), lambda: capture_state(parts()), restore)


# -------------------------------------------------------------------------------------------------
# registering once


def recorded_registrations(folder: Path | None = None) -> list[dict[str, str]]:
    """The job's registrations (``[{"name", "version"}, ...]``), ``[]`` outside a job or before any."""
    folder = folder if folder is not None else job_checkpoint_folder()
    path = None if folder is None else folder / REGISTERED_NAME
    if path is None or not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [{"name": str(row["name"]), "version": str(row["version"])} for row in rows
            if isinstance(row, dict) and "name" in row and "version" in row]


def record_registrations(folder: Path, rows: Sequence[Mapping[str, str]]) -> None:
    """Write ``registered.json`` (atomically) and tell :data:`registration_listener`."""
    plain = [{"name": str(row["name"]), "version": str(row["version"])} for row in rows]
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(plain, indent=1).encode("utf-8")
    _atomic_write(folder / REGISTERED_NAME, lambda file: file.write(text))
    listener = registration_listener.get()
    if listener is not None:
        listener(list(plain))


def _recorded(name: str, folder: Path | None) -> str | None:
    for row in recorded_registrations(folder):
        if row["name"] == name:
            return row["version"]
    return None


def claim_once(registries: Registries, name: str, version: str | None = None, *,
               folder: Path | None = None) -> str:
    """:meth:`Registries.claim`, except that a name this job already registered keeps its recorded version."""
    recorded = _recorded(name, folder if folder is not None else job_checkpoint_folder())
    return recorded if recorded is not None else registries.claim(name, version)


def register_once(registries: Registries, entry_fields: Mapping[str, Any], state_dict: Mapping[str, Any], *,
                  allow_shipped_folder: bool = False, folder: Path | None = None) -> WeightsEntry:
    """:meth:`Registries.register`, once per job: a resumed job gets the entry it registered before.

    Outside a job (no :data:`ENV_VARIABLE`) this is :meth:`Registries.register`.

    Raises:
        WeightsError: as :meth:`Registries.register` (the name and version are taken, ...).
    """
    folder = folder if folder is not None else job_checkpoint_folder()
    name = str(entry_fields.get("name", ""))
    recorded = _recorded(name, folder) if folder is not None else None
    if recorded is not None:
        return registries.reload().get(name, recorded)
    entry = registries.register(entry_fields, state_dict, allow_shipped_folder=allow_shipped_folder)
    if folder is not None:
        record_registrations(folder, [*recorded_registrations(folder),
                                      {"name": entry.name, "version": entry.version}])
    return entry

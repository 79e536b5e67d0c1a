"""Import external PyTorch checkpoints into the registry format.

An external checkpoint (e.g. the published SCU-Net files, METHODS.md §1) is
read without unpickling code (``torch.load(weights_only=True)``), its keys
are renamed by an explicit importer (unknown or missing keys are errors),
floating tensors become float32, and the result must load into the
architecture with ``strict=True`` before anything is written.
"""

from __future__ import annotations

import pickle
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from medlim.core.weights.architectures import (
    IMPORTER_DEFAULTS,
    build_architecture,
    load_strict,
    resolve_importer,
)
from medlim.core.weights.entry import InputContract, TrainingProvenance, WeightsEntry
from medlim.core.weights.registries import Registries
from medlim.core.weights.registry import Registry, save_weights, sha256_file
from medlim.errors import CheckpointMappingError, WeightsError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["LoadedModel", "import_checkpoint", "load_checkpoint_in_memory", "read_checkpoint"]

#: Keys under which training scripts commonly nest the state dict.
_NESTED_KEYS = ("state_dict", "model_state_dict", "model")

#: Intended use of weights imported from outside medlim.
IMPORTED_INTENDED_USE = "Research use only, not for diagnosis; external weights imported from a checkpoint"


@dataclass(frozen=True)
class LoadedModel:
    """A network built from an external checkpoint without writing it anywhere.

    Attributes:
        entry: manifest-like record (``file`` is the checkpoint's absolute path,
            ``sha256`` the checkpoint file's digest).
        model: the network in eval mode.
    """

    entry: WeightsEntry
    model: "torch.nn.Module"


def read_checkpoint(path: Path | str) -> dict[str, "torch.Tensor"]:
    """Tensors of an external checkpoint, read without running pickled code.

    Accepts a ``.safetensors`` file, a saved state dict, or a dict holding one
    under ``state_dict``/``model_state_dict``/``model`` (other entries such as
    ``epoch`` are ignored).

    Returns:
        ``{key: torch.Tensor}`` on the CPU, keys and dtypes as stored.

    Raises:
        WeightsError: missing or unreadable file, a pickled full model (which
            cannot be loaded safely), or no tensors found.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist.")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if path.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, ValueError, OSError) as exc:
            if path.suffix == ".safetensors":
                raise WeightsError(f"checkpoint {path} is not a valid safetensors file: {exc}") from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch reports a pickled class (a whole model, an optimiser, ...) as an
        # "Unsupported global"; anything else is bytes that are no checkpoint at all.
        if "unsupported global" not in str(exc).lower():
            raise WeightsError(f"{path} is not a readable PyTorch checkpoint (the pickle stream is invalid).") from None
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise WeightsError(
            f"checkpoint {path} holds pickled Python objects{what} (probably a whole model saved with "
            "torch.save(model)). medlim does not unpickle code, so it cannot be loaded safely. "
            "Where you trust it, re-save only its state dict: torch.save(model.state_dict(), 'file.pt')."
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types for non-checkpoint bytes
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc}).") from None

    state = loaded
    if isinstance(loaded, Mapping):
        for key in _NESTED_KEYS:
            if isinstance(loaded.get(key), Mapping):
                state = loaded[key]
                break
    if not isinstance(state, Mapping) or not state:
        raise WeightsError(f"checkpoint {path} holds no state dict (found {type(loaded).__name__}).")
    not_tensors = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise WeightsError(
            f"checkpoint {path}: the state dict has entries that are not tensors: {not_tensors[:10]}."
        )
    return {str(k): v for k, v in state.items()}


def _to_float32(state_dict: Mapping[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
    import torch

    return {k: (v.to(torch.float32) if v.is_floating_point() else v) for k, v in state_dict.items()}


def _prepare(
    path: Path,
    *,
    importer: str,
    overrides: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, "torch.Tensor"], "torch.nn.Module", str]:
    """Read, map, convert and strictly load; return (entry fields, tensors, model, checkpoint sha)."""
    if importer not in IMPORTER_DEFAULTS:
        resolve_importer(importer)  # raises "unknown checkpoint importer" with the known names
        raise WeightsError(f"importer {importer!r} has no target architecture; register it with one.")
    defaults = dict(IMPORTER_DEFAULTS[importer])
    source_note = defaults.pop("source_note", None)
    fields: dict[str, Any] = {**defaults, **{k: v for k, v in overrides.items() if v is not None}}
    if isinstance(fields.get("input_contract"), Mapping):
        fields["input_contract"] = InputContract.from_dict(fields["input_contract"])
    for required in ("task", "preset", "input_contract"):
        if required not in fields:
            raise WeightsError(f"importer {importer!r} gives no default {required!r}; pass one.")

    checkpoint_sha = sha256_file(path)
    mapper = resolve_importer(importer)
    raw = read_checkpoint(path)
    mapped = mapper(dict(raw))
    if not isinstance(mapped, Mapping):
        raise CheckpointMappingError(f"importer {importer!r} returned {type(mapped).__name__}, not a state dict.")
    tensors = _to_float32(mapped)

    source = f"{path.name} (sha256 {checkpoint_sha})"
    if source_note:
        source += f"; {source_note}"
    fields.setdefault("intended_use", IMPORTED_INTENDED_USE)
    fields.setdefault("description", f"imported from {path.name} with importer {importer}")
    fields["provenance"] = TrainingProvenance(command="", seed=None, source=source)

    probe = WeightsEntry(file=path.name, sha256=checkpoint_sha, **fields)
    model = build_architecture(probe)
    load_strict(model, tensors, label=probe.label)
    return fields, tensors, model, checkpoint_sha


def import_checkpoint(
    path: Path | str,
    *,
    importer: str,
    name: str,
    version: str | None = None,
    preset: str | None = None,
    output_type: str | None = None,
    thresholds: Mapping[str, float] | None = None,
    params: Mapping[str, Any] | None = None,
    registry: Registry | Registries | None = None,
    task: str | None = None,
    input_contract: InputContract | None = None,
    metrics: Mapping[str, Any] | None = None,
    intended_use: str | None = None,
    description: str | None = None,
) -> WeightsEntry:
    """Convert an external checkpoint into a registry entry (safetensors + manifest).

    Args:
        path: the checkpoint (``.pt``/``.pth``/``.safetensors``).
        importer: key of :data:`medlim.core.weights.IMPORTERS` (e.g. ``"scunet-published"``).
        name, version: identity of the new entry; ``version=None`` takes the next free one.
        preset, output_type, thresholds, params, task, input_contract, metrics,
            intended_use, description: manifest fields; ``None`` takes the
            importer's default from :data:`IMPORTER_DEFAULTS`.
        registry: where to write. Default (or a :class:`Registries`): the user
            registry, refusing a name and version taken in either registry. A
            plain :class:`Registry` folder (a maintainer's) is written as is, an
            entry of the same name and version replaced.

    Returns:
        The saved entry.

    Raises:
        WeightsError: unreadable or unsafe checkpoint, unknown importer.
        CheckpointMappingError: keys that the importer does not map exactly, or
            tensors that do not fit the architecture.
    """
    path = Path(path)
    registry = Registries.load() if registry is None else registry
    if isinstance(registry, Registries):
        version = registry.claim(name, version)  # before any work: a taken name fails at once
    elif version is None:
        taken = [int(e.version) for e in registry.list() if e.name == name and e.version.isdigit()]
        version = str(max(taken, default=0) + 1)
    overrides = {
        "name": name,
        "version": version,
        "preset": preset,
        "output_type": output_type,
        "thresholds": dict(thresholds) if thresholds is not None else None,
        "params": dict(params) if params is not None else None,
        "task": task,
        "input_contract": input_contract,
        "metrics": dict(metrics) if metrics is not None else None,
        "intended_use": intended_use,
        "description": description,
    }
    fields, tensors, _model, _sha = _prepare(path, importer=importer, overrides=overrides)
    command = ["medlim", "weights", "import", path.name, "--importer", importer, "--name", name, "--version", version]
    if preset is not None:
        command += ["--preset", preset]
    if output_type is not None:
        command += ["--output-type", output_type]
    if thresholds is not None and set(thresholds) == {"output"}:
        command += ["--threshold", repr(float(thresholds["output"]))]
    fields["provenance"] = TrainingProvenance(
        command=shlex.join(command), seed=None, source=fields["provenance"].source
    )
    # The strict load above already proved the tensors fit; no need to build twice.
    if isinstance(registry, Registries):
        return registry.register(fields, tensors, check_architecture=False)
    return save_weights(registry, fields, tensors, check_architecture=False)


def load_checkpoint_in_memory(
    path: Path | str,
    *,
    importer: str,
    device: "torch.device | str | None" = None,
    **overrides: Any,
) -> LoadedModel:
    """Build a network straight from an external checkpoint, writing nothing.

    For ``--weights path.pt`` style use: same reading, explicit mapping, float32
    conversion and strict loading as :func:`import_checkpoint`.

    Args:
        path: the checkpoint.
        importer: key of :data:`medlim.core.weights.IMPORTERS`.
        device: where to put the model (``None``: the settings' device).
        **overrides: manifest fields replacing the importer's defaults
            (``name`` default ``"external"``, ``version`` default ``"0"``).
    """
    from medlim.core.device import select_device

    path = Path(path).resolve()
    overrides = {"name": "external", "version": "0", **overrides}
    fields, _tensors, model, checkpoint_sha = _prepare(path, importer=importer, overrides=overrides)
    entry = WeightsEntry(file=str(path), sha256=checkpoint_sha, **fields)
    model.to(select_device() if device is None else device)
    return LoadedModel(entry=entry, model=model.eval())

"""Architectures and checkpoint importers, by name, resolved lazily.

The tables hold ``"package.module:function"`` strings, so reading a manifest
or listing models imports no network code; the function is imported when a
model is built. Tests and plug-ins may register a callable directly.

* architecture builder: ``(**kwargs) -> torch.nn.Module``;
* checkpoint importer (key mapper): ``(state_dict) -> state_dict`` that renames
  keys explicitly and raises ``CheckpointMappingError`` on any unknown or
  missing key (never ``strict=False``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, Mapping

from medlim.core.weights.entry import WeightsEntry
from medlim.errors import CheckpointMappingError, WeightsError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "ARCHITECTURES",
    "IMPORTERS",
    "IMPORTER_DEFAULTS",
    "build_architecture",
    "build_model",
    "load_strict",
    "register_architecture",
    "register_importer",
    "resolve_architecture",
    "resolve_importer",
]

#: Architecture name -> builder, as ``"module:function"`` (or a callable).
ARCHITECTURES: dict[str, str | Callable[..., Any]] = {
    "scunet": "medlim.mammography.scunet:build_scunet",
    "maskrcnn-steatosis": "medlim.microscopy.steatosis.network:build_steatosis_maskrcnn",
    "ood-autoencoder": "medlim.curation.ood.nets:build_ood_autoencoder",
    "tend": "medlim.curation.ood.nets:build_tend",
    "cvad": "medlim.curation.ood.nets:build_cvad",
    "retrieval-resnet18": "medlim.curation.retrieval.nets:build_retrieval_resnet",
    "pms-resnet18": "medlim.curation.retrieval.nets:build_pms",
}

#: Importer name -> key mapper, as ``"module:function"`` (or a callable).
IMPORTERS: dict[str, str | Callable[..., Any]] = {
    "scunet-published": "medlim.mammography.checkpoint:map_published_scunet",
}

#: Importer name -> manifest defaults for weights it imports. ``architecture``
#: is required; the rest (task, input contract, preset, output type,
#: thresholds, params) are defaults that the caller may override.
#: scunet-published: the authors' inference settings (METHODS.md §1,
#: "published"): 8-bit grey image, median 5, patch normalisation
#: (x/255 − 0.2813)/0.1256 repeated to 3 channels, 32 px overlap, max merge,
#: skip patches with mean ≤ 20 or std ≤ 10, raw output, cut-off 0.65.
IMPORTER_DEFAULTS: dict[str, dict[str, Any]] = {
    "scunet-published": {
        "architecture": "scunet",
        "task": "bac-segmentation",
        "input_contract": {
            "channels": 3,
            "size": [512, 512],
            "dtype": "float32",
            "range": [(0.0 - 0.2813) / 0.1256, (1.0 - 0.2813) / 0.1256],
        },
        "preset": "published",
        "output_type": "raw",
        "thresholds": {"output": 0.65},
        "params": {"overlap": 32, "merge": "max", "skip": {"mean_le": 20, "std_le": 10}},
        "source_note": "Emory-HITI/BAC_segmentation (MIT licence), trained on real mammograms",
    },
}


def _check_target(name: str, target: str | Callable[..., Any], *, what: str) -> None:
    if callable(target):
        return
    if not isinstance(target, str) or target.count(":") != 1 or not all(target.split(":")):
        raise WeightsError(f"{what} {name!r} must be 'package.module:function' or a callable; {target!r} is given.")


def register_architecture(name: str, builder: str | Callable[..., Any], *, replace: bool = False) -> None:
    """Register an architecture builder ``(**kwargs) -> nn.Module`` under ``name``."""
    _check_target(name, builder, what="architecture")
    if name in ARCHITECTURES and not replace and ARCHITECTURES[name] != builder:
        raise WeightsError(f"architecture {name!r} is already registered as {ARCHITECTURES[name]!r}.")
    ARCHITECTURES[name] = builder


def register_importer(
    name: str,
    mapper: str | Callable[..., Any],
    *,
    architecture: str,
    defaults: Mapping[str, Any] | None = None,
    replace: bool = False,
) -> None:
    """Register a checkpoint key mapper under ``name``, producing weights for ``architecture``.

    Args:
        name: importer name used by ``medlim weights import --importer``.
        mapper: ``(state_dict) -> state_dict`` or its ``"module:function"`` path.
        architecture: key of :data:`ARCHITECTURES` the mapped keys belong to.
        defaults: manifest defaults (see :data:`IMPORTER_DEFAULTS`).
        replace: allow replacing an existing importer.
    """
    _check_target(name, mapper, what="importer")
    if name in IMPORTERS and not replace and IMPORTERS[name] != mapper:
        raise WeightsError(f"importer {name!r} is already registered as {IMPORTERS[name]!r}.")
    IMPORTERS[name] = mapper
    IMPORTER_DEFAULTS[name] = {**dict(defaults or {}), "architecture": architecture}


def _resolve(table: Mapping[str, str | Callable[..., Any]], name: str, *, what: str) -> Callable[..., Any]:
    if name not in table:
        known = ", ".join(sorted(table)) or "none"
        raise WeightsError(f"unknown {what} {name!r} (known: {known}).")
    target = table[name]
    if callable(target):
        return target
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise WeightsError(f"{what} {name!r} needs module {module_name!r}, which is not available: {exc}") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise WeightsError(f"{what} {name!r}: {module_name} has no function {attribute!r}.")
    return function


def resolve_architecture(name: str) -> Callable[..., "torch.nn.Module"]:
    """The builder registered as ``name`` (imports its module now)."""
    return _resolve(ARCHITECTURES, name, what="architecture")


def resolve_importer(name: str) -> Callable[[dict[str, "torch.Tensor"]], dict[str, "torch.Tensor"]]:
    """The key mapper registered as ``name`` (imports its module now)."""
    return _resolve(IMPORTERS, name, what="checkpoint importer")


def build_architecture(entry: WeightsEntry) -> "torch.nn.Module":
    """A freshly initialised network for ``entry`` (no weights loaded)."""
    import torch

    builder = resolve_architecture(entry.architecture)
    model = builder(**dict(entry.architecture_kwargs))
    if not isinstance(model, torch.nn.Module):
        raise WeightsError(f"architecture {entry.architecture!r} returned {type(model).__name__}, not an nn.Module.")
    return model


def load_strict(model: "torch.nn.Module", state_dict: Mapping[str, "torch.Tensor"], *, label: str) -> None:
    """Load ``state_dict`` into ``model`` with ``strict=True``.

    Raises:
        CheckpointMappingError: keys missing from or unknown to the model, or
            tensor shapes that differ (the message lists them).
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise CheckpointMappingError(
            f"weights {label} do not fit the architecture: missing keys {missing[:10]}"
            f"{' …' if len(missing) > 10 else ''}, unexpected keys {unexpected[:10]}"
            f"{' …' if len(unexpected) > 10 else ''}."
        )
    wrong = [
        f"{k}: {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if wrong:
        raise CheckpointMappingError(f"weights {label} have tensors of the wrong shape: {wrong[:10]}.")
    try:
        model.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:  # e.g. dtype that cannot be copied
        raise CheckpointMappingError(f"weights {label} cannot be loaded: {exc}") from None


def build_model(entry: WeightsEntry, device: "torch.device | str | None" = None) -> "torch.nn.Module":
    """The entry's network with its verified weights, in eval mode.

    Args:
        entry: a registry entry (its file is checked against its sha256 first).
        device: where to put the model; ``None`` uses
            :func:`medlim.core.device.select_device` (the settings' choice).

    Raises:
        ChecksumError: the file does not match the manifest.
        CheckpointMappingError: the file's keys or shapes do not fit the architecture.
    """
    from medlim.core.device import select_device
    from medlim.core.weights.files import load_state_dict

    state_dict = load_state_dict(entry)
    model = build_architecture(entry)
    load_strict(model, state_dict, label=entry.label)
    model.to(select_device() if device is None else device)
    return model.eval()

"""``medlim info``: versions, device, weights and results store in one place.

:func:`collect_info` returns a typed :class:`SystemInfo` (the home page may
show the same facts); the command prints it as text or ``--json``.
"""

from __future__ import annotations

import argparse
import json
import platform
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import medlim

__all__ = ["ModelStatus", "SystemInfo", "collect_info", "register"]

#: Distributions reported, as (label, candidate distribution names).
_PACKAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("torch", ("torch",)),
    ("torchvision", ("torchvision",)),
    ("numpy", ("numpy",)),
    ("pydicom", ("pydicom",)),
    ("faiss", ("faiss-cpu", "faiss-gpu-cu12", "faiss-gpu", "faiss")),
    ("streamlit", ("streamlit",)),
    ("sqlalchemy", ("sqlalchemy",)),
    ("safetensors", ("safetensors",)),
)


@dataclass(frozen=True)
class ModelStatus:
    """One registered model and whether its file matches its checksum."""

    name: str
    version: str
    task: str
    preset: str
    status: str  # "ok", "missing", "mismatch"


@dataclass(frozen=True)
class SystemInfo:
    """What ``medlim info`` reports.

    Attributes:
        medlim: medlim version.
        python: Python version.
        packages: distribution label -> version (``None`` when not installed).
        device: device summary, e.g. ``"CPU (2 threads)"`` or ``"CUDA: NVIDIA H100"``.
        faiss_gpus: GPUs FAISS can use (0 for the CPU build; ``None`` without FAISS).
        weights_dir: registry folder.
        models: registered models with their checksum status.
        weights_error: why the manifest could not be read, or ``None``.
        database_url: results-store URL (password hidden).
    """

    medlim: str
    python: str
    packages: dict[str, str | None]
    device: str
    faiss_gpus: int | None
    weights_dir: str
    models: tuple[ModelStatus, ...]
    weights_error: str | None
    database_url: str


def _version(candidates: tuple[str, ...]) -> str | None:
    for name in candidates:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _faiss_gpus() -> int | None:
    try:
        import faiss
    except ImportError:
        return None
    get_num_gpus = getattr(faiss, "get_num_gpus", None)
    return int(get_num_gpus()) if get_num_gpus is not None else 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(invalid URL)"


def collect_info(*, weights_dir: Path | None = None, verify: bool = True) -> SystemInfo:
    """Gather versions, device, weights and store location.

    Args:
        weights_dir: registry folder (default: ``Settings.weights_dir``).
        verify: check every weights file's sha256 (reads each file once).
    """
    from medlim.core.device import device_summary
    from medlim.core.weights import Registry
    from medlim.errors import WeightsError
    from medlim.settings import get_settings

    settings = get_settings()
    directory = Path(weights_dir) if weights_dir is not None else settings.weights_dir
    models: list[ModelStatus] = []
    weights_error = None
    try:
        registry = Registry.load(directory)
        for entry in registry.list():
            status = registry.verify(entry).status if verify else "unchecked"
            models.append(ModelStatus(entry.name, entry.version, entry.task, entry.preset, status))
    except WeightsError as exc:
        weights_error = exc.message
    return SystemInfo(
        medlim=medlim.__version__,
        python=platform.python_version(),
        packages={label: _version(names) for label, names in _PACKAGES},
        device=device_summary(),
        faiss_gpus=_faiss_gpus(),
        weights_dir=str(directory),
        models=tuple(models),
        weights_error=weights_error,
        database_url=_safe_url(settings.database_url),
    )


def _print_text(info: SystemInfo) -> None:
    print(f"medlim {info.medlim} (research use only, not for diagnosis)")
    print(f"python {info.python}")
    for label, version in info.packages.items():
        print(f"{label} {version or 'not installed'}")
    print(f"device: {info.device}")
    if info.faiss_gpus is None:
        faiss = "not installed"
    else:
        faiss = f"{info.faiss_gpus} GPU(s)" if info.faiss_gpus else "CPU only"
    print(f"faiss GPU: {faiss}")
    print(f"weights: {info.weights_dir}")
    if info.weights_error:
        print(f"  manifest error: {info.weights_error}")
    elif not info.models:
        print("  (no models registered)")
    for model in info.models:
        print(f"  {model.name}@{model.version} [{model.task}, preset {model.preset}]: {model.status}")
    print(f"results store: {info.database_url}")


def _cmd_info(args: argparse.Namespace) -> int:
    info = collect_info(weights_dir=args.weights_dir, verify=not args.no_verify)
    if args.json:
        print(json.dumps(asdict(info), indent=2))
    else:
        _print_text(info)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="versions, device, weights and results store")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--weights-dir", type=Path, default=None, help="registry folder (default: settings)")
    parser.add_argument("--no-verify", action="store_true", help="skip checking weights checksums")
    parser.set_defaults(func=_cmd_info)

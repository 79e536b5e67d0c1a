"""``medlim info``: versions, device, weights and results store in one place.

:func:`collect_info` returns a typed :class:`SystemInfo` (the home page may
show the same facts); the command prints it as text or ``--json``. Models are
listed from the shipped and the user registry together
(:class:`medlim.core.weights.Registries`), each with its registry and whether
it is its task's default.
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
    """One registered model and whether its file matches its checksum.

    Attributes:
        name, version, task, preset: from its manifest entry.
        status: ``"ok"``, ``"missing"``, ``"mismatch"`` or ``"unchecked"``.
        source: ``"shipped"`` (with medlim) or ``"user"`` (trained or imported by a user).
        task_default: it is its task's default model now.
    """

    name: str
    version: str
    task: str
    preset: str
    status: str
    source: str = "shipped"
    task_default: bool = False


@dataclass(frozen=True)
class SystemInfo:
    """What ``medlim info`` reports.

    Attributes:
        medlim: medlim version.
        python: Python version.
        packages: distribution label -> version (``None`` when not installed).
        device: device summary, e.g. ``"CPU (2 threads)"`` or ``"CUDA: NVIDIA H100"``.
        faiss_gpus: GPUs FAISS can use (0 for the CPU build; ``None`` without FAISS).
        weights_dir: the shipped registry folder.
        models: registered models of both registries with their checksum status.
        weights_error: why a manifest could not be read, or ``None``.
        database_url: results-store URL (password hidden).
        models_dir: the user registry folder (models trained or imported by users).
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
    models_dir: str = ""


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


def collect_info(*, weights_dir: Path | None = None, models_dir: Path | None = None, verify: bool = True) -> SystemInfo:
    """Gather versions, device, the models of both registries and the store location.

    Args:
        weights_dir: the shipped registry folder (default: ``Settings.weights_dir``).
        models_dir: the user registry folder (default: ``Settings.models_dir``).
        verify: check every weights file's sha256 (reads each file once).
    """
    from medlim.core.device import device_summary
    from medlim.core.weights import Registries
    from medlim.errors import WeightsError
    from medlim.settings import get_settings

    settings = get_settings()
    directory = Path(weights_dir) if weights_dir is not None else Path(settings.weights_dir)
    user_directory = Path(models_dir) if models_dir is not None else Path(settings.models_dir or settings.home / "models")
    models: list[ModelStatus] = []
    weights_error = None
    try:
        registries = Registries.load(settings, weights_dir=directory, models_dir=user_directory)
        for listed in registries.models():
            entry = listed.entry
            registry = registries.shipped if listed.source == "shipped" else registries.user
            status = registry.verify(entry).status if verify else "unchecked"
            models.append(ModelStatus(entry.name, entry.version, entry.task, entry.preset, status,
                                      listed.source, listed.task_default))
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
        models_dir=str(user_directory),
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
    print(f"weights (shipped): {info.weights_dir}")
    print(f"your models: {info.models_dir}")
    if info.weights_error:
        print(f"  manifest error: {info.weights_error}")
    elif not info.models:
        print("  (no models registered)")
    for model in info.models:
        marks = ["yours" if model.source == "user" else "shipped"] + (["task default"] if model.task_default else [])
        print(f"  {model.name}@{model.version} [{model.task}, preset {model.preset}]: {model.status} "
              f"({', '.join(marks)})")
    print(f"results store: {info.database_url}")


def _cmd_info(args: argparse.Namespace) -> int:
    info = collect_info(weights_dir=args.weights_dir, models_dir=args.models_dir, verify=not args.no_verify)
    if args.json:
        print(json.dumps(asdict(info), indent=2))
    else:
        _print_text(info)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="versions, device, weights and results store")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="shipped registry folder (default: MEDLIM_WEIGHTS_DIR or weights/)")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="user registry folder (default: MEDLIM_MODELS_DIR or MEDLIM_HOME/models)")
    parser.add_argument("--no-verify", action="store_true", help="skip checking weights checksums")
    parser.set_defaults(func=_cmd_info)

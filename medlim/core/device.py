"""Choose the compute device: CUDA when present (and allowed), CPU otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["select_device", "device_summary"]


def select_device(preference: str | None = None) -> torch.device:
    """Return the torch device to use.

    Args:
        preference: ``"auto"`` (default from settings), ``"cpu"`` or ``"cuda"``.
            ``"cuda"`` falls back to CPU with no error when no GPU exists.
    """
    import torch

    from medlim.settings import get_settings

    choice = (preference or get_settings().device).lower()
    if choice in {"auto", "cuda"} and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def device_summary() -> str:
    """Human-readable description of the device in use, e.g. ``"CPU (2 threads)"``."""
    import torch

    device = select_device()
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    return f"CPU ({torch.get_num_threads()} threads)"

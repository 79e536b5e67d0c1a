"""Weights files: sha256 digests and the checksum-first safetensors reader.

Kept apart from the registry (:mod:`.registry`) and the architecture table
(:mod:`.architectures`), which both read files, so that neither imports the
other to do so. Nothing here unpickles: files are safetensors.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from medlim.core.weights.entry import WeightsEntry
from medlim.errors import ChecksumError, WeightsError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["load_state_dict", "sha256_bytes", "sha256_file"]


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_state_dict(entry: WeightsEntry) -> dict[str, "torch.Tensor"]:
    """Read an entry's safetensors file after checking its sha256.

    The file is read once; the checksum is computed over those bytes and the
    tensors are decoded from the same bytes (no window between check and use).

    Returns:
        ``{parameter name: torch.Tensor}`` on the CPU, dtypes as stored.

    Raises:
        WeightsError: the file is missing or not safetensors.
        ChecksumError: the file's sha256 differs from the manifest.
    """
    path = entry.path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WeightsError(
            f"the weights file for {entry.label} is missing: {path}. Restore it or re-import the model."
        ) from None
    except OSError as exc:
        raise WeightsError(f"the weights file {path} cannot be read: {exc}") from None
    actual = sha256_bytes(data)
    if actual != entry.sha256:
        raise ChecksumError(
            f"the weights file {path} does not match the manifest for {entry.label} "
            f"(sha256 {actual}, expected {entry.sha256}); it was changed or damaged."
        )
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    try:
        return load_safetensors(data)
    except (SafetensorError, ValueError) as exc:
        raise WeightsError(f"the weights file {path} is not a valid safetensors file: {exc}") from None

"""The seeded phantom framework: kinds, seeds, and the common write step.

A phantom is a pure function of ``(kind, parameters, seed, index)``: the
generator draws every random number from a :class:`numpy.random.Generator`
built from those values (never from the global RNG) and returns a frozen
dataclass holding the image and its exact ground truth. Each kind is described
by a :class:`PhantomKind`; :mod:`medlim.phantoms.registry` maps kind names to
them by lazy import strings. This is the synthetic-data core behind every
trained model of the workbench (thesis §3.3 for mammograms, §3.1–3.2 for
microscopy), since the thesis data cannot be shipped.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlim.errors import ParameterError

__all__ = [
    "PhantomKind",
    "rng_for",
    "check_seed",
    "write_manifest",
    "write_generic",
    "save_png",
    "smooth_noise",
    "ellipse_window",
]

#: A generator: ``generate(*, seed, index, **params) -> phantom dataclass``.
GenerateFn = Callable[..., Any]
#: A writer: ``write(phantom, out_dir, *, stem, **options) -> list[manifest row]``.
WriteFn = Callable[..., list[dict[str, Any]]]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float, *,
                 dtype: type = np.float64) -> np.ndarray:
    """A smooth random field: white noise of ``dtype`` blurred by ``sigma`` px, scaled to unit std.

    Returns:
        ``np.ndarray[shape]`` of ``dtype``, mean ≈ 0, std 1.
    """
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(dtype, copy=False), sigma)
    return field / (field.std() + 1e-12)


def ellipse_window(
    yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, a: float, b: float, angle: float
) -> tuple[tuple[slice, slice], np.ndarray]:
    """Normalised elliptical radius of an object around its bounding window.

    Args:
        yy, xx: ``np.ndarray[H, W]`` row and column coordinate grids.
        cy, cx: centre (px).
        a, b: semi-axes (px), ``a ≥ b``; angle: orientation of ``a`` (rad).

    Returns:
        ``(window, rho)``: the ``(rows, cols)`` slices of the box
        ``[c − a − 2, c + a + 3)`` clipped to the grid, and ``rho`` over that
        window, ``√((u/a)² + (v/b)²)`` in the ellipse's own axes (≤ 1 inside).
    """
    height, width = yy.shape
    rows = slice(int(max(0, cy - a - 2)), int(min(height, cy + a + 3)))
    cols = slice(int(max(0, cx - a - 2)), int(min(width, cx + a + 3)))
    dy, dx = yy[rows, cols] - cy, xx[rows, cols] - cx
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    return (rows, cols), np.sqrt((u / a) ** 2 + (v / b) ** 2)


def check_seed(seed: int) -> int:
    """Validate a seed (a non-negative Python int) and return it."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise ParameterError(f"`seed` must be a non-negative integer, {seed!r} is given.")
    return int(seed)


def _key_to_int(key: int | str) -> int:
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if int(key) < 0:
            raise ParameterError(f"random-stream keys must be non-negative, {key!r} is given.")
        return int(key)
    # Strings become stable 64-bit integers (Python's hash() is salted per process).
    digest = hashlib.sha256(str(key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def rng_for(seed: int, *keys: int | str) -> np.random.Generator:
    """An independent random stream for ``seed`` and a path of keys.

    ``rng_for(7, "patient", 3, "L")`` always gives the same stream, unrelated to
    ``rng_for(7, "patient", 3, "R")``; streams are derived with
    :class:`numpy.random.SeedSequence`, so adding a key never shifts another
    stream (per-patient anatomy stays the same whatever else is drawn).

    Args:
        seed: non-negative integer.
        *keys: non-negative integers or strings naming the sub-stream.

    Returns:
        A fresh ``numpy.random.Generator`` (PCG64).
    """
    entropy = [check_seed(seed), *(_key_to_int(k) for k in keys)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


@dataclass(frozen=True)
class PhantomKind:
    """One kind of phantom, as the registry and the command line see it.

    Attributes:
        name: registry name (``"mammogram"``).
        summary: one line for ``medlim phantom --help``.
        generate: ``generate(*, seed: int, index: int = 0, **params) -> phantom``;
            a pure function of its arguments.
        write: ``write(phantom, out_dir: Path, *, stem: str, **options) -> list[dict]``
            writing the image and ground truth under ``out_dir`` and returning
            manifest rows (flat JSON-able dicts, file paths relative to ``out_dir``).
            ``None`` uses :func:`write_generic`.
        add_arguments: adds kind-specific options to an ``argparse`` parser.
        split_arguments: turns parsed options into ``(generate_params, write_options)``.
    """

    name: str
    summary: str
    generate: GenerateFn
    write: WriteFn | None = None
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    split_arguments: Callable[[argparse.Namespace], tuple[dict[str, Any], dict[str, Any]]] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def iter_phantoms(self, *, n: int, seed: int, **params: Any) -> Iterator[Any]:
        """Phantoms ``index = 0 .. n-1`` for ``seed`` (each one independent of ``n``)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ParameterError(f"`n` must be a non-negative integer, {n!r} is given.")
        seed = check_seed(seed)
        for index in range(int(n)):
            yield self.generate(seed=seed, index=index, **params)

    def write_one(self, phantom: Any, out_dir: Path, *, stem: str, **options: Any) -> list[dict[str, Any]]:
        """Write one phantom with the kind's writer (or :func:`write_generic`)."""
        writer = self.write or write_generic
        return writer(phantom, Path(out_dir), stem=stem, **options)


def save_png(path: Path, array: np.ndarray) -> None:
    """Write a 2-D (or H×W×3) array as PNG: bool → 0/255 uint8; uint8/uint16 as is;
    floats in [0, 1] → uint8."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(array)
    if data.dtype == bool:
        data = data.astype(np.uint8) * 255
    elif np.issubdtype(data.dtype, np.floating):
        data = np.clip(np.rint(data * 255.0), 0, 255).astype(np.uint8)
    elif data.dtype not in (np.uint8, np.uint16):
        if data.min() < 0 or data.max() > 65535:
            raise ParameterError(f"cannot store values in [{data.min()}, {data.max()}] as PNG.")
        data = data.astype(np.uint16 if data.max() > 255 else np.uint8)
    if data.ndim == 3 and data.shape[2] == 3:
        data = data[:, :, ::-1]  # OpenCV writes BGR
    if not cv2.imwrite(str(path), np.ascontiguousarray(data)):
        raise ParameterError(f"could not write PNG {str(path)!r}.")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not isinstance(getattr(value, f.name), np.ndarray)}
    return value


def write_generic(phantom: Any, out_dir: Path, *, stem: str, skip: Sequence[str] = (),
                  **options: Any) -> list[dict[str, Any]]:
    """Fallback writer for any phantom dataclass.

    Every 2-D/3-D ``np.ndarray`` field (except those named in ``skip``, which a kind's own writer stores) is
    written as ``<stem>_<field>.png``;
    scalar fields go into the single manifest row. Integer instance labels (a
    ``labels`` field) are named a second time as ``instances``, the column the
    dataset layer reads (``image,instances``), so ``medlim nuclei|steatosis
    evaluate --data DIR`` and ``medlim data check`` take the folder as written.
    """
    if options:
        raise ParameterError(f"the generic phantom writer takes no options, {sorted(options)} given.")
    if not dataclasses.is_dataclass(phantom):
        raise ParameterError(f"a phantom must be a dataclass, {type(phantom).__name__} is given.")
    out_dir = Path(out_dir)
    row: dict[str, Any] = {"stem": stem}
    for f in dataclasses.fields(phantom):
        value = getattr(phantom, f.name)
        if f.name in skip:
            continue
        if isinstance(value, np.ndarray) and value.ndim in (2, 3):
            name = f"{stem}_{f.name}.png"
            save_png(out_dir / name, value)
            row[f.name] = name
        elif isinstance(value, (str, int, float, bool, np.integer, np.floating)) or value is None:
            row[f.name] = _jsonable(value)
    labels = getattr(phantom, "labels", None)
    if "labels" in row and isinstance(labels, np.ndarray) and labels.ndim == 2 and np.issubdtype(labels.dtype, np.integer):
        row["instances"] = row["labels"]
    return [row]


def write_manifest(
    rows: Sequence[Mapping[str, Any]],
    out_dir: Path,
    *,
    kind: str,
    seed: int,
    params: Mapping[str, Any],
    command: str | None = None,
) -> tuple[Path, Path]:
    """Write ``manifest.json`` (kind, seed, parameters, rows) and ``manifest.csv`` (rows).

    Returns:
        ``(json_path, csv_path)``.
    """
    from medlim import __version__

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "manifest.json"
    csv_path = out_dir / "manifest.csv"
    document = {
        "generator": f"medlim {__version__} medlim.phantoms:{kind}",
        "kind": kind,
        "seed": int(seed),
        "params": _jsonable(dict(params)),
        "command": command,
        "count": len(rows),
        "rows": [_jsonable(dict(r)) for r in rows],
    }
    json_path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    columns: list[str] = []
    for r in rows:
        for key in r:
            if key not in columns:
                columns.append(key)
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: json.dumps(_jsonable(v)) if isinstance(v, (list, dict, tuple)) else v
                             for k, v in r.items()})
    return json_path, csv_path

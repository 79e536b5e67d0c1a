"""Component gating of the BAC probability map: hysteresis between two cut-offs (issue 13, "BAC errors").

The thesis (§3.3) marks a pixel as BAC when its probability passes one cut-off
``t``. On mammograms unlike its training views, SCU-Net answers faint or
fragmented calcified arteries with middling probabilities along their whole
length, and bright linear tissue (Cooper's ligaments) with middling
probabilities too, but the arteries reach a high probability somewhere and the
tissue rarely does. One cut-off cannot keep the first and drop the second: a low
one keeps both (false "BAC" on BAC-free breasts), a high one drops both (heavy
BAC under-counted).

Gating is hysteresis thresholding, as in Canny's edge detector: a connected
region (8-connected) of pixels with ``p > floor`` is kept whole when at least
one of its pixels has ``p > seed``; every other pixel's probability becomes 0.
The gate is applied on the network's own grid, before a resampled image's map is
brought back to the image's (:func:`medlim.mammography.spacing.on_image_grid`).
Every reader of the map (the mask ``p > t``, PM, the readouts, the page's live
cut-off, overlays and exports) then sees the gated map, so they agree with each
other, and a cut-off ``t`` at or above ``floor`` still tightens the mask inside
the kept regions (below ``floor`` it gives the kept regions whole).

**Deviation from the thesis**, stated in the weights' manifest entry
(``params.gate``) and the README: weights without a ``gate`` are read as the
thesis reads them; PM (Σ p) of gated weights sums the kept regions only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlim.errors import ParameterError

__all__ = ["GATE_FLOORS", "GATE_SEEDS", "ComponentGate", "gate_components", "marked_regions", "gate_from_params", "gate_grid"]

#: The floors and seeds tried when a gate is chosen on validation views (the trainer, ``benchmarks/eval_bac_gate.py``);
#: fixed on 2026-12-07 before the first sweep.
GATE_FLOORS: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6)
GATE_SEEDS: tuple[float, ...] = (0.8, 0.9, 0.95, 0.98)


@dataclass(frozen=True)
class ComponentGate:
    """Two cut-offs of hysteresis thresholding.

    Attributes:
        floor: a region is the connected set of pixels with ``p > floor``.
        seed: a region is kept when one of its pixels has ``p > seed``.
    """

    floor: float
    seed: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor < self.seed <= 1.0:
            raise ParameterError(
                f"the gate needs 0 ≤ floor < seed ≤ 1; floor {self.floor} and seed {self.seed} are given.")

    def describe(self) -> str:
        """One sentence for a person choosing a cut-off (the page's help, the CLI's notes)."""
        return (f"These weights keep only regions of p > {self.floor:g} that reach p > {self.seed:g} somewhere "
                f"(hysteresis); a cut-off below {self.floor:g} gives those regions whole.")

    def to_json(self) -> dict[str, float]:
        """``{"floor", "seed"}``, the manifest's ``params.gate``."""
        return {"floor": self.floor, "seed": self.seed}


def gate_from_params(params: Mapping[str, Any]) -> ComponentGate | None:
    """The gate a weights entry's ``params`` name (``{"gate": {"floor": f, "seed": s}}``), or ``None``.

    Raises:
        ParameterError: ``gate`` is present but not two numbers with 0 ≤ floor < seed ≤ 1.
    """
    value = params.get("gate")
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"floor", "seed"}:
        raise ParameterError(f"the weights' gate must be {{'floor': f, 'seed': s}}; {value!r} is given.")
    try:
        return ComponentGate(floor=float(value["floor"]), seed=float(value["seed"]))
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"the weights' gate must hold two numbers; {value!r} is given.") from exc


def marked_regions(probability: np.ndarray, floor: float) -> tuple[int, np.ndarray]:
    """The 8-connected regions of ``p > floor``: ``(count, int32[H, W] labels)``, label 0 the rest (``count``
    includes it), as the gate and the region filter (:mod:`medlim.mammography.regions`) both read a map.

    Raises:
        ParameterError: the map is not 2-D.
    """
    import cv2

    p = np.asarray(probability, dtype=np.float32)
    if p.ndim != 2:
        raise ParameterError(f"the probability map must be 2-D; its shape is {p.shape}.")
    count, labels = cv2.connectedComponents((p > floor).astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    return int(count), labels


def gate_components(probability: np.ndarray, gate: ComponentGate) -> np.ndarray:
    """The probability map with every region that never passes ``gate.seed`` set to 0.

    Args:
        probability: ``np.float32[H, W]`` in [0, 1].
        gate: the two cut-offs.

    Returns:
        ``np.float32[H, W]``: ``p`` inside the kept regions (8-connected pixels with
        ``p > floor`` holding a pixel with ``p > seed``), 0 everywhere else.
    """
    p = np.asarray(probability, dtype=np.float32)
    count, labels = marked_regions(p, gate.floor)
    if count <= 1:
        return np.zeros_like(p)
    keep = np.zeros(count, dtype=bool)
    keep[labels[p > gate.seed]] = True  # seed > floor, so every seed pixel lies in a region (label ≥ 1)
    keep[0] = False
    return np.where(keep[labels], p, np.float32(0.0))


def gate_grid(floors: tuple[float, ...] = GATE_FLOORS, seeds: tuple[float, ...] = GATE_SEEDS) -> tuple[ComponentGate, ...]:
    """Every (floor, seed) pair with floor < seed, by seed then floor."""
    return tuple(ComponentGate(floor, seed) for seed in seeds for floor in floors if floor < seed)

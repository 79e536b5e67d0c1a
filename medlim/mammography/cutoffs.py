"""Every readout on the cut-off grid from one pass over a probability map (thesis eq. 3.8–3.9; issue 17).

The page's cut-off slider moves in steps of 0.01. :class:`CutoffTable` bins
each pixel by how many grid cut-offs ``t_k = k / steps`` its ``p`` exceeds and
counts the preprocessed intensities ``I`` per bin, once per image (a
``(steps + 2) × 256`` table). The intensity histogram of ``{p > t_k}`` is then
a sum of rows, so AM, SIM, TAM_X and TSIM_X for any grid cut-off and any X
take microseconds instead of a pass over 13.6 million pixels
(``benchmarks/bench_bac_sliders.py``).

The numbers are those of :func:`medlim.mammography.quantify.quantify_bac`,
exactly: the comparison ``p > t`` is made in the probability map's float32, as
NumPy makes it for a Python float cut-off, and a cut-off off the grid (or given
as another type) is not answered here — :func:`medlim.mammography.analysis.requantify`
then makes the full pass. A test holds the table to ``quantify_bac`` as an oracle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from medlim.errors import InputError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.mammography.inference import BacPrediction
    from medlim.mammography.quantify import BacMetrics

__all__ = ["CUTOFF_STEPS", "AnalysedMap", "CutoffTable", "cutoff_table"]

#: Grid cut-offs per unit: the slider's step of 0.01.
CUTOFF_STEPS = 100

_LEVELS = np.arange(256, dtype=np.int64)
_BLOCK_ROWS = 256


class AnalysedMap(Protocol):
    """What a table is built from: a prediction and its metrics.

    :class:`medlim.mammography.analysis.BacAnalysis` is one. Described here
    rather than imported, because ``analysis`` uses this module's table for its
    sliders (``requantify``): the two modules must not import each other.
    """

    @property
    def prediction(self) -> BacPrediction: ...

    @property
    def metrics(self) -> BacMetrics: ...


@dataclass(frozen=True)
class CutoffTable:
    """Intensity histograms of ``{p > t_k}`` for the grid cut-offs ``t_k = k / steps``.

    Attributes:
        above: ``np.int64[steps + 1, 256]``; row ``k`` counts, per intensity
            ``I``, the pixels with ``p > float32(k / steps)``.
        steps: grid cut-offs per unit.
        edges: ``np.float32[steps + 1]``, the grid cut-offs as the map compares them.
        base: the analysis' metrics (PM, breast area, spacing: what no cut-off changes).
        intensity_rule: ``">"`` or ``">="`` (the preset's).
    """

    above: np.ndarray
    steps: int
    edges: np.ndarray
    base: BacMetrics
    intensity_rule: str

    def grid_index(self, threshold: float) -> int | None:
        """``k`` when ``threshold`` is the grid cut-off ``k / steps`` as the map compares it, else ``None``.

        Only Python ``int``/``float`` cut-offs are answered: NumPy compares those
        in the map's float32, as :func:`~medlim.mammography.quantify.quantify_bac` does.
        """
        if type(threshold) not in (int, float) or not 0.0 <= threshold <= 1.0:
            return None
        k = int(round(threshold * self.steps))
        return k if np.float32(threshold) == self.edges[k] else None

    def covers(self, threshold: float) -> bool:
        """Whether :meth:`metrics` answers for this cut-off."""
        return self.grid_index(threshold) is not None

    def metrics(self, *, threshold: float, x: float) -> BacMetrics:
        """The readouts at a grid cut-off and any X, equal to ``quantify_bac`` on the full map.

        Raises:
            ParameterError: ``threshold`` is not a grid cut-off, or X is outside [0, 255].
        """
        import dataclasses

        k = self.grid_index(threshold)
        if k is None:
            raise ParameterError(f"cut-off {threshold!r} is not on the grid of 1/{self.steps}; use requantify.")
        if not 0.0 <= x <= 255.0:
            raise ParameterError(f"intensity threshold X must be in [0, 255]; {x} is given.")
        histogram = self.above[k]
        passes = _LEVELS > x if self.intensity_rule == ">" else _LEVELS >= x
        am = int(histogram.sum())
        tam_x = int(histogram[passes].sum())
        base = self.base
        am_mm2 = tam_x_mm2 = None
        if base.pixel_spacing_mm is not None:
            pixel_mm2 = base.pixel_spacing_mm[0] * base.pixel_spacing_mm[1]
            am_mm2, tam_x_mm2 = am * pixel_mm2, tam_x * pixel_mm2
        return dataclasses.replace(
            base,
            am=am,
            sim=int(histogram @ _LEVELS),
            tam_x=tam_x,
            tsim_x=int(histogram[passes] @ _LEVELS[passes]),
            x=float(x),
            threshold=float(threshold),
            tam_x_per_breast_area=tam_x / base.breast_area if base.breast_area > 0 else float("nan"),
            am_mm2=am_mm2,
            tam_x_mm2=tam_x_mm2,
        )


def cutoff_table(analysis: AnalysedMap, *, steps: int = CUTOFF_STEPS) -> CutoffTable:
    """Build the :class:`CutoffTable` of an analysis in one blocked pass (no image-sized temporaries).

    Args:
        analysis: an analysed mammogram (its probability map, preprocessed image and metrics).
        steps: grid cut-offs per unit (100: steps of 0.01).

    Raises:
        InputError: the map and the preprocessed image differ in shape.
        ParameterError: ``steps`` is not a positive integer.
    """
    from medlim.mammography.preprocess import get_preset

    if not isinstance(steps, int) or steps < 1:
        raise ParameterError(f"steps must be a positive integer; {steps!r} is given.")
    probability = np.asarray(analysis.prediction.probability)
    grey = np.asarray(analysis.prediction.preprocessed.grey)
    if probability.shape != grey.shape or grey.dtype != np.uint8:
        raise InputError(f"probability map {probability.shape} and 8-bit image {grey.dtype}{list(grey.shape)} differ.")
    # As NumPy compares a float32 map with a Python float: in float32.
    edges = np.array([np.float32(k / steps) for k in range(steps + 1)], dtype=np.float32)
    counts = np.zeros((steps + 2) * 256, dtype=np.int64)
    for top in range(0, probability.shape[0], _BLOCK_ROWS):
        p = probability[top : top + _BLOCK_ROWS].astype(np.float32, copy=False)
        # Number of grid cut-offs strictly below p: p > t_k exactly when k < that number. NaN exceeds none.
        exceeded = np.searchsorted(edges, p, side="left")
        exceeded[np.isnan(p)] = 0
        counts += np.bincount((exceeded * 256 + grey[top : top + _BLOCK_ROWS]).ravel(), minlength=counts.size)
    per_bin = counts.reshape(steps + 2, 256)
    above = np.cumsum(per_bin[::-1], axis=0)[::-1][1:]  # row k: Σ over bins > k
    return CutoffTable(
        above=np.ascontiguousarray(above),
        steps=steps,
        edges=edges,
        base=analysis.metrics,
        intensity_rule=get_preset(analysis.prediction.preset).intensity_rule,
    )

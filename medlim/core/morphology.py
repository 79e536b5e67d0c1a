"""Binary morphology and connected components as tensor operations, on any torch device.

The thesis's mammogram preprocessing (§3.3.2) opens the non-zero region with a
disk and keeps its largest connected region. On the CPU OpenCV does this
well; on a GPU the 4096×3328 mask would otherwise travel to the host and back
and the host's work would dominate a whole-image prediction. These functions
give the same results as OpenCV (tested against ``cv2.morphologyEx`` and
``cv2.connectedComponentsWithStats``) with tensor operations only:

* a disk dilation is the maximum, over the disk's rows ``dy``, of a row-wise
  running maximum of half-width ``w(dy)`` shifted by ``dy``; erosion is the
  complement's dilation. Outside the image counts as foreground for erosion
  and background for dilation, as OpenCV's default border does;
* the largest 8-connected component from the mask's row runs: the runs are
  found on the device, only their ends (a few thousand numbers for a
  mammogram's breast mask, against 13.6 million pixels) go to the host, where
  runs of neighbouring rows that touch are joined as a graph, and the chosen
  runs are painted back on the device with a running sum.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from medlim.errors import InputError, ParameterError

__all__ = ["dilate_disk", "erode_disk", "open_disk", "mask_runs", "largest_component"]


def _check_mask(mask: torch.Tensor) -> None:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.ndim != 2:
        described = f"{mask.dtype}{list(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise InputError(f"Expected a boolean mask Tensor[H, W], got {described}.")


def _disk_half_widths(radius: int) -> list[int]:
    """Half-width of the disk ``x² + y² ≤ r²`` in each row ``dy = −r..r``."""
    return [math.isqrt(radius * radius - dy * dy) for dy in range(-radius, radius + 1)]


def dilate_disk(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilation by the disk ``x² + y² ≤ radius²``; pixels outside the image count as background.

    Args:
        mask: ``Tensor[H, W]`` bool, on any device.
        radius: disk radius in pixels (≥ 0).

    Returns:
        ``Tensor[H, W]`` bool on the same device.
    """
    _check_mask(mask)
    if not isinstance(radius, int) or radius < 0:
        raise ParameterError(f"Disk radius must be an integer ≥ 0, {radius!r} is given.")
    if radius == 0 or mask.numel() == 0:
        return mask.clone()
    # max_pool is defined for floating types; half precision is exact for 0/1 on a GPU.
    dtype = torch.float16 if mask.device.type == "cuda" else torch.float32
    values = mask.to(dtype)[None, None]
    rows = mask.shape[0]
    out = torch.zeros((rows + 2 * radius, mask.shape[1]), dtype=dtype, device=mask.device)
    for offset, half in enumerate(_disk_half_widths(radius)):
        # row maximum over [x − half, x + half], -inf padding = background outside
        running = F.max_pool2d(values, kernel_size=(1, 2 * half + 1), stride=1, padding=(0, half))[0, 0]
        # the disk row dy = offset − radius reaches pixel y + dy: output row y takes input row y + dy
        target = out[2 * radius - offset : 2 * radius - offset + rows]
        torch.maximum(target, running, out=target)
    return out[radius : radius + rows] > 0


def erode_disk(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Erosion by the disk ``x² + y² ≤ radius²``; pixels outside the image count as foreground.

    Args:
        mask: ``Tensor[H, W]`` bool, on any device.
        radius: disk radius in pixels (≥ 0).

    Returns:
        ``Tensor[H, W]`` bool on the same device.
    """
    _check_mask(mask)
    return ~dilate_disk(~mask, radius)


def open_disk(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Opening (erosion then dilation) by a disk, with OpenCV's default borders.

    Args:
        mask: ``Tensor[H, W]`` bool, on any device.
        radius: disk radius in pixels (≥ 0).

    Returns:
        ``Tensor[H, W]`` bool on the same device, equal to
        ``cv2.morphologyEx(mask, cv2.MORPH_OPEN, disk) > 0``.
    """
    return dilate_disk(erode_disk(mask, radius), radius)


def mask_runs(mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row runs of a binary mask (run-length encoding), in row-major order.

    Args:
        mask: ``Tensor[H, W]`` bool, on any device (the runs are found there;
            only their ends travel to the host).

    Returns:
        ``(rows, starts, ends)``, each ``np.int64[R]``: run ``i`` covers
        columns ``starts[i] ≤ x < ends[i]`` of row ``rows[i]``.
    """
    _check_mask(mask)
    edges = F.pad(mask.to(torch.int8), (1, 1))
    step = edges[:, 1:] - edges[:, :-1]  # +1 where a run starts, −1 one past where it ends
    begin = torch.nonzero(step == 1).cpu().numpy()
    finish = torch.nonzero(step == -1).cpu().numpy()
    return begin[:, 0].astype(np.int64), begin[:, 1].astype(np.int64), finish[:, 1].astype(np.int64)


def _run_components(rows: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """Component number of each run under 8-connectivity (runs in row-major order)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    count = rows.size
    stride = width + 2  # keys of different rows never interleave
    start_keys = rows * stride + starts
    end_keys = rows * stride + ends
    below = (rows + 1) * stride
    # runs b of the next row touching run a (8-connected): start_b ≤ end_a and end_b ≥ start_a
    first = np.searchsorted(end_keys, below + starts, side="left")
    last = np.searchsorted(start_keys, below + ends, side="right") - 1
    counts = np.maximum(last - first + 1, 0)
    source = np.repeat(np.arange(count), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    target = np.repeat(first, counts) + offsets
    graph = coo_matrix((np.ones(source.size, dtype=np.int8), (source, target)), shape=(count, count))
    return connected_components(graph, directed=False)[1]


def largest_component(mask: torch.Tensor) -> torch.Tensor:
    """The largest 8-connected component of a binary mask.

    Works on the mask's row runs: runs of neighbouring rows that touch are
    joined (a graph of a few thousand runs for a mammogram, solved on the
    host), and the chosen runs are painted back on the mask's device. Ties in
    area go to the component whose first pixel in row-major order comes first
    — the component OpenCV numbers first, so this equals the ``argmax`` of
    ``cv2.connectedComponentsWithStats`` areas (tested).

    Args:
        mask: ``Tensor[H, W]`` bool, on any device.

    Returns:
        ``Tensor[H, W]`` bool on the same device (all False for an empty mask).
    """
    rows, starts, ends = mask_runs(mask)
    if rows.size == 0:
        return torch.zeros_like(mask)
    height, width = mask.shape
    component = _run_components(rows, starts, ends, width)
    areas = np.bincount(component, weights=ends - starts)
    first = np.full(areas.size, height * width, dtype=np.int64)
    np.minimum.at(first, component, rows * width + starts)
    tied = np.flatnonzero(areas == areas.max())
    chosen = component == tied[np.argmin(first[tied])]
    step = torch.zeros((height, width + 1), dtype=torch.int32, device=mask.device)
    where_rows = torch.from_numpy(rows[chosen]).to(mask.device)
    step.index_put_((where_rows, torch.from_numpy(starts[chosen]).to(mask.device)),
                    torch.ones(int(chosen.sum()), dtype=torch.int32, device=mask.device), accumulate=True)
    step.index_put_((where_rows, torch.from_numpy(ends[chosen]).to(mask.device)),
                    torch.full((int(chosen.sum()),), -1, dtype=torch.int32, device=mask.device), accumulate=True)
    return torch.cumsum(step, dim=1)[:, :width] > 0

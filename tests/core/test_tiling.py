"""Patch grid, batching with a skip rule, and the merge rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlim.core.tiling import (
    PatchMerger,
    core_spans,
    gaussian_weight,
    iter_patch_batches,
    overlapping_tiles,
    pad_to_patch,
    patch_grid,
    patch_starts,
)
from medlim.errors import ParameterError


def _reference_starts(n: int, patch: int, stride: int) -> list[int]:
    """The SCU-Net authors' rule, written as a loop: step until a patch would reach the edge, then snap."""
    starts = []
    for i in range(0, n, stride):
        if i + patch >= n:
            starts.append(n - patch)
            break
        starts.append(i)
    return starts


@pytest.mark.parametrize(
    ("length", "expected"),
    [(512, [0]), (992, [0, 480]), (993, [0, 480, 481]), (1000, [0, 480, 488]), (1100, [0, 480, 588])],
)
def test_patch_starts_hand_cases(length: int, expected: list[int]) -> None:
    assert patch_starts(length, patch=512, stride=480).tolist() == expected


def test_patch_starts_match_the_loop_rule() -> None:
    for stride in (448, 480, 512, 100):
        for length in range(512, 4200, 37):
            assert patch_starts(length, patch=512, stride=stride).tolist() == _reference_starts(length, 512, stride)


def test_full_mammogram_grid_size() -> None:
    grid = patch_grid((4096, 3328), patch=512, stride=480)
    assert grid.shape == (9 * 7, 2)
    assert grid[0].tolist() == [0, 0] and grid[-1].tolist() == [4096 - 512, 3328 - 512]
    assert grid[1].tolist() == [0, 480]  # row-major


def test_bad_grid_parameters() -> None:
    with pytest.raises(ParameterError, match="600"):
        patch_starts(1000, patch=512, stride=600)
    with pytest.raises(ParameterError, match="pad"):
        patch_starts(100, patch=512, stride=480)


def test_pad_to_patch() -> None:
    image = np.ones((3, 700), dtype=np.uint8)
    padded = pad_to_patch(image, patch=8)
    assert padded.shape == (8, 700)
    assert padded[:3].all() and not padded[3:].any()
    assert pad_to_patch(padded, patch=8) is padded
    tensor = pad_to_patch(torch.ones((3, 5), dtype=torch.uint8), patch=4, value=7)
    assert isinstance(tensor, torch.Tensor) and tuple(tensor.shape) == (4, 5)
    assert tensor[:3].eq(1).all() and tensor[3].eq(7).all()


def test_gaussian_weight() -> None:
    weight = gaussian_weight(9)
    assert weight.dtype == np.float32 and weight.shape == (9, 9)
    assert weight[4, 4] == pytest.approx(1.0)
    np.testing.assert_allclose(weight, weight.T)
    np.testing.assert_allclose(weight, weight[::-1, ::-1])
    assert weight.min() >= 1e-3 and weight[0, 0] < weight[0, 4] < weight[4, 4]


def test_batches_cover_grid_once_and_respect_batch_size() -> None:
    image = np.arange(20 * 30, dtype=np.int64).reshape(20, 30)
    batches = list(iter_patch_batches(image, patch=8, stride=6, batch_size=4))
    origins = np.concatenate([b.origins for b in batches])
    np.testing.assert_array_equal(origins, patch_grid(image.shape, patch=8, stride=6))
    assert all(1 <= len(b.origins) <= 4 for b in batches)
    assert batches[-1].done == batches[-1].total == len(origins)
    for batch in batches:
        for (row, col), patch in zip(batch.origins, batch.patches):
            np.testing.assert_array_equal(patch, image[row : row + 8, col : col + 8])


def test_skip_rule_drops_patches_and_refills_batches() -> None:
    image = np.zeros((16, 40), dtype=np.uint8)
    image[:, 20:] = 9
    # Patches whose first pixel is 0 are skipped; kept ones arrive in full batches of 2.
    batches = list(iter_patch_batches(image, patch=8, stride=4, batch_size=2, skip=lambda p: p[:, 0, 0] == 0))
    kept = np.concatenate([b.origins for b in batches])
    assert all(col >= 20 for _, col in kept)
    assert len(kept) == 3 * 4  # rows 0,4,8 × cols 20,24,28,32
    assert [len(b.origins) for b in batches] == [2] * 6


def test_all_patches_skipped_yields_nothing() -> None:
    image = np.zeros((16, 16), dtype=np.uint8)
    assert list(iter_patch_batches(image, patch=8, stride=8, batch_size=2, skip=lambda p: np.ones(len(p), bool))) == []


def test_max_merge_starts_from_zero() -> None:
    merger = PatchMerger((3, 4), patch=2, rule="max")
    merger.add(np.array([[[-1.0, 0.5], [0.2, -3.0]], [[0.1, 0.9], [-2.0, -2.0]]]), np.array([[0, 0], [0, 1]]))
    expected = np.array([[0.0, 0.5, 0.9, 0.0], [0.2, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(merger.result(), expected)
    assert merger.patches_added == 2


def test_mean_merge() -> None:
    merger = PatchMerger((2, 3), patch=2, rule="mean")
    merger.add(torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[3.0, 5.0], [3.0, 5.0]]]), np.array([[0, 0], [0, 1]]))
    np.testing.assert_allclose(merger.result(), [[1.0, 2.0, 5.0], [1.0, 2.0, 5.0]])


def test_gaussian_merge_keeps_constant_predictions_and_uncovered_zero() -> None:
    merger = PatchMerger((10, 12), patch=6, rule="gaussian")
    merger.add(np.full((2, 6, 6), 0.7, dtype=np.float32), np.array([[0, 0], [0, 3]]))
    result = merger.result()
    np.testing.assert_allclose(result[:6, :9], 0.7, rtol=1e-6)
    assert not result[6:].any() and not result[:, 9:].any()


def test_gaussian_merge_weights_the_patch_centre() -> None:
    merger = PatchMerger((1, 12), patch=1, rule="gaussian")  # 1-px patches weigh 1 each → plain mean
    merger.add(np.array([[[2.0]], [[4.0]]]), np.array([[0, 5], [0, 5]]))
    assert merger.result()[0, 5] == pytest.approx(3.0)
    weight = gaussian_weight(8)
    merger = PatchMerger((8, 12), patch=8, rule="gaussian")
    merger.add(np.stack([np.zeros((8, 8)), np.ones((8, 8))]), np.array([[0, 0], [0, 4]]))
    # Column 4 is the first patch's centre column (weight high) and the second's edge (weight low).
    w_first, w_second = weight[3, 4], weight[3, 0]
    assert merger.result()[3, 4] == pytest.approx(w_second / (w_first + w_second), rel=1e-5)


def test_bad_merge_rule_and_shapes() -> None:
    with pytest.raises(ParameterError, match="median"):
        PatchMerger((4, 4), patch=2, rule="median")  # type: ignore[arg-type]
    merger = PatchMerger((4, 4), patch=2)
    with pytest.raises(ParameterError, match=r"\[n, 2, 2\]"):
        merger.add(np.zeros((1, 3, 3)), np.array([[0, 0]]))


def test_torch_image_is_cut_where_it_lives() -> None:
    image = torch.arange(20 * 30, dtype=torch.int64).reshape(20, 30)
    batches = list(
        iter_patch_batches(image, patch=8, stride=6, batch_size=4, skip=lambda p: (p[:, 0, 0] % 2 == 1))
    )
    assert all(isinstance(b.patches, torch.Tensor) for b in batches)
    reference = list(
        iter_patch_batches(image.numpy(), patch=8, stride=6, batch_size=4, skip=lambda p: (p[:, 0, 0] % 2 == 1))
    )
    for got, expected in zip(batches, reference, strict=True):
        np.testing.assert_array_equal(got.origins, expected.origins)
        np.testing.assert_array_equal(got.patches.numpy(), expected.patches)


def test_overlapping_tiles_hand_case() -> None:
    # 300 × 200, tile 128, overlap 32 → stride 96.
    # Rows: starts 0, 96, then 300 − 128 = 172; overlaps [96, 128) and [172, 224) → cores split at 112 and 198.
    # Columns: starts 0, then 200 − 128 = 72; overlap [72, 128) → core split at 100.
    tiles = overlapping_tiles((300, 200), tile=128, overlap=32)
    assert [(t.top, t.left, t.bottom, t.right) for t in tiles] == [
        (0, 0, 128, 128), (0, 72, 128, 200),
        (96, 0, 224, 128), (96, 72, 224, 200),
        (172, 0, 300, 128), (172, 72, 300, 200),
    ]
    inf = float("inf")
    assert [t.core for t in tiles] == [
        (-inf, -inf, 112.0, 100.0), (-inf, 100.0, 112.0, inf),
        (112.0, -inf, 198.0, 100.0), (112.0, 100.0, 198.0, inf),
        (198.0, -inf, inf, 100.0), (198.0, 100.0, inf, inf),
    ]
    assert tiles[2].window == (slice(96, 224), slice(0, 128))


def test_overlapping_tiles_short_sides_are_one_cut_tile() -> None:
    assert [(t.top, t.left, t.bottom, t.right, t.core) for t in overlapping_tiles((50, 128), tile=128, overlap=32)] == [
        (0, 0, 50, 128, (-np.inf, -np.inf, np.inf, np.inf))
    ]
    # One px longer than the tile: a second tile one px further, split in the middle of their overlap.
    tiles = overlapping_tiles((129, 10), tile=128, overlap=32)
    assert [(t.top, t.bottom) for t in tiles] == [(0, 128), (1, 129)]
    assert tiles[0].core[2] == tiles[1].core[0] == 64.5


def test_cores_partition_the_image() -> None:
    tiles = overlapping_tiles((301, 250), tile=96, overlap=40)
    owners = np.zeros((301, 250), int)
    for t in tiles:
        rows, cols = np.mgrid[0:301, 0:250]
        owned = np.vectorize(t.owns)(rows + 0.5, cols + 0.5)
        assert not (owned & ((rows < t.top) | (rows >= t.bottom) | (cols < t.left) | (cols >= t.right))).any()
        owners += owned
    assert (owners == 1).all()


def test_core_spans_hand_case() -> None:
    assert core_spans(np.array([0, 96, 172]), tile=128) == [(-np.inf, 112.0), (112.0, 198.0), (198.0, np.inf)]
    assert core_spans(np.array([0]), tile=128) == [(-np.inf, np.inf)]


def test_bad_overlap() -> None:
    with pytest.raises(ParameterError, match="overlap"):
        overlapping_tiles((100, 100), tile=64, overlap=64)
    with pytest.raises(ParameterError, match="overlap"):
        overlapping_tiles((100, 100), tile=64, overlap=-1)

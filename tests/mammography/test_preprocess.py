"""Preprocessing presets: filters, breast mask, contrast stretch, skip rule, normalisation."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

from medlim.errors import InputError, ParameterError
from medlim.mammography.preprocess import (
    PRESETS,
    BacPreset,
    black_patches,
    breast_mask,
    contrast_stretch,
    get_preset,
    median_filter,
    normalise_patches,
    preprocess_image,
    skip_background_patches,
)


def test_preset_registry_values() -> None:
    published = get_preset("published")
    assert (published.norm_mean, published.norm_std) == (0.2813, 0.1256)
    assert (published.patch_size, published.stride, published.overlap) == (512, 480, 32)
    assert (published.merge, published.threshold, published.intensity_rule) == ("max", 0.65, ">=")
    assert (published.skip_mean_at_most, published.skip_std_at_most) == (20.0, 10.0)
    assert (published.median_kernel, published.median_footprint, published.breast_mask_rule) == (5, "square", "nonzero")
    thesis = get_preset("thesis")
    assert (thesis.overlap, thesis.threshold, thesis.intensity_rule, thesis.intensity_x) == (64, 0.5, ">", 100.0)
    assert (thesis.median_footprint, thesis.breast_mask_rule, thesis.breast_mask_disk_radius) == ("disk", "opened", 10)
    assert thesis.normalisation == "patch_zero_mean"
    assert set(PRESETS) == {"published", "thesis", "thesis-unclipped"}
    from medlim.mammography.preprocess import PRESET_SUMMARIES

    assert set(PRESET_SUMMARIES) == set(PRESETS)  # every preset explains itself on the page
    unclipped = get_preset("thesis-unclipped")
    assert unclipped.stretch_percentiles == (1.0, 100.0)
    assert unclipped == dataclasses.replace(thesis, name="thesis-unclipped", stretch_percentiles=(1.0, 100.0))
    assert get_preset(thesis) is thesis and isinstance(thesis, BacPreset)
    with pytest.raises(ParameterError, match="'nope'"):
        get_preset("nope")


def test_square_median_is_opencv_median_blur() -> None:
    image = np.random.default_rng(1).integers(0, 256, (40, 33), dtype=np.uint8)
    np.testing.assert_array_equal(median_filter(image), cv2.medianBlur(image, 5))


def test_disk_median_uses_the_13_pixel_disk() -> None:
    image = np.random.default_rng(2).integers(0, 256, (30, 30), dtype=np.uint8)
    disk = np.array(
        [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]], dtype=bool
    )
    expected = ndimage.median_filter(image, footprint=disk)
    np.testing.assert_array_equal(median_filter(image, footprint="disk")[2:-2, 2:-2], expected[2:-2, 2:-2])


def test_median_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="uint16"):
        median_filter(np.zeros((4, 4), dtype=np.uint16))
    with pytest.raises(ParameterError, match="4"):
        median_filter(np.zeros((4, 4), dtype=np.uint8), kernel=4)


def test_nonzero_breast_mask() -> None:
    image = np.array([[0, 3, 0], [255, 0, 1]], dtype=np.uint8)
    np.testing.assert_array_equal(breast_mask(image), image > 0)


def test_opened_breast_mask_erases_label_and_thin_lines() -> None:
    image = np.zeros((120, 120), dtype=np.uint8)
    image[30:110, 0:70] = 150  # the breast
    image[5:15, 90:110] = 255  # a burned-in label, 10 px tall: gone by opening with a disk of radius 10
    image[60:62, 70:118] = 200  # a 2-px line attached to the breast: gone too
    image[40:70, 85:115] = 90  # a separate 30 px block survives opening but is not the largest region
    mask = breast_mask(image, rule="opened", disk_radius=10)
    assert mask[70, 35] and not mask[10, 100] and not mask[61, 100] and not mask[55, 100]
    assert not mask[:, 71:].any()


def test_unclipped_stretch_keeps_the_brightest_levels_apart() -> None:
    # breast levels 10..209, 100 pixels each (20,000 pixels), one calcification pixel at 250.
    image = np.repeat(np.arange(10, 210, dtype=np.uint8), 100)[None, :].copy()
    image[0, 0] = 250
    mask = np.ones_like(image, dtype=bool)
    clipped = contrast_stretch(image, mask, percentiles=(1.0, 99.0))
    unclipped = contrast_stretch(image, mask, percentiles=(1.0, 100.0))
    # 1–99 %: 207 and the calcification both become 255; 1–100 %: low = 12 (cumulative 300 > 200),
    # high = 250, so level v → round((v − 12)·255/238): 209 → 211, 250 → 255.
    assert clipped[0, 0] == 255 and clipped[0, -1] == 255
    assert unclipped[0, 0] == 255 and unclipped[0, -1] == round((209 - 12) * 255 / 238) == 211


def test_contrast_stretch_hand_computed() -> None:
    image = np.array([[0, 50, 150], [100, 50, 150]], dtype=np.uint8)
    mask = np.array([[False, True, True], [False, True, True]])
    stretched = contrast_stretch(image, mask, percentiles=(0.0, 100.0))
    # 50 → 0 (kept ≥ 1 as a breast pixel), 150 → 255, 100 → 127.5 → 128; 0 stays 0.
    np.testing.assert_array_equal(stretched, [[0, 1, 255], [128, 1, 255]])


def test_skip_rule_hand_cases() -> None:
    patches = np.zeros((5, 2, 2), dtype=np.uint8)
    patches[0] = 20  # mean 20 → skip
    patches[1] = 100  # std 0 → skip
    patches[2] = [[0, 255], [255, 0]]  # mean 127.5, std 127.5 → keep
    patches[3] = [[0, 40], [40, 0]]  # mean 20 exactly → skip
    patches[4] = [[0, 42], [42, 0]]  # mean 21, std 21 → keep
    assert skip_background_patches(patches).tolist() == [True, True, False, True, False]


def test_published_normalisation() -> None:
    patches = torch.tensor([0, 255, 72], dtype=torch.uint8).reshape(1, 1, 1, 3)
    normalised = normalise_patches(patches, "published")
    assert normalised.shape == (1, 3, 1, 3) and normalised.dtype == torch.float32
    expected = (np.array([0, 255, 72], dtype=np.float32) / 255 - 0.2813) / 0.1256
    for channel in range(3):
        np.testing.assert_allclose(normalised[0, channel, 0].numpy(), expected, rtol=1e-6)


def test_thesis_normalisation_is_zero_mean_per_patch() -> None:
    patches = torch.stack([torch.full((1, 4, 4), 10, dtype=torch.uint8), torch.arange(16, dtype=torch.uint8).reshape(1, 4, 4)])
    normalised = normalise_patches(patches, "thesis")
    np.testing.assert_allclose(normalised.mean(dim=(1, 2, 3)).numpy(), 0.0, atol=1e-7)
    assert float(normalised[1, 0, 0, 1] - normalised[1, 0, 0, 0]) == pytest.approx(1 / 255, rel=1e-5)


def test_preprocess_published_is_median_only() -> None:
    image = np.random.default_rng(3).integers(0, 256, (50, 60), dtype=np.uint8)
    image[:, :10] = 0
    result = preprocess_image(image, "published")
    np.testing.assert_array_equal(result.grey, cv2.medianBlur(image, 5))
    np.testing.assert_array_equal(result.breast_mask, result.grey > 0)
    assert result.breast_area == int((result.grey > 0).sum())


def test_preprocess_thesis_erases_label_outside_breast() -> None:
    image = np.zeros((200, 160), dtype=np.uint8)
    image[40:190, 0:100] = np.random.default_rng(4).integers(60, 120, (150, 100), dtype=np.uint8)
    image[5:20, 120:150] = 255  # label
    result = preprocess_image(image, "thesis")
    assert not result.grey[5:20, 120:150].any()
    assert result.breast_mask[100, 50] and not result.breast_mask[10, 130]
    breast = result.grey[result.breast_mask]
    assert breast.min() >= 1 and breast.max() == 255


def test_skip_rule_on_tensors_matches_numpy() -> None:
    patches = np.random.default_rng(6).integers(0, 40, (12, 16, 16), dtype=np.uint8)
    patches[3] = 7
    np.testing.assert_array_equal(skip_background_patches(torch.from_numpy(patches)), skip_background_patches(patches))


def test_disk_median_network_equals_rank_median() -> None:
    from skimage.filters import rank

    from medlim.mammography.preprocess import _disk, disk_median, median_network

    rng = np.random.default_rng(3)
    for shape in [(3, 4), (7, 9), (40, 33), (131, 70)]:
        for radius in (1, 2, 3):
            image = rng.integers(0, 256, shape).astype(np.uint8)
            expected = rank.median(image, footprint=_disk(radius))
            np.testing.assert_array_equal(disk_median(image, radius=radius), expected)
    # The network selects the 7th smallest of 13 values for every input order.
    network, lane = median_network(13)
    for _ in range(200):
        values = list(rng.permutation(13))
        for a, b in network:
            values[a], values[b] = min(values[a], values[b]), max(values[a], values[b])
        assert values[lane] == 6


def test_black_patch_rule_hand_cases() -> None:
    # 20×20 patches (400 px); the rule skips when fewer than 0.5 % (2 px) exceed 20.
    patches = np.zeros((4, 20, 20), np.uint8)
    patches[1, 0, 0] = 255  # 1 bright px: 0.25 % → black, skipped
    patches[2, 0, :2] = 21  # 2 px above 20: 0.5 % → kept
    patches[3, :, :] = 20  # all exactly 20 (not above) → skipped
    assert black_patches(patches).tolist() == [True, True, False, True]
    # An edge patch with a sliver of breast: the authors' rule skips it (mean 12.75 ≤ 20), this one keeps it.
    edge = np.zeros((1, 20, 20), np.uint8)
    edge[0, :, :3] = 85
    assert skip_background_patches(edge).tolist() == [True] and black_patches(edge).tolist() == [False]
    assert black_patches(torch.from_numpy(patches)).tolist() == black_patches(patches).tolist()


@pytest.mark.parametrize("preset", ["thesis", "published"])
def test_tensor_preprocessing_equals_the_host_path(preset: str) -> None:
    from medlim.mammography.preprocess import preprocess_tensor

    rng = np.random.default_rng(8)
    for rows, cols in [(3, 4), (6, 9), (70, 41), (160, 150)]:
        image = rng.integers(0, 256, (rows, cols)).astype(np.uint8)
        image[rng.random((rows, cols)) < 0.35] = 0
        image[rows // 4 : rows // 2, : cols // 2] = 140  # a block that survives opening when large enough
        expected = preprocess_image(image, preset)
        grey, mask = preprocess_tensor(torch.from_numpy(image), preset)
        assert grey.dtype == torch.uint8 and mask.dtype == torch.bool
        np.testing.assert_array_equal(grey.numpy(), expected.grey)
        np.testing.assert_array_equal(mask.numpy(), expected.breast_mask)
    with pytest.raises(InputError):
        preprocess_tensor(torch.zeros((4, 4), dtype=torch.float32), preset)


def _view_with_air(air: np.ndarray | int) -> np.ndarray:
    """A 200 × 160 'mammogram': a half-disc of tissue (grey 60–200) on the chest wall (left), air elsewhere."""
    rows, cols = np.mgrid[:200, :160]
    breast = (rows - 100) ** 2 + cols**2 < 120**2
    tissue = (60 + (rows * 7 + cols * 3) % 141).astype(np.uint8)
    image = np.zeros((200, 160), np.uint8) + np.asarray(air, dtype=np.uint8)
    image[breast] = tissue[breast]
    return image


def test_background_floor_hand_computed() -> None:
    from medlim.mammography.preprocess import background_floor, border_strips

    histogram = np.bincount(np.array([0] * 10 + [200] * 90), minlength=256)
    # darkest strip: median 10, absolute deviations 0, 0, 2, 2, 4 → MAD 2 → floor 10 + 4 × 1.4826 × 2 = 21.9 → 22
    strips = [np.array([10, 10, 8, 12, 14], np.uint8), np.full(5, 50, np.uint8), np.full(5, 200, np.uint8)]
    assert background_floor(strips, histogram) == 22
    # a noiseless offset: at least 2 above it
    assert background_floor([np.full(5, 10, np.uint8)], histogram) == 12
    # black air: nothing to do; air brighter than a quarter of the 99th percentile (200): no air at all
    assert background_floor([np.zeros(5, np.uint8), np.full(5, 10, np.uint8)], histogram) == 0
    assert background_floor([np.full(5, 51, np.uint8)], histogram) == 0
    # a dark but textured strip (MAD 10 → robust SD 14.8) is tissue cut by the edge, not air
    assert background_floor([np.array([40, 30, 50, 20, 60], np.uint8)], histogram) == 0
    assert [(s.start, s.stop) for s, _ in border_strips(1000, 800)[:2]] == [(0, 8), (992, 1000)]  # 1 % of 800


def test_air_that_is_not_black_is_read_as_black_air_by_the_thesis_presets() -> None:
    black = _view_with_air(0)
    noise = np.random.default_rng(3).normal(12, 2, black.shape)
    noisy = np.where(black == 0, np.clip(np.rint(noise), 0, 255), black).astype(np.uint8)
    for preset in ("thesis", "thesis-unclipped"):
        expected = preprocess_image(black, preset)
        for image in (_view_with_air(10), noisy):
            got = preprocess_image(image, preset)
            np.testing.assert_array_equal(got.breast_mask, expected.breast_mask)
            np.testing.assert_array_equal(got.grey, expected.grey)
    # the authors' published preprocessing reads the image as it is: the whole view is 'breast'
    assert preprocess_image(_view_with_air(10), "published").breast_area == 200 * 160
    assert get_preset("published").background == "as-is" and get_preset("thesis").background == "floor"


def test_the_background_floor_is_the_same_on_tensors() -> None:
    from medlim.mammography.preprocess import preprocess_tensor

    noisy = np.where(_view_with_air(0) == 0, np.random.default_rng(4).integers(5, 16, (200, 160)), _view_with_air(0))
    image = noisy.astype(np.uint8)
    expected = preprocess_image(image, "thesis-unclipped")
    grey, mask = preprocess_tensor(torch.from_numpy(image), "thesis-unclipped")
    np.testing.assert_array_equal(grey.numpy(), expected.grey)
    np.testing.assert_array_equal(mask.numpy(), expected.breast_mask)
    assert expected.breast_area == preprocess_image(_view_with_air(0), "thesis-unclipped").breast_area  # no air


def test_the_device_path_finds_the_floor_once_and_keeps_the_view_as_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from medlim.mammography import inference, preprocess

    image = _view_with_air(10)
    calls = []
    counted = preprocess.background_floor
    monkeypatch.setattr(preprocess, "background_floor", lambda *a, **k: calls.append(1) or counted(*a, **k))
    preset = get_preset("thesis-unclipped")
    on_device, source = inference._prepare_source(image, preset, torch.device("cpu"), preprocess_on="device")
    assert len(calls) == 1  # the GPU path used to find it twice (on the device and again for the view as read)
    on_host = preprocess_image(image, preset)
    np.testing.assert_array_equal(on_device.grey, on_host.grey)
    assert on_device.as_read is not None and on_host.as_read is not None
    np.testing.assert_array_equal(on_device.as_read.grey, on_host.as_read.grey)
    assert isinstance(source, torch.Tensor)
    grey, _ = preprocess.preprocess_tensor(torch.from_numpy(image), preset, floor=0)  # a floor given is used
    np.testing.assert_array_equal(grey.numpy(), preprocess_image(image, dataclasses.replace(preset, background="as-is")).grey)


def test_a_flagged_view_with_grey_air_says_so_in_plain_words() -> None:
    from medlim.core.familiarity import FamiliarityCheck
    from medlim.mammography.familiarity import GREY_AIR_NOTE, assess_mammogram

    class Always:  # a check that flags everything, to read the warning
        threshold = 1.0

        def check_image(self, grey, *, foreground):
            from medlim.core.familiarity import FamiliarityResult

            return FamiliarityResult(score=9.0, threshold=1.0, flagged=True, reason="score above the limit")

    check: FamiliarityCheck = Always()  # type: ignore[assignment]
    grey_air = preprocess_image(_view_with_air(10), "thesis-unclipped")
    _, warning = assess_mammogram(check, grey_air)
    assert warning is not None and warning.startswith("This image looks unlike") and warning.endswith(GREY_AIR_NOTE)
    _, warning = assess_mammogram(check, preprocess_image(_view_with_air(0), "thesis-unclipped"))
    assert warning is not None and GREY_AIR_NOTE not in warning  # black air: nothing to add

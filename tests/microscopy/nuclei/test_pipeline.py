from __future__ import annotations

import numpy as np
import pytest

from medlim.core.metrics import instance_metrics
from medlim.errors import ParameterError
from medlim.microscopy.nuclei.pipeline import NucleiParams, segment_nuclei, split_clump, split_clumps
from medlim.microscopy.nuclei.watershed import watershed_nuclei


def _scene(centres, *, shape=(160, 260), radius=(26, 20), valley=True):
    """RGB image (DAPI in blue) of overlapping ellipses and its truth labels."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.int32)
    best = np.full(shape, np.inf)
    blue = np.full(shape, 0.08)
    for k, (cy, cx) in enumerate(centres, start=1):
        rho = np.sqrt(((xx - cx) / radius[0]) ** 2 + ((yy - cy) / radius[1]) ** 2)
        take = (rho <= 1) & (rho < best)
        labels[take] = k
        best[take] = rho[take]
        profile = 0.8 * (1 - (0.5 if valley else 0.1) * np.clip(rho, 0, 1) ** 3)
        blue = np.where(rho <= 1, np.maximum(blue, profile), blue)
    rgb = np.zeros((*shape, 3), np.uint8)
    rgb[..., 2] = np.clip(blue * 255, 0, 255).astype(np.uint8)
    return rgb, labels


def test_single_nucleus_stays_whole():
    rgb, truth = _scene([(80, 130)])
    result = segment_nuclei(rgb)
    assert result.count == 1 and result.cuts == ()
    assert instance_metrics(truth, result.labels).mean_matched_jaccard > 0.9


@pytest.mark.parametrize("valley", [True, False])
def test_overlapping_pair_and_chain_are_split(valley):
    # a chain of four plus two isolated nuclei (from which the mean area is learnt)
    centres = [(60, 70), (60, 110), (60, 150), (60, 190), (140, 60), (140, 200)]
    rgb, truth = _scene(centres, shape=(180, 260), valley=valley)
    result = segment_nuclei(rgb)
    m = instance_metrics(truth, result.labels)
    assert result.count == 6
    assert m.f1 == 1.0 and m.mean_matched_jaccard > 0.85
    assert result.mean_area == pytest.approx(np.pi * 26 * 20, rel=0.05)
    assert all(cut.kind in ("ellipse", "non_adjacent") for cut in result.cuts)
    assert len(result.cuts) == 3


def test_straight_cuts_option_and_no_concavity_no_cut():
    rgb, truth = _scene([(80, 110), (80, 150)])
    # clumps only: the mean area must be given
    result = segment_nuclei(rgb, params=NucleiParams(use_curves=False, mean_area=float(np.pi * 26 * 20)))
    assert result.count == 2 and not any(c.followed_valley for c in result.cuts)
    # a convex region has nothing to cut
    region = np.zeros((60, 60), bool)
    region[10:50, 10:50] = True
    labels, cuts = split_clump(region, None, mean_area=400.0)
    assert labels.max() == 1 and cuts == []


def test_watershed_baseline_runs_and_empty_images():
    rgb, truth = _scene([(80, 110), (80, 150)])
    result = watershed_nuclei(rgb)
    assert result.count >= 1 and result.labels.shape == truth.shape
    empty = np.zeros((50, 50, 3), np.uint8)
    assert segment_nuclei(empty).count == 0 and watershed_nuclei(empty).count == 0


def test_params_validated():
    with pytest.raises(ParameterError, match="r2"):
        NucleiParams(r1=80, r2=70)
    with pytest.raises(ParameterError, match="scale"):
        NucleiParams(scale=-1.0)
    with pytest.raises(ParameterError, match="mean_area"):
        NucleiParams(mean_area=0.0)
    with pytest.raises(ParameterError, match="sector_deg"):
        NucleiParams(sector_deg=120)


def test_split_unpaired_is_an_optional_addition():
    from medlim.phantoms.fluorescence import generate_fluorescence

    phantom = generate_fluorescence(1004, size=(512, 688))  # a development seed
    thesis_only = segment_nuclei(phantom.image, params=NucleiParams(split_unpaired=False))
    with_addition = segment_nuclei(phantom.image)
    assert all(cut.kind != "unpaired" for cut in thesis_only.cuts)
    assert any(cut.kind == "unpaired" for cut in with_addition.cuts)
    assert with_addition.count > thesis_only.count


def test_lengths_scale_with_nucleus_size():
    # the chain scene at twice the magnification: with scale="auto" r1, r2 and σ
    # grow with the measured mean area (sqrt(area / 1500) ≈ 2.1), so it still splits
    centres = [(120, 140), (120, 220), (120, 300), (120, 380), (280, 120), (280, 400)]
    rgb, truth = _scene(centres, shape=(360, 520), radius=(52, 40))
    result = segment_nuclei(rgb)
    assert result.scale == pytest.approx(np.sqrt(np.pi * 52 * 40 / 1500), rel=0.05)
    assert result.count == 6
    assert instance_metrics(truth, result.labels).f1 == 1.0


def _naive_split_clumps(regions, is_clump, intensity, *, mean_area, scale, params):
    """Reference: one region at a time, each clump cropped with the Hessian margin and split by ``split_clump``."""
    from medlim.microscopy.nuclei.dividing import valley_strength

    labels = np.zeros(regions.shape, np.int32)
    pad = int(np.ceil(4 * params.hessian_sigma * scale)) + 3
    for k in range(1, int(regions.max()) + 1):
        rows, cols = np.nonzero(regions == k)
        if not is_clump[k]:
            labels[regions == k] = labels.max() + 1
            continue
        r0, r1 = max(rows.min() - pad, 0), min(rows.max() + 1 + pad, regions.shape[0])
        c0, c1 = max(cols.min() - pad, 0), min(cols.max() + 1 + pad, regions.shape[1])
        strength = valley_strength(intensity[r0:r1, c0:c1], sigma=params.hessian_sigma * scale)
        sub, _ = split_clump(regions[r0:r1, c0:c1] == k, strength, mean_area=mean_area, scale=scale, params=params)
        top = labels.max()
        for value in range(1, int(sub.max()) + 1):
            if (sub == value).any():
                top += 1
                labels[r0:r1, c0:c1][sub == value] = top
    return labels


def test_split_clumps_matches_one_region_at_a_time_on_a_phantom():
    from medlim.microscopy.nuclei.foreground import clump_candidates, dapi_channel, foreground_mask
    from medlim.phantoms.fluorescence import generate_fluorescence

    dapi = dapi_channel(generate_fluorescence(seed=7, size=(384, 384)).image)
    regions, is_clump = clump_candidates(foreground_mask(dapi), mean_area=1500.0)
    assert is_clump.sum() >= 2
    params = NucleiParams()
    labels, cuts = split_clumps(regions, is_clump, dapi, mean_area=1500.0, scale=1.0, params=params)
    reference = _naive_split_clumps(regions, is_clump, dapi, mean_area=1500.0, scale=1.0, params=params)
    np.testing.assert_array_equal(labels, reference)
    assert labels.max() > regions.max() and cuts
    for cut in cuts:  # cuts come back in image coordinates, on the outline of a region
        r, c = int(round(cut.p[0])), int(round(cut.p[1]))
        assert regions[max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3].any()


def test_segment_nuclei_output_is_unchanged():
    # sha256 of the labels, cut end points and dividing curves for fluorescence phantom seed 7 at 384×384;
    # recorded from the code before the clump loop was shared with steatosis (issue 17) and checked equal to it.
    import hashlib

    from medlim.phantoms.fluorescence import generate_fluorescence

    result = segment_nuclei(generate_fluorescence(seed=7, size=(384, 384)).image)
    digest = hashlib.sha256()
    for array in (result.labels, np.array([c.p + c.q for c in result.cuts]), *[c.path for c in result.cuts]):
        digest.update(np.ascontiguousarray(array).tobytes())
    assert (result.count, len(result.cuts)) == (6, 2)
    assert digest.hexdigest() == "c19e3ed26334d8dcd14e11b240488aaef5bd8dbe95d2ce08c03f5c50f2636374"

"""H&E steatosis phantoms (medlim.phantoms.he)."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.phantoms.he import generate_he
from medlim.phantoms.registry import get_kind


def test_same_seed_same_phantom_and_other_index_differs() -> None:
    a = generate_he(5, index=0, size=(128, 160))
    b = generate_he(5, index=0, size=(128, 160))
    c = generate_he(5, index=1, size=(128, 160))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, c.image)


def test_types_shapes_and_exact_labels() -> None:
    p = generate_he(3, size=(200, 256), density=0.4, vein_probability=0.0, edge_probability=0.0)
    assert p.image.shape == (200, 256, 3) and p.image.dtype == np.uint8
    assert p.labels.shape == (200, 256) and p.labels.dtype == np.uint16
    ids = np.unique(p.labels[p.labels > 0])
    # Labels are 1..n without gaps, every droplet inside the tissue.
    assert np.array_equal(ids, np.arange(1, p.n_droplets + 1))
    assert not np.any((p.labels > 0) & ~p.tissue)
    # Droplets are white vacuoles: brighter than the tissue around them.
    grey = p.image.mean(axis=2)
    assert grey[p.labels > 0].mean() > grey[(p.labels == 0) & p.tissue].mean() + 30


@pytest.mark.parametrize("density", [0.0, 0.3, 0.6])
def test_density_is_reached(density: float) -> None:
    p = generate_he(8, size=(256, 256), density=density, vein_probability=0.0, edge_probability=0.0)
    assert p.density == density
    if density == 0.0:
        assert p.n_droplets == 0
    else:
        assert abs(p.steatosis_fraction - density) < 0.12


def test_non_tissue_areas_are_white_and_not_droplets() -> None:
    p = generate_he(4, size=(256, 256), vein_probability=1.0, edge_probability=1.0, density=0.2)
    glass = ~p.tissue
    assert glass.mean() > 0.05
    assert p.image[glass].mean() > 200
    assert not np.any(p.labels[glass])


def test_touching_droplets_exist_in_clumped_phantoms() -> None:
    from scipy import ndimage

    p = generate_he(2, size=(256, 256), density=0.5, clump_probability=0.9)
    grown = ndimage.grey_dilation(p.labels, size=3)
    touching = (grown != p.labels) & (p.labels > 0)
    assert touching.sum() > 50


def test_validation_and_registry() -> None:
    with pytest.raises(ParameterError):
        generate_he(1, size=(32, 32))
    with pytest.raises(ParameterError):
        generate_he(1, size=(128, 128), density=0.9)
    kind = get_kind("he")
    assert kind.generate(seed=1, size=(96, 96)).image.shape == (96, 96, 3)


def test_artefacts_change_the_stain_not_the_truth() -> None:
    plain = generate_he(6, size=(192, 192), density=0.3, thickness=0.0, illumination=0.0, tears=0.0, filled_fraction=0.0)
    uneven = generate_he(6, size=(192, 192), density=0.3, thickness=0.6, illumination=0.15, tears=0.0, filled_fraction=0.0)
    assert np.array_equal(plain.labels, uneven.labels)
    assert not np.array_equal(plain.image, uneven.image)
    # Uneven thickness spreads the tissue's grey levels.
    grey_plain, grey_uneven = plain.image.mean(axis=2), uneven.image.mean(axis=2)
    tissue = plain.tissue & (plain.labels == 0)
    assert grey_uneven[tissue].std() > grey_plain[tissue].std() * 1.3


def test_tears_are_white_glass_never_droplets() -> None:
    no_tears = generate_he(9, size=(256, 256), density=0.2, tears=0.0, vein_probability=0.0, edge_probability=0.0)
    torn = generate_he(9, size=(256, 256), density=0.2, tears=15.0, vein_probability=0.0, edge_probability=0.0)
    assert no_tears.tissue.all()
    crack = ~torn.tissue
    assert crack.mean() > 0.01
    assert not np.any(torn.labels[crack])
    assert torn.image[crack].mean() > 200


@pytest.mark.parametrize("name", ["thickness", "illumination", "tears", "filled_fraction"])
def test_artefact_bounds(name: str) -> None:
    with pytest.raises(ParameterError):
        generate_he(1, size=(96, 96), **{name: -0.1})


_ARTEFACTS = {"index": 1, "vein_probability": 1.0, "edge_probability": 1.0, "tears": 2.0, "filled_fraction": 0.5,
              "thickness": 0.5, "illumination": 0.1}


@pytest.mark.parametrize(
    ("seed", "size", "params", "expected"),
    [
        # sha256 of image, labels, tissue and density, recorded from the generator before it was split into named
        # steps (issue 17) and checked equal to it.
        (1, (200, 256), {}, "e7bcb8b5fd618ca25b2d022f48fdbbb10cc8ff82b7279be9ba4f7f65e77bcac7"),
        (4, (256, 192), _ARTEFACTS, "333d3e0afa4b6835a4e1360bedd69363515a50ff063811b8b013421533c8352f"),
    ],
)
def test_golden_phantoms(seed: int, size: tuple[int, int], params: dict, expected: str) -> None:
    import hashlib

    p = generate_he(seed=seed, size=size, **params)
    digest = hashlib.sha256()
    for part in (p.image, p.labels, p.tissue):
        digest.update(np.ascontiguousarray(part).tobytes())
    digest.update(repr(p.density).encode())
    assert digest.hexdigest() == expected


def test_steatosis_fraction_leaves_sinusoid_lumina_out_of_the_tissue() -> None:
    """Issue 13's tissue: the section without sinusoid lumina (lumina under a droplet are droplet)."""
    p = generate_he(5, size=(256, 256), density=0.3, vein_probability=0.0, edge_probability=0.0, tears=0.0)
    assert p.lumen is not None and p.lumen.any()
    assert not np.any(p.lumen & ~p.tissue) and not np.any(p.lumen & (p.labels > 0))
    droplet = int((p.labels > 0).sum())
    assert p.steatosis_fraction == droplet / int((p.tissue & ~p.lumen).sum())
    assert p.steatosis_fraction_with_lumina == droplet / int(p.tissue.sum()) < p.steatosis_fraction
    # Built without lumina (a phantom from before they were recorded), both readings agree.
    from dataclasses import replace

    assert replace(p, lumen=None).steatosis_fraction == p.steatosis_fraction_with_lumina


def test_the_tiff_writer_states_the_nominal_pixel_size_like_a_scanner(tmp_path) -> None:
    import tifffile

    from medlim.core.io.slide import file_spacing_um
    from medlim.phantoms.he import PIXEL_SIZE_UM

    kind = get_kind("he")
    phantom = generate_he(4, size=(96, 128))
    tiff_row, = kind.write_one(phantom, tmp_path / "tiff", stem="he_0", fmt="tiff")
    png_row, = kind.write_one(phantom, tmp_path / "png", stem="he_0")
    assert PIXEL_SIZE_UM == 0.5
    assert tiff_row["image"] == "he_0_image.tif" and png_row["image"] == "he_0_image.png"
    assert tiff_row["pixel_size_um"] == png_row["pixel_size_um"] == 0.5  # the manifest row says it either way
    assert list(tiff_row) == list(png_row)  # the same columns, in the same order
    image = tmp_path / "tiff" / "he_0_image.tif"
    assert np.array_equal(tifffile.imread(image), phantom.image)
    assert file_spacing_um(image) == (0.5, "TIFF XResolution/YResolution (cm)")  # what every reader of the file sees
    assert file_spacing_um(tmp_path / "png" / "he_0_image.png") is None
    assert not (tmp_path / "tiff" / "he_0_image.png").exists()  # the truth stays PNG, the image is not written twice
    assert (tmp_path / "tiff" / "he_0_labels.png").is_file()
    with pytest.raises(ParameterError, match="'png' or 'tiff'"):
        kind.write_one(phantom, tmp_path / "x", stem="he_0", fmt="jpeg")

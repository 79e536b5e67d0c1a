"""Tests for the family-B radiograph phantoms (issues 12 and 13: a second phantom family)."""

from __future__ import annotations

import csv
import hashlib
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from medlim.core.datasets import open_dataset
from medlim.core.datasets.check import check_dataset
from medlim.errors import ParameterError
from medlim.phantoms import registry
from medlim.phantoms.family_b.fields import power_law_field
from medlim.phantoms.family_b.limbs import Blob, Bone, Limb, project_limb
from medlim.phantoms.radiograph import BODY_PARTS as FAMILY_A_PARTS
from medlim.phantoms.radiograph import RadiographPhantom
from medlim.phantoms.radiograph_b import (
    BODY_PARTS,
    NATIVE_SIZE,
    SHIFTS,
    generate_radiograph_b,
    write_radiograph_b,
    write_radiographs_b,
)


def _digest(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def test_classes_in_turn_deterministic_and_seeded() -> None:
    assert BODY_PARTS == FAMILY_A_PARTS
    phantoms = [generate_radiograph_b(seed=2, index=i, size=64) for i in range(8)]
    assert [p.body_part for p in phantoms] == [*BODY_PARTS, "hand"]
    assert all(isinstance(p, RadiographPhantom) and p.label == i % 7 for i, p in enumerate(phantoms))
    again = generate_radiograph_b(seed=2, index=3, size=64)
    assert _digest(again.image) == _digest(phantoms[3].image)
    assert _digest(generate_radiograph_b(seed=3, index=3, size=64).image) != _digest(again.image)


@pytest.mark.parametrize("size", [64, 256, NATIVE_SIZE, 512])
def test_shape_dtype_range(size: int) -> None:
    phantom = generate_radiograph_b(seed=0, index=4, size=size, site="external")
    assert phantom.image.shape == (size, size) and phantom.image.dtype == np.float32
    assert 0.0 <= phantom.image.min() and phantom.image.max() <= 1.0
    assert (phantom.site, phantom.shifts, phantom.shift_severity) == ("external", (), 0.0)
    assert phantom.image.std() > 0.05  # not a blank field


def test_severity_zero_is_the_unshifted_image_and_effects_grow_with_severity() -> None:
    base = generate_radiograph_b(seed=1, index=3).image
    for shift in SHIFTS:
        zero = generate_radiograph_b(seed=1, index=3, shift=shift, severity=0.0)
        assert _digest(zero.image) == _digest(base), shift
        assert (zero.shifts, zero.shift_severity) == ((shift,), 0.0)
        # Measured (seed 1, index 3): mean |Δ| at severity 0.3 / 1.0 — blur 0.006/0.017,
        # lowres 0.010/0.020, cast 0.035/0.118, noise 0.021/0.070, grid 0.007/0.022, exposure 0.044/0.145.
        mild, strong = (float(np.abs(generate_radiograph_b(seed=1, index=3, shift=shift, severity=s).image
                                     - base).mean()) for s in (0.3, 1.0))
        assert 0.003 < mild < strong, (shift, mild, strong)
    shifted = generate_radiograph_b(seed=1, index=3, shift="blur", severity=0.4)
    assert (shifted.shifts, shifted.shift_severity) == (("blur",), 0.4)
    # without a shift the severity is not recorded
    assert generate_radiograph_b(seed=1, index=3, severity=0.9).shift_severity == 0.0


def test_sites_share_anatomy_but_not_acquisition() -> None:
    internal = generate_radiograph_b(seed=4, index=2, site="internal")
    external = generate_radiograph_b(seed=4, index=2, site="external")
    assert internal.body_part == external.body_part == "wrist"
    assert not np.array_equal(internal.image, external.image)


def test_projection_of_a_cylinder_and_an_ellipsoid_matches_hand_computed_chords() -> None:
    # The marrow carries a trabecular texture 1 + 0.25·field, the first draw of the stream.
    texture = 1.0 + 0.25 * power_law_field(np.random.default_rng(0), (100, 100), 1.6)
    # A horizontal bone of radius 10 mm, cortex 30 % (cavity radius 7 mm), in a 100 mm field of
    # 100 px. Pixel (42, 50) has its centre 7.5 mm off the axis, outside the cavity: the beam
    # crosses 2·√(100 − 56.25) = 13.23 mm of cortex. Pixel (50, 50) is 0.5 mm off the axis:
    # 2·√99.75 − 2·√48.75 mm of cortex and 2·√48.75 mm of marrow.
    bone = Bone(np.array([[5.0, 50.0], [95.0, 50.0]]), np.array([10.0, 10.0]), 0.3)
    projection = project_limb(Limb((bone,), (), (), 3.0, 100.0), 100, np.random.default_rng(0))
    assert projection.mm_per_px == 1.0
    assert projection.bone[42, 50] == pytest.approx(0.065 * 2 * math.sqrt(100 - 56.25), rel=1e-5)
    cortical, marrow = 2 * math.sqrt(99.75) - 2 * math.sqrt(48.75), 2 * math.sqrt(48.75)
    assert projection.bone[50, 50] == pytest.approx(0.065 * cortical + 0.016 * marrow * texture[50, 50], rel=1e-5)
    assert projection.bone[50 - 11, 50] == 0.0  # 10.5 mm off the axis: outside the bone
    # A sphere of radius 5 mm, cortex 40 %: at ρ² = 0.5/25 the outer chord is 10·√0.98, the
    # cavity's (radius 3 mm) 10·0.6·√(1 − 0.02/0.36).
    blob = Blob((50.0, 50.0), 5.0, 5.0, 0.0, 5.0, 0.4)
    sphere = project_limb(Limb((), (blob,), (), 3.0, 100.0), 100, np.random.default_rng(0))
    outer, inner = 10 * math.sqrt(0.98), 6 * math.sqrt(1 - 0.02 / 0.36)
    assert sphere.bone[50, 50] == pytest.approx(0.065 * (outer - inner) + 0.016 * inner * texture[50, 50], rel=1e-5)


@pytest.mark.parametrize("arguments", [
    {"site": "mars"}, {"size": 8}, {"shift": "rotate"}, {"severity": 1.5}, {"severity": -0.1},
    {"body_part": "knee"}, {"index": -2},
])
def test_bad_arguments_are_refused(arguments: dict) -> None:
    with pytest.raises(ParameterError):
        generate_radiograph_b(**{"seed": 0, "shift": "blur", **arguments})


def test_folder_reads_as_an_ood_dataset(tmp_path: Path) -> None:
    csv_path = write_radiographs_b(tmp_path, seed=0, n=14, size=64, site="external", shift="grid", severity=0.7)
    with csv_path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:5] == ["file", "class", "site", "shift_type", "shift_severity"]
    assert {r["shift_type"] for r in rows} == {"grid"} and {r["site"] for r in rows} == {"external"}
    assert rows[0]["file"] == "hand/radiograph-b_00000.png"
    dataset = open_dataset(tmp_path, task="ood")
    assert dataset.layout == "manifest_class" and dataset.classes == tuple(sorted(BODY_PARTS))
    assert {item.shift_type for item in dataset.items} == {"grid"}
    check = check_dataset(dataset, task="ood", read_pixels=True, val_fraction=None)
    assert check.problems == (), check.problems
    # without the manifest the class folders alone are a dataset too
    (tmp_path / "manifest.csv").unlink()
    folders = open_dataset(tmp_path, task="ood")
    assert folders.layout == "class_folders" and len(folders) == 14 and not folders.problems
    stored = cv2.imread(str(tmp_path / rows[3]["file"]), cv2.IMREAD_UNCHANGED)
    expected = generate_radiograph_b(seed=0, index=3, size=64, site="external", shift="grid", severity=0.7).image
    np.testing.assert_array_equal(stored, np.clip(np.rint(expected * 255.0), 0, 255).astype(np.uint8))


def test_registered_kind_generates_and_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.KINDS, "radiograph-b", "medlim.phantoms.radiograph_b:KIND")
    kind = registry.get_kind("radiograph-b")
    phantom = next(kind.iter_phantoms(n=1, seed=0, size=32, shift="noise", severity=0.2))
    rows = kind.write_one(phantom, tmp_path, stem="radiograph-b_00000")
    assert rows == write_radiograph_b(phantom, tmp_path, stem="radiograph-b_00000")
    assert rows[0]["shift_type"] == "noise" and rows[0]["shift_severity"] == 0.2

"""Tests for the MURA-like radiograph phantoms (issue 5, "Data")."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from medlim.cli import main
from medlim.errors import ParameterError
from medlim.phantoms.radiograph import (
    BODY_PARTS,
    EXTERNAL_STYLES,
    apply_site_shift,
    generate_radiograph,
)
from medlim.phantoms.registry import get_kind
from tests.phantoms.goldens import expect_golden


def test_seven_classes_in_turn_and_deterministic() -> None:
    assert BODY_PARTS == ("hand", "finger", "wrist", "forearm", "elbow", "humerus", "shoulder")
    phantoms = [generate_radiograph(seed=2, index=i, size=64) for i in range(8)]
    assert [p.body_part for p in phantoms] == [*BODY_PARTS, "hand"]
    again = generate_radiograph(seed=2, index=3, size=64)
    np.testing.assert_array_equal(again.image, phantoms[3].image)
    assert not np.array_equal(generate_radiograph(seed=3, index=3, size=64).image, again.image)


def test_native_size_range_and_resize() -> None:
    native = generate_radiograph(seed=0, index=0)
    assert native.image.shape == (256, 256) and native.image.dtype == np.float32
    assert 0.0 <= native.image.min() and native.image.max() <= 1.0
    small = generate_radiograph(seed=0, index=0, size=64).image
    expected = cv2.resize(native.image, (64, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(small, np.clip(expected, 0, 1), atol=1e-6)


def test_internal_samples_carry_no_shift() -> None:
    p = generate_radiograph(seed=0, index=5, site="internal")
    assert (p.site, p.shift_severity, p.shifts) == ("internal", 0.0, ())


def test_external_samples_carry_style_and_severity() -> None:
    phantoms = [generate_radiograph(seed=1, index=i, site="external", size=64) for i in range(24)]
    assert all(p.site in EXTERNAL_STYLES and 0.0 <= p.shift_severity <= 1.0 and p.shifts for p in phantoms)
    assert len({p.site for p in phantoms}) >= 3
    mixed = [generate_radiograph(seed=1, index=i, site="mixed", size=32).site for i in range(30)]
    assert 5 < sum(s == "internal" for s in mixed) < 25


def test_anatomy_is_the_same_across_sites() -> None:
    # the site changes acquisition, never the body part's draw
    internal = generate_radiograph(seed=4, index=2, site="internal")
    external = generate_radiograph(seed=4, index=2, site="external")
    assert internal.body_part == external.body_part == "wrist"
    assert not np.array_equal(internal.image, external.image)


def test_shift_grows_with_severity() -> None:
    image = generate_radiograph(seed=0, index=3, size=128).image
    changes = []
    for severity in (0.0, 0.5, 1.0):
        shifted = apply_site_shift(image, "external-a", severity, np.random.default_rng(7))
        changes.append(float(np.abs(shifted - image).mean()))
    assert changes[0] < changes[1] < changes[2]


def test_inversion_style_flips_polarity() -> None:
    image = generate_radiograph(seed=0, index=3, size=64).image
    inverted = apply_site_shift(image, "external-c", 1.0, np.random.default_rng(0))
    bright = image > np.percentile(image, 90)
    dark = image < np.percentile(image, 10)
    assert inverted[bright].mean() < inverted[dark].mean()


def test_classes_differ_more_between_than_within() -> None:
    means = {}
    for part in ("hand", "forearm", "shoulder"):
        stack = np.stack([generate_radiograph(seed=5, index=k, body_part=part, size=32).image for k in range(6)])
        means[part] = stack.mean(axis=0)
    within = np.mean([np.abs(generate_radiograph(seed=6, index=k, body_part="forearm", size=32).image
                             - means["forearm"]).mean() for k in range(4)])
    assert np.abs(means["hand"] - means["forearm"]).mean() > within * 0.8
    assert means["shoulder"].mean() > means["hand"].mean()  # shoulders fill the frame with tissue


def test_bad_parameters() -> None:
    with pytest.raises(ParameterError, match="site"):
        generate_radiograph(seed=0, site="abroad")
    with pytest.raises(ParameterError, match="knee"):
        generate_radiograph(seed=0, body_part="knee")
    with pytest.raises(ParameterError, match="severity"):
        apply_site_shift(np.zeros((16, 16), np.float32), "external-a", 1.5, np.random.default_rng(0))
    with pytest.raises(ParameterError, match="size"):
        generate_radiograph(seed=0, size=8)


def test_registry_and_cli_write_class_folders_and_manifest(tmp_path: Path) -> None:
    assert get_kind("radiograph").name == "radiograph"
    out = tmp_path / "rad"
    code = main(["phantom", "radiograph", "--out", str(out), "--n", "9", "--seed", "3", "--site", "mixed",
                 "--size", "64", "--quiet"])
    assert code == 0
    with (out / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 9
    assert {"file", "class", "site", "shift_severity"} <= set(rows[0])
    for row in rows:
        path = out / row["file"]
        assert path.parent.name == row["class"] and path.is_file()
        assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape == (64, 64)
        assert (row["site"] == "internal") == (float(row["shift_severity"]) == 0.0) or row["site"] != "internal"
    assert {r["class"] for r in rows} == set(BODY_PARTS)


# sha256 of seven phantoms (sites internal/external/mixed, sizes 64–256) computed before `variability` existed
# (per CPU class: tests/phantoms/goldens.py; the AVX2 digest recorded 2026-12-08 from the unchanged generator)
_DEFAULT_HASH = {"avx512": "6c396c6dfe9d98f3d7cf68294682e0301760e9e8782c7b65a3b9a1a7a82108de",
                 "avx2": "06b56737de8d194f8ed9f5f27c030394e79470d8253c6c3b99c630cecb3a8eec"}


def _phantom_hash(**params: float) -> str:
    import hashlib

    digest = hashlib.sha256()
    cases = [("internal", 256), ("internal", 64), ("external", 64), ("mixed", 128), ("external", 256),
             ("internal", 64), ("mixed", 64)]
    for i, (site, size) in enumerate(cases):
        p = generate_radiograph(seed=3, index=i * 5 + 1, site=site, size=size, **params)
        digest.update(np.ascontiguousarray(p.image, dtype=np.float32).tobytes())
        digest.update(f"{p.body_part}|{p.site}|{p.shift_severity}|{'+'.join(p.shifts)}".encode())
    return digest.hexdigest()


def test_default_variability_keeps_every_phantom_bit_identical() -> None:
    default = _phantom_hash()
    assert _phantom_hash(variability=0.0) == default
    assert _phantom_hash(variability=0.5) != default
    expect_golden(default, _DEFAULT_HASH)


def test_variability_is_deterministic_keeps_class_and_site_and_varies_intensity() -> None:
    a = generate_radiograph(seed=5, index=3, size=64, variability=1.0)
    b = generate_radiograph(seed=5, index=3, size=64, variability=1.0)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.body_part == "forearm" and a.site == "internal" and a.image.dtype == np.float32
    assert 0.0 <= a.image.min() and a.image.max() <= 1.0
    # the site shift draws are untouched by the variation stream
    plain = generate_radiograph(seed=5, index=3, site="external", size=64)
    varied = generate_radiograph(seed=5, index=3, site="external", size=64, variability=1.0)
    assert (plain.site, plain.shift_severity) == (varied.site, varied.shift_severity)
    # over a series the mean brightness spreads more than at the fixed acquisition
    fixed = [generate_radiograph(seed=6, index=k, body_part="forearm", size=32).image.mean() for k in range(16)]
    spread = [generate_radiograph(seed=6, index=k, body_part="forearm", size=32, variability=1.0).image.mean()
              for k in range(16)]
    assert np.std(spread) > 1.5 * np.std(fixed)


@pytest.mark.parametrize("bad", [-0.1, 1.5, True, "1"])
def test_bad_variability(bad: object) -> None:
    with pytest.raises(ParameterError, match="variability"):
        generate_radiograph(seed=0, index=0, size=32, variability=bad)


def test_cli_variability_writes_the_varied_phantoms(tmp_path: Path) -> None:
    out = tmp_path / "rad"
    assert main(["phantom", "radiograph", "--out", str(out), "--n", "2", "--seed", "4", "--size", "32",
                 "--variability", "1", "--quiet"]) == 0
    with (out / "manifest.csv").open(newline="") as handle:
        first = next(csv.DictReader(handle))
    written = cv2.imread(str(out / first["file"]), cv2.IMREAD_UNCHANGED)
    varied = generate_radiograph(seed=4, index=0, size=32, variability=1.0).image
    plain = generate_radiograph(seed=4, index=0, size=32).image
    assert np.abs(written / 255.0 - varied).max() <= 1 / 255 + 1e-6
    assert np.abs(written / 255.0 - plain).max() > 0.05

"""Tests for the phantom framework: seeded streams, registry, generic writer, manifest."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.phantoms import KINDS, PhantomKind, get_kind, kind_names, rng_for
from medlim.phantoms.base import check_seed, write_generic, write_manifest


def test_rng_for_is_reproducible_and_pinned() -> None:
    # Pinned value: the stream for (3, "a", 1) must not change between processes or
    # releases (string keys are hashed with SHA-256, not Python's salted hash()).
    assert rng_for(3, "a", 1).random() == pytest.approx(0.1666828800528367, abs=0)
    assert rng_for(3, "a", 1).random() == rng_for(3, "a", 1).random()


def test_rng_for_streams_are_independent() -> None:
    left = rng_for(7, "patient", 3, "L").random(4)
    right = rng_for(7, "patient", 3, "R").random(4)
    other_seed = rng_for(8, "patient", 3, "L").random(4)
    assert not np.array_equal(left, right)
    assert not np.array_equal(left, other_seed)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_check_seed_rejects_bad_values(bad: object) -> None:
    with pytest.raises(ParameterError):
        check_seed(bad)  # type: ignore[arg-type]


def test_rng_for_rejects_negative_integer_keys() -> None:
    with pytest.raises(ParameterError, match="-2"):
        rng_for(1, -2)


def test_registry_entries_are_lazy_import_strings() -> None:
    assert "mammogram" in KINDS and "fluorescence" in KINDS
    for target in KINDS.values():
        module, _, attribute = target.partition(":")
        assert module.startswith("medlim.phantoms.") and attribute
    assert kind_names() == tuple(sorted(KINDS))


def test_get_kind_mammogram_and_unknown() -> None:
    kind = get_kind("mammogram")
    assert isinstance(kind, PhantomKind) and kind.name == "mammogram"
    with pytest.raises(ParameterError, match="nope"):
        get_kind("nope")


@dataclass(frozen=True)
class _Toy:
    image: np.ndarray
    mask: np.ndarray
    label: str
    count: int


def _toy_generate(*, seed: int, index: int = 0, side: int = 4) -> _Toy:
    rng = rng_for(seed, "toy", index)
    image = rng.random((side, side)).astype(np.float32)
    return _Toy(image=image, mask=image > 0.5, label=f"toy{index}", count=int((image > 0.5).sum()))


def test_iter_phantoms_each_phantom_independent_of_n() -> None:
    kind = PhantomKind(name="toy", summary="toy", generate=_toy_generate)
    three = list(kind.iter_phantoms(n=3, seed=5, side=6))
    one_more = list(kind.iter_phantoms(n=4, seed=5, side=6))
    assert len(three) == 3
    for a, b in zip(three, one_more):
        np.testing.assert_array_equal(a.image, b.image)
    with pytest.raises(ParameterError):
        list(kind.iter_phantoms(n=-1, seed=5))


def test_generic_writer_and_manifest(tmp_path) -> None:
    kind = PhantomKind(name="toy", summary="toy", generate=_toy_generate)
    phantom = kind.generate(seed=1, index=2)
    rows = kind.write_one(phantom, tmp_path, stem="t0")
    assert rows == [{"stem": "t0", "image": "t0_image.png", "mask": "t0_mask.png", "label": "toy2",
                     "count": phantom.count}]
    import cv2

    mask = cv2.imread(str(tmp_path / "t0_mask.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask, phantom.mask.astype(np.uint8) * 255)
    json_path, csv_path = write_manifest(rows, tmp_path, kind="toy", seed=1, params={"side": 4})
    document = json.loads(json_path.read_text())
    assert document["seed"] == 1 and document["kind"] == "toy" and document["params"] == {"side": 4}
    assert document["rows"][0]["label"] == "toy2"
    with csv_path.open() as handle:
        table = list(csv.DictReader(handle))
    assert table[0]["image"] == "t0_image.png" and int(table[0]["count"]) == phantom.count


def test_generic_writer_refuses_options(tmp_path) -> None:
    with pytest.raises(ParameterError):
        write_generic(_toy_generate(seed=0), tmp_path, stem="x", colour="red")


def test_ellipse_window_and_smooth_noise() -> None:
    import numpy as np

    from medlim.phantoms.base import ellipse_window, smooth_noise

    yy, xx = np.mgrid[0:11, 0:11].astype(np.float64)
    # Ellipse a = 4 along x, b = 2 along y, centred at (5, 5): the box is
    # [5 − 4 − 2, 5 + 4 + 3) = [−1, 12) clipped to [0, 11) on both axes.
    (rows, cols), rho = ellipse_window(yy, xx, 5.0, 5.0, 4.0, 2.0, 0.0)
    assert (rows, cols) == (slice(0, 11), slice(0, 11)) and rho.shape == (11, 11)
    assert rho[5, 5] == 0.0 and rho[5, 9] == 1.0 and rho[7, 5] == 1.0 and rho[5, 7] == 0.5
    # Turned by 90°: the long axis runs along y.
    _, turned = ellipse_window(yy, xx, 5.0, 5.0, 4.0, 2.0, np.pi / 2)
    assert abs(turned[9, 5] - 1.0) < 1e-12 and abs(turned[5, 7] - 1.0) < 1e-12
    field = smooth_noise(np.random.default_rng(0), (64, 64), 3.0, dtype=np.float32)
    assert field.dtype == np.float32 and abs(float(field.std()) - 1.0) < 1e-5

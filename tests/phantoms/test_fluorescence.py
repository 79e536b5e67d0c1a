from __future__ import annotations

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.phantoms.fluorescence import KIND, generate_fluorescence


def test_seeded_shapes_and_labels():
    a = generate_fluorescence(3, size=(256, 344))
    b = generate_fluorescence(3, size=(256, 344))
    c = generate_fluorescence(3, index=1, size=(256, 344))
    assert a.image.shape == (256, 344, 3) and a.image.dtype == np.uint8
    assert a.labels.shape == (256, 344) and a.labels.dtype == np.uint16
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, c.image)
    ids = np.unique(a.labels[a.labels > 0])
    assert list(ids) == list(range(1, a.n_nuclei + 1))  # every nucleus visible, labels dense


def test_dapi_in_blue_and_nuclei_brighter_than_background():
    p = generate_fluorescence(11, size=(256, 344))
    blue = p.image[..., 2].astype(float)
    assert blue[p.labels > 0].mean() > 2.5 * blue[p.labels == 0].mean()
    assert p.image[..., 0].mean() < blue.mean()


def test_clumps_of_two_to_five_and_both_valley_kinds():
    p = generate_fluorescence(5)  # thesis size 1024×1376
    assert p.image.shape == (1024, 1376, 3)
    clump_ids = p.clump_of[p.clump_of > 0]
    sizes = np.bincount(clump_ids)[1:]
    sizes = sizes[sizes > 0]
    assert len(sizes) >= 10 and sizes.min() >= 1 and sizes.max() <= 5
    assert (sizes >= 2).sum() >= 10
    in_clumps = np.nonzero(p.clump_of > 0)[0]
    assert p.valley[in_clumps].any() and not p.valley[in_clumps].all()
    # members of a clump touch each other (overlap pixels were given to one of them)
    some = in_clumps[0]
    mates = np.nonzero(p.clump_of == p.clump_of[some])[0]
    from scipy import ndimage

    grown = ndimage.binary_dilation(p.labels == some, iterations=2)
    assert any(np.any(grown & (p.labels == m)) for m in mates if m != some)


def test_registry_kind_and_validation():
    assert KIND.name == "fluorescence"
    phantom = KIND.generate(seed=2, index=0, size=(128, 160))
    assert phantom.labels.shape == (128, 160)
    with pytest.raises(ParameterError, match="64"):
        generate_fluorescence(0, size=(32, 32))
    with pytest.raises(ParameterError, match="seed"):
        generate_fluorescence(-1)
    with pytest.raises(ParameterError, match="overlap"):
        generate_fluorescence(0, overlap=(0.9, 0.5))


@pytest.mark.parametrize(
    ("seed", "params", "expected"),
    [
        # sha256 of image, labels, clump ids and valley flags, recorded from the generator before it was split into
        # named steps (issue 17) and checked equal to it.
        (1, {"size": (256, 344)}, "3d7466577dae12a1bc54b8c0377bcd502fcadd5e6538a98c3d8f204f4570a08c"),
        (3, {"index": 2, "size": (200, 300), "clump_fraction": 1.0, "valley_fraction": 1.0},
         "98436aa48f3d58da999e5e20efcc60cd7a106595e841c4e141d7e794a9e4d099"),
    ],
)
def test_golden_phantoms(seed, params, expected):
    import hashlib

    p = generate_fluorescence(seed, **params)
    digest = hashlib.sha256()
    for part in (p.image, p.labels, p.clump_of, p.valley):
        digest.update(np.ascontiguousarray(part).tobytes())
    assert digest.hexdigest() == expected

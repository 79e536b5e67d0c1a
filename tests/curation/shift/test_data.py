"""Lazily read datasets: phantom sets, class folders, zips."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from medlim.curation.shift.data import (
    extract_zip,
    folder_set,
    iter_batches,
    parse_dataset,
    phantom_image_set,
    write_image_set,
)
from medlim.errors import ParameterError


def test_phantom_ground_truth_matches_the_generator() -> None:
    from medlim.phantoms.radiograph import generate_radiograph

    image_set = phantom_image_set(seed=7, per_class=4, site="mixed", body_parts=("hand", "elbow"))
    assert len(image_set) == 8 and image_set.class_names == ("elbow", "hand")
    for p in range(len(image_set)):
        phantom = generate_radiograph(seed=7, index=image_set.indices[p], body_part=image_set.classes[p], site="mixed")
        assert phantom.site == image_set.sites[p]
        assert phantom.shift_severity == pytest.approx(image_set.severity[p], abs=1e-6)
    pixels = image_set.read([0, 5], 32)
    assert pixels.shape == (2, 32, 32) and pixels.dtype == np.float32
    assert parse_dataset(image_set.source).files == image_set.files


def test_folder_round_trip_and_batches(tmp_path: Path) -> None:
    image_set = phantom_image_set(seed=3, per_class=3, site="external", body_parts=("finger", "wrist"))
    root = write_image_set(image_set, tmp_path / "ext", size=32)
    read = folder_set(root)
    assert read.classes == image_set.classes and read.shifted.all()
    assert read.severity == pytest.approx(image_set.severity, abs=1e-6)
    seen = []
    batches = list(iter_batches(read, size=32, batch_size=4, progress=lambda d, t: seen.append((d, t))))
    assert [len(p) for p, _ in batches] == [4, 2] and seen == [(4, 6), (6, 6)]
    np.testing.assert_allclose(batches[0][1][0], image_set.read([0], 32)[0], atol=1 / 255 + 1e-6)
    # without a manifest the sub-folder names are the classes and the truth is unknown
    (root / "manifest.csv").unlink()
    plain = folder_set(root)
    assert sorted(set(plain.classes)) == ["finger", "wrist"] and plain.shifted is None


def test_zip_is_unpacked_once_and_unwrapped(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data/hand/a.png", b"x")
        archive.writestr("data/elbow/b.png", b"y")
    target = extract_zip(buffer.getvalue(), tmp_path)
    assert target.name == "data" and (target / "hand" / "a.png").read_bytes() == b"x"
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("../evil.png", b"z")
    with pytest.raises(ParameterError, match="leave"):
        extract_zip(bad.getvalue(), tmp_path)
    with pytest.raises(ParameterError, match="zip"):
        extract_zip(b"not a zip", tmp_path)


def test_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="phantom"):
        parse_dataset("phantom:internal:x:3")
    with pytest.raises(ParameterError, match="does not exist"):
        folder_set(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParameterError, match="no images"):
        folder_set(tmp_path / "empty")


def test_chosen_shift_mix_uses_the_generator_parts() -> None:
    from medlim.phantoms.base import rng_for
    from medlim.phantoms.radiograph import apply_site_shift, render_anatomy

    image_set = parse_dataset("phantom:mix0.4-0.9x0.5:9:6:hand,elbow")
    shifted = image_set.shifted
    assert 0 < shifted.sum() < len(image_set)
    assert np.all((image_set.severity[shifted] >= 0.4) & (image_set.severity[shifted] <= 0.9))
    assert np.all(image_set.severity[~shifted] == 0.0)
    assert parse_dataset(image_set.source).files == image_set.files
    p = int(np.nonzero(shifted)[0][0])
    part, index = image_set.classes[p], image_set.indices[p]
    expected = apply_site_shift(render_anatomy(part, rng_for(9, "radiograph", index, part)), image_set.sites[p],
                                image_set.severity[p], rng_for(9, "medshift-shift", index, part))
    np.testing.assert_array_equal(image_set.phantom.render(index, part), expected)
    with pytest.raises(ParameterError, match="severity_range"):
        phantom_image_set(seed=1, per_class=2, severity_range=(0.8, 0.2))
    with pytest.raises(ParameterError, match="shift mix"):
        parse_dataset("phantom:mixbad:1:2")


def test_multi_label_manifest_gives_findings_and_a_label_matrix(tmp_path: Path) -> None:
    from medlim.curation.shift.data import ImageSet

    # a phantom source stands in for the pixels; the findings are what is tested
    image_set = ImageSet(name="cxr", files=("hand/1", "hand/2", "hand/3"), classes=("hand",) * 3,
                         phantom=phantom_image_set(seed=1, per_class=3, body_parts=("hand",)).phantom,
                         indices=(0, 1, 2), findings=(("Effusion", "Fracture"), (), ("Fracture",)))
    assert image_set.label_names == ("Effusion", "Fracture")
    assert image_set.label_matrix(["Fracture", "Effusion", "Nodule"]).tolist() == [[1, 1, 0], [0, 0, 0], [1, 0, 0]]
    root = write_image_set(image_set, tmp_path / "cxr", size=16)
    read = folder_set(root)
    assert read.findings == (("Effusion", "Fracture"), (), ("Fracture",)) and read.classes == ("hand",) * 3
    assert read.subset(np.array([False, True, True])).findings == ((), ("Fracture",))
    # a single-label set's labels are its classes
    single = phantom_image_set(seed=1, per_class=2, body_parts=("hand", "elbow"))
    assert single.findings == () and single.label_names == ("elbow", "hand")
    assert single.label_matrix(["hand"]).tolist() == [[1], [1], [0], [0]]

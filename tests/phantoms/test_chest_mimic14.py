"""Chest phantoms, MIMIC-like label set: label model by hand, hierarchy, co-occurrence, looks, CLI;
the default label set unchanged."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.phantoms.base import rng_for
from medlim.phantoms.chest import (
    FINDINGS,
    MIMIC14_FINDINGS,
    MIMIC14_LOOK,
    MIMIC14_PREVALENCE,
    _draw_mimic14_labels,
    default_look,
    generate_chest,
    label_names,
    labels_to_vector,
)
from tests.phantoms.goldens import expect_golden

CHILDREN = ("Edema", "Consolidation", "Pneumonia", "Atelectasis", "Lung Lesion")


@pytest.fixture(scope="module")
def drawn() -> np.ndarray:
    # 20,000 label sets from the label stream alone (no rendering), as a [N, 14] matrix without No Finding rule
    rows = [_draw_mimic14_labels(rng_for(11, "chest-mimic14-labels", i)) for i in range(20000)]
    return np.array([[name in row for name in MIMIC14_FINDINGS] for row in rows], dtype=bool)


def _column(matrix: np.ndarray, name: str) -> np.ndarray:
    return matrix[:, MIMIC14_FINDINGS.index(name)]


def test_default_label_set_is_bit_identical_to_the_first_release() -> None:
    # sha256 of 6 default phantoms (seed 3, 32 px, image bytes + labels) computed with the chest module
    # as it was before the label-set option (commit deb138d); per CPU class (tests/phantoms/goldens.py), the AVX2
    # digest recorded 2026-12-08 from the unchanged generator
    digest = hashlib.sha256()
    for i in range(6):
        phantom = generate_chest(seed=3, index=i, size=32)
        digest.update(phantom.image.tobytes())
        digest.update("|".join(phantom.labels).encode())
    assert generate_chest(seed=3, index=0, size=32).label_set == "chest8"
    assert label_names() == FINDINGS and len(label_names("mimic14")) == 14
    expect_golden(digest.hexdigest(), {"avx512": "7768a538be22fd25cc61c4af49434a7f54f40dd1d61b4894d02ef9a45bdc6784",
                                       "avx2": "9109f1cf77f60eb965726fabac4b0a13aecfe56a235e5ac8f3ac3d618b6a8803"})


def test_noisy_or_marginals_by_hand(drawn: np.ndarray) -> None:
    # Pneumonia: leak 0.012, infection (rate 0.10) weight 0.55 → 0.012 + 0.988·0.10·0.55 = 0.06634
    # Cardiomegaly: leak 0.12, heart failure (0.18) weight 0.52 → 0.12 + 0.88·0.18·0.52 = 0.202368
    # Lung Lesion, Pleural Other: leak only → 0.03, 0.01
    n = len(drawn)
    for name, expected in (("Pneumonia", 0.06634), ("Cardiomegaly", 0.202368), ("Lung Lesion", 0.03),
                           ("Pleural Other", 0.01)):
        rate = _column(drawn, name).mean()
        assert abs(rate - expected) < 4.0 * np.sqrt(expected * (1 - expected) / n), name


def test_rates_are_close_to_the_published_mimic_frequencies(drawn: np.ndarray) -> None:
    pathology = np.delete(drawn, [0, MIMIC14_FINDINGS.index("Support Devices")], axis=1)
    no_finding = ~pathology.any(axis=1)
    assert abs(no_finding.mean() - MIMIC14_PREVALENCE["No Finding"]) < 0.03
    for name in MIMIC14_FINDINGS[1:]:
        assert abs(_column(drawn, name).mean() - MIMIC14_PREVALENCE[name]) < 0.025, name
    counts = drawn[:, 1:].sum(axis=1) + no_finding
    assert ((counts == 1) | (counts == 2)).mean() > 0.7  # most images carry one or two labels


def test_hierarchy_and_co_occurrence(drawn: np.ndarray) -> None:
    opacity = _column(drawn, "Lung Opacity")
    child = np.any([_column(drawn, c) for c in CHILDREN], axis=0)
    # parent: leak 0.125 alone; with any child 1 − 0.875·0.7 = 0.3875
    assert abs(opacity[~child].mean() - 0.125) < 0.015 and abs(opacity[child].mean() - 0.3875) < 0.02
    heart, edema = _column(drawn, "Cardiomegaly"), _column(drawn, "Edema")
    assert edema[heart].mean() > 2.0 * edema[~heart].mean()
    effusion, atelectasis = _column(drawn, "Pleural Effusion"), _column(drawn, "Atelectasis")
    assert atelectasis[effusion].mean() > 1.5 * atelectasis[~effusion].mean()
    mediastinum = _column(drawn, "Enlarged Cardiomediastinum")
    assert mediastinum[heart].mean() > mediastinum[~heart].mean()
    devices = _column(drawn, "Support Devices")
    assert devices[effusion | _column(drawn, "Pneumothorax")].mean() > devices.mean()


def test_generated_labels_follow_the_no_finding_rule_and_the_label_stream() -> None:
    for i in range(12):
        phantom = generate_chest(seed=5, index=i, size=32, label_set="mimic14")
        present = _draw_mimic14_labels(rng_for(5, "chest-mimic14-labels", i))
        assert phantom.label_set == "mimic14" and phantom.vector.shape == (14,)
        assert set(phantom.labels) - {"No Finding"} == present
        assert ("No Finding" in phantom.labels) == (not present - {"Support Devices"})
        assert list(phantom.labels) == [n for n in MIMIC14_FINDINGS if n in phantom.labels]  # thesis order


def test_default_look_and_validation() -> None:
    assert default_look("mimic14") == MIMIC14_LOOK and MIMIC14_LOOK["subtlety"] == 1.0
    implicit = generate_chest(seed=2, index=1, size=32, label_set="mimic14")
    explicit = generate_chest(seed=2, index=1, size=32, label_set="mimic14", **MIMIC14_LOOK)
    assert np.array_equal(implicit.image, explicit.image)
    with pytest.raises(ParameterError, match="label_set"):
        generate_chest(seed=2, index=1, label_set="chexpert")
    assert labels_to_vector(["No Finding", "Support Devices"], label_set="mimic14").tolist() == [1] + [0] * 12 + [1]
    with pytest.raises(ParameterError, match="unknown finding"):
        labels_to_vector(["effusion"], label_set="mimic14")


def test_airspace_findings_brighten_the_lungs() -> None:
    # mean brightness over both lung fields (rows 20-44, columns 12-26 and 38-52 of 64) at full conspicuity
    # and without acquisition variation: consolidation, pneumonia, edema or effusion add density there
    dense = ("Consolidation", "Pneumonia", "Edema", "Pleural Effusion")
    sick, clear = [], []
    for i in range(100):
        phantom = generate_chest(seed=4, index=i, size=64, label_set="mimic14", subtlety=0.0, mimic_rate=0.0,
                                 acquisition=0.0)
        field = np.concatenate([phantom.image[20:44, 12:26], phantom.image[20:44, 38:52]], axis=1).mean()
        if any(name in phantom.labels for name in dense):
            sick.append(field)
        elif phantom.labels in (("No Finding",), ("No Finding", "Support Devices")):
            clear.append(field)
    assert len(sick) > 10 and len(clear) > 10
    assert np.mean(sick) > np.mean(clear) + 0.01


def test_cli_writes_the_mimic14_label_set(tmp_path) -> None:
    from medlim.cli import main

    assert main(["phantom", "chest", "--n", "3", "--seed", "7", "--size", "32", "--label-set", "mimic14",
                 "--quiet", "--out", str(tmp_path)]) == 0
    with (tmp_path / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for i, row in enumerate(rows):
        assert row["labels"].split("|") == list(generate_chest(seed=7, index=i, label_set="mimic14").labels)
    params = json.loads((tmp_path / "manifest.json").read_text())["params"]
    assert params["label_set"] == "mimic14" and params["subtlety"] == MIMIC14_LOOK["subtlety"]

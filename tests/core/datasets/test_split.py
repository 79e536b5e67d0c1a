"""``split_dataset``: by patient (never one patient on both sides), by image, seeded, hand-counted sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlim.core.datasets import Dataset, DatasetItem, split_dataset
from medlim.core.datasets.split import validation_count
from medlim.errors import ParameterError


def _dataset(items: list[DatasetItem]) -> Dataset:
    return Dataset(root=Path("/data"), layout="unlabelled", items=tuple(items))


def _patients(count: int, per_patient: int) -> Dataset:
    """``count`` patients with ``per_patient`` images each."""
    pairs = [(patient, k) for patient in range(count) for k in range(per_patient)]
    return _dataset([DatasetItem(image=Path(f"/data/{p}_{k}.png"), patient=f"P{p}") for p, k in pairs])


@pytest.mark.parametrize(
    ("total", "fraction", "expected"),
    [(0, 0.2, 0), (1, 0.2, 0), (2, 0.2, 1), (4, 0.2, 1), (12, 0.2, 2), (13, 0.2, 3), (5, 0.5, 3), (10, 0.99, 9)],
)
def test_validation_count_rounds_half_up_and_keeps_both_parts(total, fraction, expected) -> None:
    # 12 × 0.2 = 2.4 → 2; 13 × 0.2 = 2.6 → 3; 5 × 0.5 = 2.5 → 3; 10 × 0.99 = 9.9 → 10, capped at 9
    assert validation_count(total, fraction) == expected


def test_by_patient_never_puts_one_patient_on_both_sides() -> None:
    dataset = _patients(10, 3)
    for seed in range(20):
        split = split_dataset(dataset, seed=seed)
        train = {dataset.items[i].patient for i in split.train}
        val = {dataset.items[i].patient for i in split.val}
        assert not train & val
        assert (len(val), len(split.val), len(split.train)) == (2, 6, 24)
        assert (split.by, split.train_patients, split.val_patients) == ("patient", 8, 2)
        assert sorted(split.train + split.val) == list(range(30))


def test_split_is_seeded() -> None:
    dataset = _patients(10, 2)
    assert split_dataset(dataset, seed=3) == split_dataset(dataset, seed=3)
    assert len({split_dataset(dataset, seed=seed).val for seed in range(10)}) > 1


def test_items_without_patient_are_patients_of_their_own() -> None:
    items = [DatasetItem(image=Path(f"/data/{k}.png"), patient="P1" if k < 3 else None) for k in range(5)]
    split = split_dataset(_dataset(items), fraction=0.5, seed=0)
    assert split.by == "patient"
    assert split.train_patients + split.val_patients == 3  # P1 and two anonymous items
    assert {0, 1, 2} <= set(split.train) or {0, 1, 2} <= set(split.val)


def test_without_patients_the_split_is_by_image() -> None:
    dataset = _dataset([DatasetItem(image=Path(f"/data/{k}.png")) for k in range(20)])
    split = split_dataset(dataset, seed=1)
    assert (split.by, len(split.train), len(split.val)) == ("image", 16, 4)
    assert split.train_patients is None and split.val_patients is None


def test_by_image_is_stratified_by_class() -> None:
    items = [DatasetItem(image=Path(f"/data/a{k}.png"), label="a") for k in range(10)]
    items += [DatasetItem(image=Path(f"/data/b{k}.png"), label="b") for k in range(5)]
    split = split_dataset(_dataset(items), seed=7)
    val_labels = sorted(items[i].label for i in split.val)
    assert val_labels == ["a", "a", "b"]  # 10 × 0.2 = 2 and 5 × 0.2 = 1


def test_tiny_classes_still_give_one_validation_image_and_one_to_train() -> None:
    items = [DatasetItem(image=Path(f"/data/{k}.png"), label=str(k)) for k in range(2)]
    split = split_dataset(_dataset(items))
    assert (len(split.train), len(split.val)) == (1, 1)


def test_order_keys_make_the_split_follow_content_not_names() -> None:
    names_a = [DatasetItem(image=Path(f"/data/{k}.png"), patient=f"P{k}") for k in range(10)]
    names_b = [DatasetItem(image=Path(f"/data/renamed_{9 - k}.png"), patient=f"Q{k}") for k in range(10)]
    keys = [f"digest{k}" for k in range(10)]
    first = split_dataset(_dataset(names_a), seed=5, order_keys=keys)
    renamed = split_dataset(_dataset(names_b), seed=5, order_keys=keys)
    assert first.val == renamed.val
    reversed_keys = split_dataset(_dataset(names_a[::-1]), seed=5, order_keys=keys[::-1])
    assert {keys[::-1][i] for i in reversed_keys.val} == {keys[i] for i in first.val}


def test_to_json_records_how_and_sizes_only() -> None:
    split = split_dataset(_patients(5, 2), seed=2)
    # 20 % of 5 patients rounds to 1, but a split by patient keeps at least 2 on each side
    # when there are 4 or more (MIN_PATIENTS_PER_SIDE): 2 patients of 2 images each validate.
    assert split.to_json() == {
        "by": "patient", "seed": 2, "fraction": 0.2,
        "train_images": 6, "val_images": 4, "train_patients": 3, "val_patients": 2,
    }


@pytest.mark.parametrize(("patients", "val"), [(3, 1), (4, 2), (5, 2), (10, 2), (13, 3), (20, 4)])
def test_a_split_by_patient_keeps_two_patients_a_side_from_four_patients_on(patients: int, val: int) -> None:
    split = split_dataset(_patients(patients, 3), seed=1)
    assert (split.train_patients, split.val_patients) == (patients - val, val)
    assert (len(split.train), len(split.val)) == (3 * (patients - val), 3 * val)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"fraction": 0.0}, "fraction"), ({"fraction": True}, "fraction"), ({"seed": -1}, "seed"),
     ({"seed": 1.5}, "seed"), ({"order_keys": ["x"]}, "order_keys")],
)
def test_bad_arguments_raise(kwargs, match) -> None:
    with pytest.raises(ParameterError, match=match):
        split_dataset(_patients(2, 1), **kwargs)

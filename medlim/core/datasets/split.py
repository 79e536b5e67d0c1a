"""The validation split: by patient when the data says who the patients are, else by image.

Issue 12 ("Validation split"): 20 % of the data is held out, by patient when a
``patient`` column exists (never one patient on both sides), else by image
(stratified by class when every image has one); seeded and recorded. The split
follows the order of the keys it is given: pass content digests
(:attr:`medlim.core.datasets.DatasetCheck.digests`) and the same images give the
same split whatever their files are called.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medlim.core.datasets.model import Dataset
from medlim.errors import ParameterError

__all__ = [
    "DEFAULT_VAL_FRACTION",
    "MIN_PATIENTS_PER_SIDE",
    "DatasetSplit",
    "split_dataset",
    "validate_split_options",
    "validation_count",
]

#: Share of the data held out for validation.
DEFAULT_VAL_FRACTION = 0.2


@dataclass(frozen=True)
class DatasetSplit:
    """Which items train and which validate.

    Attributes:
        train: indices into ``dataset.items`` of the training part, ascending.
        val: indices of the validation part, ascending.
        by: ``"patient"`` or ``"image"``.
        seed: the seed of the shuffle.
        fraction: the share asked for validation (of patients or of images).
        train_patients: patients in the training part (``None`` when split by image).
        val_patients: patients in the validation part (``None`` when split by image).
    """

    train: tuple[int, ...]
    val: tuple[int, ...]
    by: str
    seed: int
    fraction: float
    train_patients: int | None = None
    val_patients: int | None = None

    def to_json(self) -> dict[str, object]:
        """What a trained model records: how the split was made and its sizes (no indices, no names)."""
        return {
            "by": self.by,
            "seed": self.seed,
            "fraction": self.fraction,
            "train_images": len(self.train),
            "val_images": len(self.val),
            "train_patients": self.train_patients,
            "val_patients": self.val_patients,
        }


#: A split by patient keeps at least this many patients on each side when the dataset has
#: twice as many (issue 12: "fewer than 2 patients for a split" is a problem, and a site with
#: 4 annotated patients must still be able to train; 20 % of 4 rounds to 1).
MIN_PATIENTS_PER_SIDE = 2


def validation_count(total: int, fraction: float) -> int:
    """How many of ``total`` units (patients or images) go to validation.

    ``fraction × total`` rounded half up, at least 1 and at most ``total − 1``
    when ``total ≥ 2`` (so both parts exist); 0 for fewer than 2 units.
    """
    if total < 2:
        return 0
    return min(total - 1, max(1, math.floor(fraction * total + 0.5)))


def validate_split_options(fraction: float, seed: int) -> None:
    """Raise :class:`ParameterError` unless ``fraction`` is in (0, 1) and ``seed`` a non-negative integer."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 < fraction < 1.0:
        raise ParameterError(f"`fraction` must be a number in (0, 1), {fraction!r} is given.")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ParameterError(f"`seed` must be a non-negative integer, {seed!r} is given.")


def split_dataset(
    dataset: Dataset,
    *,
    fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    order_keys: Sequence[str] | None = None,
) -> DatasetSplit:
    """Hold out ``fraction`` of the dataset for validation.

    By patient when any item names a patient (an item without one is a patient
    of its own): ``validation_count(patients, fraction)`` patients, drawn by a
    shuffle seeded with ``seed``. Else by image: per class when every item has
    one class (``validation_count``-style rounding per class, at least one image
    in all), else over all images.

    Args:
        dataset: the dataset.
        fraction: share held out, in (0, 1).
        seed: seed of the shuffle (a non-negative integer).
        order_keys: one key per item, ordering items (and patients, by their
            smallest key) before the shuffle; ``None`` orders by listing position.

    Returns:
        A :class:`DatasetSplit`.

    Raises:
        ParameterError: ``fraction`` outside (0, 1), a negative or non-integer
            ``seed``, or ``order_keys`` of the wrong length.
    """
    validate_split_options(fraction, seed)
    keys = [f"{position:012d}" for position in range(len(dataset))] if order_keys is None else list(order_keys)
    if len(keys) != len(dataset):
        raise ParameterError(f"`order_keys` must hold one key per item ({len(dataset)}), {len(keys)} are given.")
    rng = np.random.default_rng(int(seed))
    if dataset.has_patients:
        return _split_by_patient(dataset, keys, rng, fraction=float(fraction), seed=int(seed))
    labels = [item.label for item in dataset.items if item.label is not None]
    if dataset.items and len(labels) == len(dataset.items):
        groups: dict[str, list[int]] = {}
        for index, label in enumerate(labels):
            groups.setdefault(label, []).append(index)
        strata = [groups[label] for label in sorted(groups)]
    else:
        strata = [list(range(len(dataset)))]
    val = sorted(_stratified_validation(strata, keys, rng, fraction=float(fraction)))
    train = sorted(set(range(len(dataset))) - set(val))
    return DatasetSplit(train=tuple(train), val=tuple(val), by="image", seed=int(seed), fraction=float(fraction))


def _split_by_patient(
    dataset: Dataset, keys: list[str], rng: np.random.Generator, *, fraction: float, seed: int
) -> DatasetSplit:
    groups: dict[str, list[int]] = {}
    for index, item in enumerate(dataset.items):
        # An item without a patient is its own patient (its key cannot collide with a manifest value).
        groups.setdefault(item.patient if item.patient else f"\x00item {index}", []).append(index)
    ordered = sorted(groups.values(), key=lambda members: min(keys[i] for i in members))
    count = validation_count(len(ordered), fraction)
    if len(ordered) >= 2 * MIN_PATIENTS_PER_SIDE:
        count = min(max(count, MIN_PATIENTS_PER_SIDE), len(ordered) - MIN_PATIENTS_PER_SIDE)
    chosen = rng.permutation(len(ordered))[:count]
    val = sorted(index for group in chosen for index in ordered[int(group)])
    train = sorted(set(range(len(dataset))) - set(val))
    return DatasetSplit(
        train=tuple(train),
        val=tuple(val),
        by="patient",
        seed=seed,
        fraction=fraction,
        train_patients=len(ordered) - count,
        val_patients=count,
    )


def _stratified_validation(
    strata: list[list[int]], keys: list[str], rng: np.random.Generator, *, fraction: float
) -> list[int]:
    """Validation indices: ``fraction`` of each stratum (half up), shuffled within it; at least one overall."""
    total = sum(len(stratum) for stratum in strata)
    ordered = [sorted(stratum, key=lambda i: keys[i]) for stratum in strata]
    shuffled = [[stratum[int(p)] for p in rng.permutation(len(stratum))] for stratum in ordered]
    counts = [min(len(s), math.floor(fraction * len(s) + 0.5)) for s in shuffled]
    if len(strata) == 1:
        counts = [validation_count(total, fraction)]
    elif total >= 2 and sum(counts) == 0:
        counts[max(range(len(shuffled)), key=lambda k: len(shuffled[k]))] = 1
    val = [index for stratum, count in zip(shuffled, counts) for index in stratum[:count]]
    if total >= 2 and len(val) == total:  # every class tiny: keep one image to train on
        val.pop()
    return val

"""OTDD between two whole datasets: ``medlim shift otdd`` (thesis ch. 5, METHODS §5).

:func:`dataset_otdd` measures two labelled datasets with one label per image;
:func:`dataset_otdd_per_class` measures them once per label with binary labels
"has it / has it not" (multi-label data such as chest X-rays). Both read at
most ``pool`` random images of each dataset in batches, take raw pixels or the
embedding of a ResNet-18 G trained on A as features, and return typed results
(:class:`DatasetOtdd`, :class:`PerLabelOtdd`) whose ``to_json`` is what the
command line prints. The OTDD itself is :mod:`medlim.curation.shift.otdd`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlim.curation.shift.check import LeftOutImage
from medlim.curation.shift.data import ImageSet, iter_batches
from medlim.curation.shift.otdd import FEATURES, OtddResult
from medlim.errors import InputError, ParameterError

__all__ = ["PooledFeatures", "DatasetOtdd", "LabelOtdd", "PerLabelOtdd", "dataset_otdd", "dataset_otdd_per_class"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class PooledFeatures:
    """Features of the images read from each dataset.

    Attributes:
        features_a: ``np.ndarray[Pa, F]`` float32; positions_a: ``np.ndarray[Pa]`` int positions in A.
        features_b, positions_b: the same for B.
        settings: how they were made (size, pool, seed, classes, the OT choices, G's settings).
    """

    features_a: np.ndarray
    positions_a: np.ndarray
    features_b: np.ndarray
    positions_b: np.ndarray
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class DatasetOtdd:
    """OTDD between two datasets (mean ± std over repeats).

    Attributes:
        result: the repeated OTDD; features: ``"pixels"`` or ``"embedding"``; settings: how it was measured.
    """

    result: OtddResult
    features: str
    settings: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """``otdd_mean, otdd_std, repeats, n_a, n_b, features, settings`` (``medlim shift otdd --json``)."""
        r = self.result
        return {"otdd_mean": r.mean, "otdd_std": r.std, "repeats": r.repeats, "n_a": r.n_a, "n_b": r.n_b,
                "features": self.features, "settings": dict(self.settings)}


@dataclass(frozen=True)
class LabelOtdd:
    """OTDD of one label with binary labels, and the positives of that label in each pool."""

    label: str
    result: OtddResult
    positives_a: int
    positives_b: int

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {"otdd_mean": r.mean, "otdd_std": r.std, "repeats": r.repeats, "n_a": r.n_a, "n_b": r.n_b,
                "positives_a": self.positives_a, "positives_b": self.positives_b}


@dataclass(frozen=True)
class PerLabelOtdd:
    """One :class:`LabelOtdd` per label (sorted), the features and the settings."""

    labels: tuple[LabelOtdd, ...]
    features: str
    settings: Mapping[str, Any]

    def __getitem__(self, label: str) -> LabelOtdd:
        for item in self.labels:
            if item.label == label:
                return item
        raise KeyError(label)

    def to_json(self) -> dict[str, Any]:
        """``{"per_class": {label: …}, "features", "settings"}`` (``medlim shift otdd --per-class --json``)."""
        return {"per_class": {item.label: item.to_json() for item in self.labels}, "features": self.features,
                "settings": dict(self.settings)}


def _pooled_features(
    a: ImageSet, b: ImageSet, *, features: str, size: int, pool: int, seed: int, classifier_epochs: int,
    log: Log | None,
) -> PooledFeatures:
    """Read at most ``pool`` random images of each set and make their features."""
    from medlim.curation.shift.classifier import (
        ClassifierConfig,
        predict,
        train_classifier,
    )

    if features not in FEATURES:
        raise ParameterError(f"`features` must be one of {FEATURES}, {features!r} is given.")
    rng = np.random.default_rng(seed)
    names = sorted(set(a.class_names) | set(b.class_names))

    left_out = {"a": 0, "b": 0}

    def load(image_set: ImageSet, side: str) -> tuple[np.ndarray, np.ndarray]:
        """The pool's pixels and positions; an image that does not decode is left out with a line (as a run does)."""
        def unreadable(position: int, why: str) -> None:
            left_out[side] += 1
            if log is not None:
                log(LeftOutImage(dataset=image_set.name, file=image_set.files[position], why=why).line())

        positions = np.sort(rng.permutation(len(image_set))[:pool])
        kept, chunks = [], []
        for chunk_positions, chunk in iter_batches(image_set, size=size, positions=positions, on_unreadable=unreadable):
            kept.append(chunk_positions)
            chunks.append(chunk)
        if not chunks:
            raise InputError(f"none of the {len(positions)} images read from {image_set.name!r} could be decoded.")
        return np.concatenate(chunks), np.concatenate(kept)

    pixels_a, positions_a = load(a, "a")
    pixels_b, positions_b = load(b, "b")
    settings: dict[str, Any] = {"size": size, "pool": pool, "seed": seed,
                                "left_out_unreadable": dict(left_out),
                                "inner": "exact W2 between class clouds (ot.emd2, squared Euclidean cost)",
                                "outer": "exact OT (ot.emd2), cost d = (|x - x'|^2 + W2^2)^(1/2)",
                                "classes": names}
    if features == "embedding":
        labels_a = np.array([names.index(a.classes[p]) for p in positions_a], dtype=np.int64)
        config = ClassifierConfig(epochs=classifier_epochs, seed=seed)
        model = train_classifier(pixels_a, labels_a, len(names), config, log=log)
        _, feats_a = predict(model, pixels_a, embed=True)
        _, feats_b = predict(model, pixels_b, embed=True)
        settings["classifier"] = config.to_dict()
    else:
        feats_a, feats_b = pixels_a.reshape(len(pixels_a), -1), pixels_b.reshape(len(pixels_b), -1)
    return PooledFeatures(features_a=feats_a, positions_a=positions_a, features_b=feats_b, positions_b=positions_b,
                          settings=settings)


def dataset_otdd(
    a: ImageSet,
    b: ImageSet,
    *,
    features: str = "pixels",
    size: int = 32,
    max_samples: int = 500,
    repeats: int = 10,
    seed: int = 0,
    pool: int = 5000,
    classifier_epochs: int = 6,
    log: Log | None = None,
) -> DatasetOtdd:
    """OTDD between two labelled datasets (``medlim shift otdd``).

    At most ``pool`` random images of each dataset are read (in batches); every
    repeat subsamples ``max_samples`` of them. Features are the raw pixels at
    ``size``×``size`` (flattened, in [0, 1]) or the embedding of a ResNet-18 G
    trained on A's pool for ``classifier_epochs``. Classes are matched by name.
    """
    from medlim.curation.shift.otdd import otdd_repeated

    pooled = _pooled_features(a, b, features=features, size=size, pool=pool, seed=seed,
                              classifier_epochs=classifier_epochs, log=log)
    names = pooled.settings["classes"]
    labels_a = np.array([names.index(a.classes[p]) for p in pooled.positions_a], dtype=np.int64)
    labels_b = np.array([names.index(b.classes[p]) for p in pooled.positions_b], dtype=np.int64)
    result = otdd_repeated(pooled.features_a, labels_a, pooled.features_b, labels_b, max_samples=max_samples,
                           repeats=repeats, seed=seed)
    return DatasetOtdd(result=result, features=features, settings={**pooled.settings, "max_samples": max_samples})


def dataset_otdd_per_class(
    a: ImageSet,
    b: ImageSet,
    *,
    features: str = "pixels",
    size: int = 32,
    max_samples: int = 500,
    repeats: int = 10,
    seed: int = 0,
    pool: int = 5000,
    classifier_epochs: int = 6,
    log: Log | None = None,
) -> PerLabelOtdd:
    """Per-class OTDD for multi-label data (``medlim shift otdd --per-class``; thesis ch. 5, METHODS §5).

    For every label c (the findings of a multi-label set — manifest column
    ``labels`` — else the classes), each sample is labelled "has c" / "has not
    c" and :func:`~medlim.curation.shift.otdd.otdd_repeated` measures A against
    B with those binary labels (:func:`~medlim.curation.shift.otdd.otdd_per_class`).
    The same features and pools as :func:`dataset_otdd` (G, for embeddings, is
    trained on A's folder classes). Labels are sorted, the union of A's and B's.
    """
    from medlim.curation.shift.otdd import otdd_per_class

    pooled = _pooled_features(a, b, features=features, size=size, pool=pool, seed=seed,
                              classifier_epochs=classifier_epochs, log=log)
    names = sorted(set(a.label_names) | set(b.label_names))
    matrix_a = a.label_matrix(names)[pooled.positions_a]
    matrix_b = b.label_matrix(names)[pooled.positions_b]
    settings = {**pooled.settings, "max_samples": max_samples, "labels": names,
                "per_class": "binary labels has-c / has-not-c per label c, then OTDD as above"}
    results = otdd_per_class(pooled.features_a, matrix_a, pooled.features_b, matrix_b, class_names=names,
                             max_samples=max_samples, repeats=repeats, seed=seed)
    labels = tuple(LabelOtdd(label=name, result=results[name], positives_a=int(matrix_a[:, j].sum()),
                             positives_b=int(matrix_b[:, j].sum())) for j, name in enumerate(names))
    return PerLabelOtdd(labels=labels, features=features, settings=settings)

"""Datasets users bring: one layer every trainer, evaluator, page and ``medlim data check`` stands on.

Issue 12 ("Datasets a user brings"): :func:`open_dataset` finds a folder's
layout (``manifest.csv``, a Decathlon ``dataset.json``, class folders or a
plain folder of images) and lists its items without reading pixels;
:func:`check_dataset` reads every file once and reports a summary and one
:class:`DatasetProblem` per thing wrong; :func:`split_dataset` holds out a
seeded validation part by patient (else by image); :func:`dataset_fingerprint`
names the data by its content for the trained model's record;
:func:`drop_bad_items` is ``--skip-bad``. No training, no torch, no streamlit.
"""

from __future__ import annotations

from medlim.core.datasets.check import (
    MIN_IMAGES_PER_PART,
    MIN_PATIENTS_PER_PART,
    TRAINING_ONLY_PROBLEMS,
    DatasetCheck,
    DatasetSummary,
    DropReport,
    SizeRange,
    check_dataset,
    drop_bad_items,
    unfixable_problems,
)
from medlim.core.datasets.fingerprint import DatasetFingerprint, dataset_fingerprint
from medlim.core.datasets.layouts import LABEL_SEPARATOR, MANIFEST_NAME, MSD_NAME, open_dataset
from medlim.core.datasets.model import (
    LAYOUTS,
    PROBLEM_KINDS,
    TASK_LAYOUTS,
    TASKS,
    Dataset,
    DatasetItem,
    DatasetProblem,
)
from medlim.core.datasets.split import DEFAULT_VAL_FRACTION, DatasetSplit, split_dataset

__all__ = [
    "LAYOUTS",
    "TASKS",
    "TASK_LAYOUTS",
    "PROBLEM_KINDS",
    "MANIFEST_NAME",
    "MSD_NAME",
    "LABEL_SEPARATOR",
    "MIN_IMAGES_PER_PART",
    "MIN_PATIENTS_PER_PART",
    "TRAINING_ONLY_PROBLEMS",
    "DEFAULT_VAL_FRACTION",
    "Dataset",
    "DatasetItem",
    "DatasetProblem",
    "DatasetSplit",
    "DatasetSummary",
    "DatasetCheck",
    "DatasetFingerprint",
    "DropReport",
    "SizeRange",
    "open_dataset",
    "check_dataset",
    "split_dataset",
    "dataset_fingerprint",
    "drop_bad_items",
    "unfixable_problems",
]

"""OSCARS, its baselines and PMS trained on a user's folders, and evaluated on one (issue 12; thesis §6.1–6.2).

``medlim train oscars --data EXTERNAL --internal INTERNAL`` calls :func:`train_oscars_on_folder`:

1. the external folder (class folders or a ``file,class`` manifest) is
   checked as ``medlim data check --task oscars`` does and split (20 % by
   patient, else by image, stratified by class; or ``--val DIR``) by
   :func:`medlim.core.training.prepare_training_data`; the internal folder is
   checked the same way and must hold every external class;
2. the settings are planned from the data (:mod:`medlim.curation.retrieval.plan`);
3. as in the thesis, one CVAD per class is trained on the *internal* images
   (:func:`medlim.curation.retrieval.anomaly.fit_class_anomaly_within`, at
   most :data:`~medlim.curation.retrieval.plan.DETECTOR_SHARE` of the time
   left); the external training images are scored by their class's detector
   and binned per class (B = 5): OSCARS's intra-class labels; the validation
   images' scaled scores give S@K;
4. OSCARS and the plain triplet baseline (and the classification baseline
   with ``--methods oscars,triplet,classification``) train on the same
   external images with the same backbone and schedule, each in an equal share
   of the time left, under the harness (:func:`medlim.core.training.fit`):
   validated after every epoch by leave-one-out precision@10 on the
   validation images, the best state kept, stopped early or at an epoch
   boundary when ``--max-minutes`` is spent;
5. ``NAME`` (OSCARS), ``NAME-triplet`` and ``NAME-classification`` go to the
   user registry with the datasets' fingerprints, the split and the plan; the
   recorded command names the data by fingerprint. A method that was never
   validated stops the run before anything is registered.

``medlim train pms --data DIR`` calls :func:`train_pms_on_folder`: a
``file,labels`` manifest (labels joined by ``|``; the label set is the
manifest's labels, ``No Finding`` included as a label), the same check, split
and plan; warm-up epochs fill the memory bank, joint epochs are validated by
full-match precision@10 with the default DS
(:data:`~medlim.curation.retrieval.pms.DEFAULT_DS`).

:func:`evaluate_on_folder` is ``medlim retrieval evaluate --model NAME --data
DIR``: the thesis-protocol tables (leave-one-out over the folder, the same
:func:`~medlim.curation.retrieval.evaluate.comparison_tables` as the phantom
evaluation) from the folder's classes or label sets.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlim.core.datasets import TRAINING_ONLY_PROBLEMS
from medlim.core.familiarity import attach_input_checks
from medlim.core.training import (
    Deadline,
    FitResult,
    Progress,
    TrainingData,
    TrainingOutcome,
    ValidationScore,
    check_folder,
    fit,
    prepare_training_data,
    recorded_command,
)
from medlim.core.training_resume import claim_once, fit_resume, register_once
from medlim.curation.retrieval.evaluate import evaluate_pms, evaluate_single_label
from medlim.curation.retrieval.metrics import K_VALUES
from medlim.curation.retrieval.plan import DETECTOR_SHARE, RetrievalPlan, plan_oscars, plan_pms
from medlim.curation.retrieval.weighting import DEFAULT_DS, DS_WEIGHTINGS
from medlim.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.datasets import Dataset
    from medlim.core.weights import Registries

__all__ = ["OscarsFolderRun", "PmsFolderRun", "FolderEvaluation", "family_names", "train_oscars_on_folder",
           "train_pms_on_folder", "evaluate_on_folder"]

#: Methods trained by default on a user's folder (``--methods`` adds ``classification``).
DEFAULT_METHODS: tuple[str, ...] = ("oscars", "triplet")
#: Cut-offs of the PMS tables (thesis Table 6.2).
PMS_KS: tuple[int, ...] = (1, 5, 10, 50)
_PRESET = "ood-grey"
_UNUSED_PROBLEMS = TRAINING_ONLY_PROBLEMS


@dataclass(frozen=True)
class OscarsFolderRun:
    """What ``medlim train oscars --data E --internal I`` asked for.

    Attributes:
        data_dir: the external folder (trained on); internal_dir: the internal folder (the detectors).
        val_dir: a separate validation folder, or ``None`` (20 % of ``data_dir`` held out).
        name: registry name of OSCARS (default ``oscars-<fingerprint>``); the baselines are ``NAME-triplet``
            and ``NAME-classification``.
        version: registry version (default: the next free one).
        methods: which of ``oscars``, ``triplet``, ``classification`` to train.
        seed: split and training seed; skip_bad: leave out bad rows instead of refusing a folder.
        overrides: settings given on the command line (config fields, ``detector_epochs``).
        command_options: further ``(flag, value)`` pairs of the recorded command (no paths).
    """

    data_dir: Path
    internal_dir: Path
    val_dir: Path | None = None
    name: str | None = None
    version: str | None = None
    methods: tuple[str, ...] = DEFAULT_METHODS
    seed: int = 0
    skip_bad: bool = False
    overrides: Mapping[str, Any] = field(default_factory=dict)
    command_options: Sequence[tuple[str, Any]] = ()


@dataclass(frozen=True)
class PmsFolderRun:
    """What ``medlim train pms --data DIR`` asked for (fields as :class:`OscarsFolderRun`; default name ``pms-<fingerprint>``)."""

    data_dir: Path
    val_dir: Path | None = None
    name: str | None = None
    version: str | None = None
    seed: int = 0
    skip_bad: bool = False
    overrides: Mapping[str, Any] = field(default_factory=dict)
    command_options: Sequence[tuple[str, Any]] = ()


def family_names(name: str, methods: Sequence[str]) -> dict[str, str]:
    """Method → registry name: OSCARS is ``name``, the baselines ``name-triplet`` and ``name-classification``."""
    from medlim.curation.retrieval.train import EMBEDDING_METHODS

    unknown = [m for m in methods if m not in EMBEDDING_METHODS]
    if unknown or not methods:
        raise ParameterError(f"--methods must name some of {', '.join(EMBEDDING_METHODS)}; {list(methods)} is given.")
    return {m: name if m == "oscars" else f"{name}-{m}" for m in dict.fromkeys(methods)}


def _cutoffs(n: int, allowed: Sequence[int] = K_VALUES) -> tuple[tuple[int, ...], int]:
    """The cut-offs a leave-one-out over ``n`` images allows, and the one that picks the best state (10, or less)."""
    if n < 3:
        raise ParameterError(f"leave-one-out retrieval needs at least 3 images; {n} are given.")
    chosen = min(10, n - 1)
    return tuple(sorted({k for k in allowed if k < n} | {chosen})), chosen


# -------------------------------------------------------------------------------------------------
# reading


def _read(dataset: "Dataset", indices: Sequence[int], size: int, progress: Progress | None,
          what: str) -> tuple[np.ndarray, int]:
    """``(images [N, size, size] float32, colour count)`` of the items, read through the dataset layer."""
    from medlim.curation.ood.data import read_dataset

    if progress is not None:
        progress(f"reading {len(indices)} {what} at {size}×{size}")
    read = read_dataset(dataset, list(indices), size=size)
    return read.images.images, read.colour


def _as_known(name: str, known: Sequence[str]) -> str:
    """``name`` as the model spells it when exactly one known class or label is it in other capitals or spacing
    (or, for a class, names it as ``medlim ood`` matches folders: ``XR_HUMERUS`` for ``humerus``); else unchanged."""
    if name in known:
        return name
    from medlim.curation.ood.labels import folder_matches

    folded = " ".join(name.casefold().split())
    found = [k for k in known if " ".join(k.casefold().split()) == folded]
    if not found:
        found = [k for k in known if folder_matches(name, k)]
    return found[0] if len(found) == 1 else name


def _class_indices(dataset: "Dataset", indices: Sequence[int], classes: Sequence[str], what: str) -> np.ndarray:
    names = [_as_known(dataset.items[i].label or "", classes) for i in indices]
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise ParameterError(f"the {what} has classes the training folder does not: {', '.join(unknown)}; "
                             f"its classes: {', '.join(classes)}.")
    return np.array([list(classes).index(name) for name in names], dtype=np.int64)


def _label_matrix(dataset: "Dataset", indices: Sequence[int], label_set: Sequence[str], what: str) -> np.ndarray:
    rows = [tuple(_as_known(label, label_set) for label in dataset.items[i].labels) for i in indices]
    unknown = sorted({label for row in rows for label in row} - set(label_set))
    if unknown:
        raise ParameterError(f"the {what} has labels the model does not know: {', '.join(unknown)}; known: "
                             f"{', '.join(label_set)}.")
    return np.array([[1 if label in row else 0 for label in label_set] for row in rows], dtype=np.uint8)


def _internal(run: OscarsFolderRun, classes: Sequence[str], progress: Progress | None) -> tuple["Dataset", str]:
    """The checked internal folder (every external class must be in it) and its fingerprint id."""
    from medlim.core.datasets import dataset_fingerprint

    dataset, check, _ = check_folder(run.internal_dir, task="oscars", what="internal folder", seed=run.seed,
                                     skip_bad=run.skip_bad, ignore=_UNUSED_PROBLEMS, progress=progress)
    fingerprint = dataset_fingerprint(dataset, check=check).id
    dataset = _named_as_external(dataset, classes)
    missing = [c for c in classes if c not in dataset.classes]
    if missing:
        raise ParameterError(f"the internal folder (--internal) has no class {', '.join(missing)}; OSCARS bins each "
                             "external class by a detector trained on that class's internal images.")
    return dataset, fingerprint


def _named_as_external(dataset: "Dataset", classes: Sequence[str]) -> "Dataset":
    """The internal folder with each class renamed to the external class it names in other words.

    Two sites rarely spell their folders alike (``XR_HUMERUS`` and ``Humerus``): an external class missing
    from the internal folder takes the one internal class that names it the way ``medlim ood`` matches
    folders (:func:`medlim.curation.ood.labels.folder_matches`: case, spacing, ``XR_`` and plurals aside).
    """
    import dataclasses

    from medlim.curation.ood.labels import folder_matches

    renamed: dict[str, str] = {}
    for wanted in classes:
        if wanted in dataset.classes:
            continue
        found = [name for name in dataset.classes if name not in classes and folder_matches(name, wanted)]
        if len(found) == 1 and found[0] not in renamed:
            renamed[found[0]] = wanted
    if not renamed:
        return dataset
    items = tuple(dataclasses.replace(item, label=renamed.get(item.label, item.label)) if item.label else item
                  for item in dataset.items)
    return dataclasses.replace(dataset, items=items, classes=tuple(sorted(renamed.get(c, c) for c in dataset.classes)))


def _median_size(data: TrainingData) -> tuple[int | None, int | None]:
    summary = data.check.summary
    return (summary.height.median if summary.height else None, summary.width.median if summary.width else None)


# -------------------------------------------------------------------------------------------------
# OSCARS family


@dataclass(frozen=True)
class _SingleData:
    """External training and validation images of a run, with what OSCARS needs of them."""

    train: np.ndarray
    train_classes: np.ndarray
    bins: np.ndarray
    val: np.ndarray
    val_classes: np.ndarray
    val_anomaly: np.ndarray
    classes: tuple[str, ...]


def _input_size(run_overrides: Mapping[str, Any], data: TrainingData, *, task: str) -> int:
    """The side images are read at: ``--input-size``, else the plan's for ``task`` (``"oscars"`` or ``"pms"``).

    It must be the side :func:`~medlim.curation.retrieval.plan.plan_oscars` / ``plan_pms`` record, since the
    networks and the OSCARS detectors are built at the plan's side.
    """
    from medlim.curation.retrieval.plan import MAX_INPUT_SIZE, OSCARS_MAX_INPUT_SIZE, plan_input_size

    cap = OSCARS_MAX_INPUT_SIZE if task == "oscars" else MAX_INPUT_SIZE
    return int(run_overrides.get("input_size") or plan_input_size(*_median_size(data), cap=cap)[0])


def _oscars_data(run: OscarsFolderRun, data: TrainingData, internal: "Dataset", *, deadline: Deadline,
                 progress: Progress | None, command: str = "") -> tuple[_SingleData, RetrievalPlan]:
    """Read the images, plan the run, train the detectors on the internal images and bin the external ones.

    Inside a job the detectors are saved after every epoch and resumed; ``command`` (the recorded command)
    and the plan identify the run."""
    from medlim.curation.retrieval.anomaly import N_BINS, anomaly_bins, fit_class_anomaly_within

    classes = data.dataset.classes
    size = _input_size(run.overrides, data, task="oscars")
    train, colour = _read(data.dataset, data.train, size, progress, "external training images")
    val, _ = _read(data.val_dataset, data.val, size, progress, "validation images")
    train_classes = _class_indices(data.dataset, data.train, classes, "training folder")
    val_classes = _class_indices(data.val_dataset, data.val, classes, "validation folder")
    internal_items = [i for i, item in enumerate(internal.items) if item.label in classes]
    planned = plan_oscars(
        median_height=_median_size(data)[0], median_width=_median_size(data)[1], n_train=len(train),
        class_counts={c: int((train_classes == k).sum()) for k, c in enumerate(classes)},
        internal_counts={c: sum(1 for i in internal_items if internal.items[i].label == c) for c in classes},
        colour=colour, images=len(train), seed=run.seed, overrides=run.overrides)
    internal_images, _ = _read(internal, internal_items, size, progress, "internal images")
    internal_names = [internal.items[i].label or "" for i in internal_items]
    if progress is not None:
        progress(f"anomaly detectors: one CVAD per class on {len(internal_items)} internal images"
                 + (f" (at most {DETECTOR_SHARE:.0%} of the time left)" if deadline.limited else ""))
    anomaly = fit_class_anomaly_within(internal_images, internal_names, planned.detector,
                                       deadline=deadline.share(DETECTOR_SHARE), budget=deadline,
                                       progress=progress, key=(command, planned.plan.to_json()))
    train_names = [classes[k] for k in train_classes]
    val_names = [classes[k] for k in val_classes]
    bins = anomaly_bins(anomaly.score(train, train_names), train_names, n_bins=N_BINS, seed=run.seed)
    val_anomaly = anomaly.scaled(anomaly.score(val, val_names), val_names)
    single = _SingleData(train=train, train_classes=train_classes, bins=bins, val=val, val_classes=val_classes,
                         val_anomaly=val_anomaly, classes=tuple(classes))
    return single, planned


def _single_validator(model: Any, single: _SingleData):  # -> Callable[[], ValidationScore]
    """Leave-one-out precision@10 over the validation images (ties: lower S@10)."""
    from medlim.curation.retrieval.train import embed

    ks, chosen = _cutoffs(len(single.val))

    def validate() -> ValidationScore:
        metrics = evaluate_single_label(embed(model, single.val), single.val_classes, single.val_anomaly, ks=ks)
        sensitivity = metrics[f"sensitivity@{chosen}"]
        return ValidationScore(score=metrics[f"precision@{chosen}"], metric=f"precision@{chosen}",
                               tiebreak=-sensitivity if np.isfinite(sensitivity) else 0.0,
                               metrics={**metrics, "n_validation": len(single.val)})

    return validate


def _fit_method(method: str, single: _SingleData, planned: RetrievalPlan, *, deadline: Deadline,
                progress: Progress | None, key: Sequence[Any] = ()) -> tuple[Any, FitResult]:
    """Train one method under the harness; the best state is loaded back (inside a job: saved every epoch,
    resumed; ``key`` identifies the run, the anomaly bins included)."""
    from medlim.curation.retrieval.train import EmbeddingTrainer

    trainer = EmbeddingTrainer(single.train, single.train_classes, method=method, config=planned.config,
                               bins=single.bins if method == "oscars" else None, n_classes=len(single.classes))
    trainer.budget = deadline if deadline.limited else None
    bins = hashlib.sha256(np.ascontiguousarray(single.bins).tobytes()).hexdigest()
    resume = fit_resume(method, (*key, bins), trainer.resume_parts, apply=trainer.resume_apply)
    result = fit(lambda _epoch: trainer.train_epoch(), epochs=planned.config.epochs,
                 validate=_single_validator(trainer.model, single),
                 snapshot=lambda: copy.deepcopy(trainer.model.state_dict()), deadline=deadline,
                 patience=planned.patience, label=method, progress=progress, resume=resume)
    trainer.model.load_state_dict(result.state)
    return trainer.model.eval(), result


def _slug(text: str) -> str:
    from medlim.core.weights.entry import name_part

    return name_part(text) or "user"


def _entry_fields(name: str, version: str | None, *, task: str, architecture: str, kwargs: Mapping[str, Any],
                  planned: RetrievalPlan, params: Mapping[str, Any], metrics: Mapping[str, Any], command: str,
                  data_record: Mapping[str, Any], description: str, seed: int) -> dict[str, Any]:
    """The manifest fields of one model trained on a user's folder."""
    config = planned.config
    return {
        "name": name, "version": version, "task": task, "architecture": architecture,
        "architecture_kwargs": dict(kwargs), "preset": _PRESET,
        "input_contract": {"channels": 1, "size": [config.input_size, config.input_size], "dtype": "float32",
                           "range": [0.0, 1.0]},
        "output_type": "raw", "params": {"input_size": config.input_size, "training": config.to_dict(), **params},
        "metrics": dict(metrics), "provenance": {"command": command, "seed": seed,
                                                 "source": f"user dataset {data_record['fingerprint']['id']}"},
        "intended_use": "Research use only, not for diagnosis; trained on a user's dataset",
        "description": description, "data": dict(data_record), "plan": planned.plan.to_json(),
    }


def _method_params(method: str, classes: Sequence[str]) -> dict[str, Any]:
    from medlim.curation.retrieval.anomaly import N_BINS
    from medlim.curation.retrieval.oscars import LAMBDA, MARGIN_INTER, MARGIN_INTRA, TRIPLET_MARGIN

    loss: dict[str, Any] = ({"lambda": LAMBDA, "margin_intra": MARGIN_INTRA, "margin_inter": MARGIN_INTER}
                            if method == "oscars" else {"triplet_margin": TRIPLET_MARGIN} if method == "triplet"
                            else {"loss": "cross-entropy"})
    return {"method": method, "classes": list(classes), "similarity": "cosine", "anomaly_bins": N_BINS, "loss": loss}


def _register_family(run: OscarsFolderRun, fitted: Mapping[str, tuple[Any, FitResult]], names: Mapping[str, str],
                     single: _SingleData, planned: RetrievalPlan, data: TrainingData, internal_id: str, *,
                     registries: "Registries", allow_shipped_folder: bool,
                     progress: Progress | None) -> TrainingOutcome:
    options = [*data.command_options(), ("--internal", internal_id), *run.command_options]
    command = recorded_command("medlim train oscars", options)
    record = {**data.record(), "internal_fingerprint": internal_id}
    titles = {"oscars": "OSCARS outlier-sensitive", "triplet": "plain-triplet baseline",
              "classification": "classification-embedding baseline"}
    registered, validation = [], {}
    for method, (model, result) in fitted.items():
        metrics = {"validation": result.to_json(), "n_train": len(single.train), "n_validation": len(single.val)}
        fields_ = _entry_fields(
            names[method], run.version, task="image-retrieval", architecture="retrieval-resnet18",
            kwargs={"channels": 1, "width": planned.config.width,
                    "n_classes": len(single.classes) if method == "classification" else 0},
            planned=planned, params=_method_params(method, single.classes), metrics=metrics, command=command,
            data_record=record, seed=run.seed,
            description=f"{titles[method]} image retrieval (thesis §6.1), trained on the user dataset "
                        f"{data.fingerprint.id} with anomaly bins from detectors on {internal_id}")
        entry = register_once(registries, fields_, model.state_dict(), allow_shipped_folder=allow_shipped_folder)
        registered.append(entry)
        validation[entry.name] = result.to_json()
        if progress is not None:
            progress(f"registered {entry.label} in {registries.directory}")
    # issue 12/13: each model's "unlike my training data" check, on the training images as the network reads them
    entries, familiarity = attach_input_checks(registered, single.train, single.val, dataset=data.fingerprint.id,
                                               progress=progress)
    extra = {"data": {"fingerprint": data.fingerprint.id, "internal_fingerprint": internal_id,
                      "split": dict(data.split)}, "plan": planned.plan.to_json()["settings"],
             "familiarity": familiarity}
    return TrainingOutcome(registered=entries, validation=validation, extra=extra)


def train_oscars_on_folder(run: OscarsFolderRun, *, registries: "Registries", deadline: Deadline,
                           progress: Progress | None = None, allow_shipped_folder: bool = False) -> TrainingOutcome:
    """Check, split, plan, train the detectors, bin, train OSCARS and its baselines, validate and register.

    Args:
        run: what the command asked for.
        registries: where names are looked up and the models written (its user registry).
        deadline: the command's ``--max-minutes`` budget, started when the command started.
        progress: callback for progress lines (the CLI writes them to stderr).
        allow_shipped_folder: see :meth:`medlim.core.weights.Registries.register`.

    Returns:
        The registered entries (OSCARS first) and each one's best validation.

    Raises:
        DatasetProblemsError: a folder has problems (and ``skip_bad`` is off or cannot fix them).
        NotValidatedError: a method was never validated within the budget; nothing is registered.
        WeightsError: a name and version are taken.
    """
    data = prepare_training_data(run.data_dir, "oscars", val_dir=run.val_dir, skip_bad=run.skip_bad, seed=run.seed,
                                 progress=progress)
    names = family_names(run.name or f"oscars-{_slug(data.fingerprint.id)}", run.methods)
    for model_name in names.values():
        claim_once(registries, model_name, run.version)  # fail before training, not after
    internal, internal_id = _internal(run, data.dataset.classes, progress)
    command = recorded_command("medlim train oscars", [*data.command_options(), ("--internal", internal_id),
                                                        *run.command_options])
    single, planned = _oscars_data(run, data, internal, deadline=deadline, progress=progress, command=command)
    key = (command, planned.plan.to_json())
    fitted: dict[str, tuple[Any, FitResult]] = {}
    methods = list(names)
    for done, method in enumerate(methods):
        share = deadline.share(1.0 / (len(methods) - done))  # the same time for every method of the family
        fitted[method] = _fit_method(method, single, planned, deadline=share, progress=progress, key=key)
    return _register_family(run, fitted, names, single, planned, data, internal_id, registries=registries,
                            allow_shipped_folder=allow_shipped_folder, progress=progress)


# -------------------------------------------------------------------------------------------------
# PMS


def _pms_validator(model: Any, images: np.ndarray, labels: np.ndarray, label_set: Sequence[str]):
    """Leave-one-out full-match precision@10 with the default DS (ties: partial-match precision@10)."""
    from medlim.curation.retrieval.train import pms_outputs

    ks, chosen = _cutoffs(len(images), PMS_KS)

    def validate() -> ValidationScore:
        similarity, probability = pms_outputs(model, images)
        metrics = evaluate_pms(similarity, probability, labels, ds=DEFAULT_DS, names=label_set, ks=ks)
        return ValidationScore(score=metrics[f"full_precision@{chosen}"], metric=f"full_precision@{chosen}",
                               tiebreak=metrics[f"partial_precision@{chosen}"],
                               metrics={**metrics, "ds": DEFAULT_DS, "n_validation": len(images)})

    return validate


def _weightings(model: Any, images: np.ndarray, labels: np.ndarray, label_set: Sequence[str]) -> dict[str, Any]:
    """Validation precision@K of the best state under every DS weighting (recorded beside the fit)."""
    from medlim.curation.retrieval.train import pms_outputs

    ks, _ = _cutoffs(len(images), PMS_KS)
    similarity, probability = pms_outputs(model, images)
    out = {}
    for ds in DS_WEIGHTINGS:
        metrics = evaluate_pms(similarity, probability, labels, ds=ds, names=label_set, ks=ks)
        out[ds] = {key: value for key, value in metrics.items() if "precision@" in key}
    return out


def _pms_data(run: PmsFolderRun, data: TrainingData, progress: Progress | None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], RetrievalPlan]:
    label_set = tuple(data.dataset.label_set)
    if len(label_set) < 2:
        raise ParameterError(f"PMS needs at least 2 labels in the manifest's labels column; {list(label_set)} is "
                             "given.")
    size = _input_size(run.overrides, data, task="pms")
    train, colour = _read(data.dataset, data.train, size, progress, "training images")
    val, _ = _read(data.val_dataset, data.val, size, progress, "validation images")
    train_labels = _label_matrix(data.dataset, data.train, label_set, "training folder")
    val_labels = _label_matrix(data.val_dataset, data.val, label_set, "validation folder")
    height, width = _median_size(data)
    planned = plan_pms(median_height=height, median_width=width, n_train=len(train),
                       label_counts={label: int(train_labels[:, k].sum()) for k, label in enumerate(label_set)},
                       colour=colour, images=len(train), seed=run.seed, overrides=run.overrides)
    return train, train_labels, val, val_labels, label_set, planned


def train_pms_on_folder(run: PmsFolderRun, *, registries: "Registries", deadline: Deadline,
                        progress: Progress | None = None, allow_shipped_folder: bool = False) -> TrainingOutcome:
    """Check, split, plan, train, validate and register PMS from a multi-label manifest (arguments as
    :func:`train_oscars_on_folder`).

    Raises:
        DatasetProblemsError: the folder has problems; NotValidatedError: no joint epoch was
        validated within the budget (nothing registered); WeightsError: the name and version are taken.
    """
    from medlim.curation.retrieval.train import PmsTrainer

    data = prepare_training_data(run.data_dir, "pms", val_dir=run.val_dir, skip_bad=run.skip_bad, seed=run.seed,
                                 progress=progress)
    name = run.name or f"pms-{_slug(data.fingerprint.id)}"
    claim_once(registries, name, run.version)  # fail before training, not after
    train, train_labels, val, val_labels, label_set, planned = _pms_data(run, data, progress)
    trainer = PmsTrainer(train, train_labels, config=planned.config)
    command = recorded_command("medlim train pms", [*data.command_options(), *run.command_options])
    resume = fit_resume("pms", (command, planned.plan.to_json()), trainer.resume_parts, apply=trainer.resume_apply)
    result = fit(lambda _epoch: trainer.train_epoch(), epochs=trainer.total_epochs,
                 validate=_pms_validator(trainer.model, val, val_labels, label_set),
                 snapshot=lambda: copy.deepcopy(trainer.model.state_dict()), deadline=deadline,
                 patience=planned.patience, first_validation=planned.config.warmup_epochs + 1, label="pms",
                 progress=progress, resume=resume)
    trainer.model.load_state_dict(result.state)
    model = trainer.model.eval()
    config = planned.config
    metrics = {"validation": result.to_json(), "validation_ds": _weightings(model, val, val_labels, label_set),
               "n_train": len(train), "n_validation": len(val)}
    fields_ = _entry_fields(
        name, run.version, task="multilabel-retrieval", architecture="pms-resnet18",
        kwargs={"channels": 1, "width": config.width, "n_classes": len(label_set), "branch_dim": config.branch_dim},
        planned=planned, metrics=metrics, command=command, data_record=data.record(), seed=run.seed,
        params={"method": "pms", "classes": list(label_set), "bank_size": config.bank_size,
                "lambda": config.pms_weight, "tau": train_labels.mean(axis=0).round(4).tolist(), "ds": DEFAULT_DS},
        description=f"PMS multi-label retrieval (thesis §6.2), trained on the user dataset {data.fingerprint.id}")
    entry = register_once(registries, fields_, model.state_dict(), allow_shipped_folder=allow_shipped_folder)
    if progress is not None:
        progress(f"registered {entry.label} in {registries.directory}")
    entries, familiarity = attach_input_checks([entry], train, val, dataset=data.fingerprint.id, progress=progress)
    extra = {"data": {"fingerprint": data.fingerprint.id, "split": dict(data.split)},
             "plan": planned.plan.to_json()["settings"], "validation_ds": {entry.name: metrics["validation_ds"]},
             "familiarity": familiarity}
    return TrainingOutcome(registered=entries, validation={entry.name: result.to_json()}, extra=extra)


# -------------------------------------------------------------------------------------------------
# evaluation on a folder


@dataclass(frozen=True)
class FolderEvaluation:
    """``medlim retrieval evaluate --model NAME --data DIR``: the tables and what they were computed on.

    Attributes:
        tables: :class:`~medlim.curation.retrieval.evaluate.RetrievalTable` s, in print order.
        models: the models' labels (``name@version``).
        fingerprint: the folder's fingerprint id.
        n: images evaluated (each queries all the others).
        metrics: model label → metrics (PMS: DS weighting → metrics).
    """

    tables: tuple[Any, ...]
    models: tuple[str, ...]
    fingerprint: str
    n: int
    metrics: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        from medlim.core.weights.entry import json_safe

        return json_safe({"models": list(self.models), "data": {"fingerprint": self.fingerprint, "n": self.n},
                          "tables": [{"title": t.title, "rows": t.records(), "notes": list(t.notes)}
                                     for t in self.tables],
                          "metrics": dict(self.metrics)})


def _models(specs: Sequence[str], registry: Any) -> list[Any]:
    from medlim.core.weights.registries import parse_model_spec
    from medlim.curation.retrieval.service import load_retrieval_model

    if not specs:
        raise ParameterError("name at least one model to evaluate (--model NAME).")
    models = []
    for text in specs:
        spec = parse_model_spec(text)
        models.append(load_retrieval_model(spec.name, version=spec.version, registry=registry))
    kinds = {m.kind for m in models}
    if len(kinds) > 1:
        raise ParameterError("evaluate embedding models (OSCARS and its baselines) and PMS models separately: "
                             "their folders differ (classes against label sets).")
    return models


def _embedding_tables(models: Sequence[Any], dataset: "Dataset", anomaly: np.ndarray, source: str,
                      registry: Any) -> tuple[list[Any], dict[str, Any]]:
    from medlim.curation.retrieval.evaluate import METHOD_TITLES, comparison_tables

    classes = dataset.classes
    indices = list(range(len(dataset)))
    labels = _class_indices(dataset, indices, classes, "evaluation folder")
    ks, _ = _cutoffs(len(indices))
    single: dict[str, dict[str, Any]] = {}
    titles: dict[str, str] = {}
    metrics: dict[str, Any] = {}
    for model in models:
        method = str(registry.get(model.name, model.version).params.get("method", "oscars"))
        if method in single:
            raise ParameterError(f"two models with the method {method!r}; evaluate one per method at a time.")
        images, _ = _read(dataset, indices, model.input_size, None, "images")
        vectors, _ = model.encode(images)
        single[method] = {**evaluate_single_label(vectors, labels, anomaly, ks=ks), "n": len(indices)}
        titles[method] = f"{METHOD_TITLES[method]} ({model.label})"
        metrics[model.label] = single[method]
    return comparison_tables(single, {}, source=source, row_titles=titles), metrics


def _pms_tables(model: Any, dataset: "Dataset", weightings: Sequence[str], source: str) -> tuple[list[Any], dict]:
    from medlim.curation.retrieval.evaluate import comparison_tables
    from medlim.curation.retrieval.recipe import PMS_TABLE_DS

    indices = list(range(len(dataset)))
    labels = _label_matrix(dataset, indices, model.classes, "evaluation folder")
    ks, _ = _cutoffs(len(indices), PMS_KS)
    images, _ = _read(dataset, indices, model.input_size, None, "images")
    similarity, probability = model.encode(images)
    rows = {row: evaluate_pms(similarity, probability, labels, ds=ds, names=model.classes, ks=ks)
            for row, ds in PMS_TABLE_DS.items() if ds in weightings}
    tables = comparison_tables({}, {**rows, "n": len(indices)}, classes=model.classes, source=source)
    return tables, {PMS_TABLE_DS[row]: values for row, values in rows.items()}


def evaluate_on_folder(specs: Sequence[str], data_dir: str | Path, *, weightings: Sequence[str] = DS_WEIGHTINGS,
                       registry: Any = None, skip_bad: bool = False,
                       progress: Progress | None = None) -> FolderEvaluation:
    """The thesis-protocol tables of registered retrieval models on a labelled folder (leave-one-out).

    Embedding models (OSCARS and its baselines) take class folders or a ``file,class`` manifest: relevance is
    the same class; S@K needs an ``anomaly_score`` column on every row (else it is NaN). A PMS model takes a
    ``file,labels`` manifest whose labels are among the model's: full and partial match, one row per DS
    weighting in ``weightings``, plus the per-class AUC.

    Args:
        specs: models as ``NAME``, ``NAME:VERSION`` or ``NAME@VERSION`` (one per method, or one PMS model).
        data_dir: the labelled folder.
        weightings: PMS: the DS weightings to report.
        registry: the registries (default: shipped and user, from the settings).
        skip_bad: leave out bad rows instead of refusing the folder.
        progress: callback for progress lines.
    """
    from medlim.core.datasets import dataset_fingerprint
    from medlim.core.weights import Registries
    from medlim.curation.retrieval.weighting import resolve_ds

    weightings = tuple(resolve_ds(ds) for ds in weightings)
    registry = registry if registry is not None else Registries.load()
    models = _models(specs, registry)
    pms = models[0].kind == "pms"
    if pms and len(models) > 1:
        raise ParameterError("evaluate one PMS model at a time.")
    dataset, check, _ = check_folder(data_dir, task="pms" if pms else "oscars", what="evaluation folder",
                                     skip_bad=skip_bad, ignore=_UNUSED_PROBLEMS, progress=progress)
    fingerprint = dataset_fingerprint(dataset, check=check).id
    source = f"Your data {fingerprint}"
    if pms:
        tables, metrics = _pms_tables(models[0], dataset, weightings, source)
        metrics = {models[0].label: metrics}
    else:
        from medlim.curation.retrieval.service import manifest_anomaly_scores

        scores = manifest_anomaly_scores(dataset)
        anomaly = np.array([np.nan if s is None else s for s in scores], dtype=np.float64)
        tables, metrics = _embedding_tables(models, dataset, anomaly, source, registry)
    return FolderEvaluation(tables=tuple(tables), models=tuple(m.label for m in models), fingerprint=fingerprint,
                            n=len(dataset), metrics=metrics)

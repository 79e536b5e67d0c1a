"""TEND, CVAD and the AE baseline trained and evaluated on a user's folder (issue 12; thesis §4.1–4.2).

``medlim train tend|cvad --data DIR --id-class C`` call :func:`train_on_folder`:

1. the folder is checked as ``medlim data check --task ood`` does and split
   (20 % by patient, else by image, stratified by class; or ``--val DIR``) by
   :func:`medlim.core.training.prepare_training_data`;
2. the ID class's training images train the detector; its validation images
   and OOD examples validate it. OOD examples are the other classes of the
   folder (never trained on), else one generated distortion of each ID
   validation image (:func:`medlim.curation.ood.distortions.distort`, all nine
   kinds) — the thesis's internal validation;
3. the settings are planned from the data (:mod:`medlim.curation.ood.plan`);
4. each stage runs under the harness (:func:`medlim.core.training.fit`):
   validated after every epoch (AUROC, the G-mean threshold and CVAD's
   reference range calibrated on the validation set each time), the best
   state kept, stopped early or at an epoch boundary when ``--max-minutes``
   is spent. TEND trains its autoencoder first (the AE baseline, registered
   too); CVAD its generator (validated by reconstruction error) then its
   discriminator;
5. unless ``--stats off``, each detector gets its acquisition statistics
   (:mod:`medlim.curation.ood.acquisition`; a stated deviation): fitted on the ID
   training images at 256 px, calibrated on the validation set (read again at
   256 px), stored in its manifest entry — it then scores fused by default;
6. with ``--heldout DIR`` the detector is evaluated on it with the thesis's
   protocol (:func:`medlim.curation.ood.evaluate.evaluate_detector`), as it
   scores by default (fused when it has the statistics);
7. the models go to the user registry (:class:`medlim.core.weights.Registries`)
   with the dataset's fingerprint, the split and the plan; the recorded
   command names the data by fingerprint.

:func:`evaluation_data` reads a folder for ``medlim ood evaluate --data``:
items with a ``shift_type`` are kept apart and reported per shift type.
"""

from __future__ import annotations

import copy
import dataclasses
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
from medlim.core.training_resume import FitResume, claim_once, fit_resume, register_once
from medlim.curation.ood.calibration import ood_metrics
from medlim.curation.ood.data import PRESET, LabelledImages, read_dataset
from medlim.curation.ood.distortions import EXTRA_DISTORTIONS, TRAIN_DISTORTIONS, distort
from medlim.curation.ood.evaluate import OodEvaluation, evaluate_detector
from medlim.curation.ood.plan import DetectorPlan, plan_detector, plan_input_size
from medlim.curation.ood.recipe import calibrate
from medlim.curation.ood.scoring import ARCHITECTURE_OF, Detector, combine_parts
from medlim.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from medlim.core.datasets import Dataset
    from medlim.core.weights import Registries

__all__ = ["FolderRun", "ValidationSet", "EvaluationData", "resolve_id_classes", "validation_set",
           "train_on_folder", "evaluation_data"]

#: Class name given to generated OOD examples.
DISTORTED = "<distorted>"
#: Most images of other classes read as OOD examples for validation (a seeded sample beyond).
MAX_NEGATIVES = 2000
_NO_SHIFT = ("", "none", "None", "no_shift")


@dataclass(frozen=True)
class FolderRun:
    """What ``medlim train tend|cvad --data DIR`` asked for.

    Attributes:
        kind: ``"tend"`` or ``"cvad"``.
        data_dir: the training folder.
        id_classes: ``"C"``, ``"A,B"`` or ``"!C"`` (every class of the folder but C).
        val_dir: a separate validation folder, or ``None`` (20 % held out).
        heldout_dir: a held-out folder evaluated after training, or ``None``.
        name: registry name (default ``<kind>-<classes>``; the AE baseline is
            ``<name>-ae``, by default ``ae-<classes>``).
        version: registry version (default: the next free one).
        seed: split and training seed.
        skip_bad: leave out bad rows instead of refusing the dataset.
        stats: fit and store the acquisition statistics beside each detector (``--stats on``, the default).
        overrides: :class:`~medlim.curation.ood.train.OodTrainingConfig` fields given on the command line.
        command_options: further ``(flag, value)`` pairs of the recorded command (no paths).
    """

    kind: str
    data_dir: Path
    id_classes: str
    val_dir: Path | None = None
    heldout_dir: Path | None = None
    name: str | None = None
    version: str | None = None
    seed: int = 0
    skip_bad: bool = False
    stats: bool = True
    overrides: Mapping[str, Any] = field(default_factory=dict)
    command_options: Sequence[tuple[str, Any]] = ()


@dataclass(frozen=True)
class ValidationSet:
    """The validation images of a run.

    Attributes:
        images: ID validation images and OOD examples.
        labels: ``np.ndarray[N]`` int, 1 = OOD.
        negatives: where the OOD examples come from (one line).
    """

    images: LabelledImages
    labels: np.ndarray
    negatives: str


def resolve_id_classes(text: str, classes: Sequence[str]) -> tuple[str, ...]:
    """``--id-class`` against the folder's classes: ``"C"``, ``"A,B"`` or ``"!C"`` (all but C).

    Raises:
        ParameterError: no class named, or a class the folder does not have.
    """
    known = tuple(classes)
    text = (text or "").strip()
    if text.startswith("!"):
        excluded = _known_name(text[1:].strip(), known)
        if excluded not in known:
            raise ParameterError(f"--id-class {text!r}: {excluded!r} is not a class of the folder "
                                 f"({', '.join(known) or 'none'}).")
        chosen = tuple(c for c in known if c != excluded)
    else:
        chosen = tuple(c.strip() for c in text.split(",") if c.strip())
    if not chosen:
        raise ParameterError(f"--id-class must name at least one class of the folder; {text!r} is given.")
    chosen = tuple(_known_name(c, known) for c in chosen)
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise ParameterError(f"--id-class names {unknown}, which the folder does not have; its classes: "
                             f"{', '.join(known) or 'none (give class folders or a manifest with a class column)'}.")
    return chosen


def _known_name(name: str, known: Sequence[str]) -> str:
    """``name`` as the folder spells it, when exactly one class names it in other words (``humerus`` for
    ``XR_HUMERUS`` or ``Humerus``, as ``medlim ood evaluate`` matches folders); else ``name`` unchanged."""
    if name in known:
        return name
    from medlim.curation.ood.labels import folder_matches

    found = [class_name for class_name in known if folder_matches(class_name, name)]
    return found[0] if len(found) == 1 else name


def _slug(classes: Sequence[str]) -> str:
    """A registry-safe name part for the ID classes (``"hand"``, ``"hand-wrist"``, ``"3classes"``)."""
    if len(classes) > 2:
        return f"{len(classes)}classes"
    from medlim.core.weights.entry import name_part

    return name_part("-".join(classes)) or "user"


def _one_class_if_plain(data: TrainingData, id_classes: str) -> TrainingData:
    """A plain folder of images (no classes) as the one class ``--id-class`` names: "these are my hand images".

    Its OOD examples for validation are then generated distortions (:func:`validation_set`). A plain ``--val``
    folder is read the same way. Folders with classes are returned unchanged.

    Raises:
        ParameterError: ``--id-class`` names several classes, or all but one, for a folder without classes.
    """
    name = id_classes.strip()
    plain = [dataset.layout == "unlabelled" for dataset in (data.dataset, data.val_dataset)]
    if not any(plain):
        return data
    if not name or name.startswith("!") or "," in name:
        raise ParameterError(f"--id-class {id_classes!r}: a folder without classes (a plain folder of images) is "
                             "one class; name it once (e.g. --id-class hand), or sort the images into class folders.")

    def labelled(dataset: "Dataset") -> "Dataset":
        if dataset.layout != "unlabelled":
            return dataset
        items = tuple(dataclasses.replace(item, label=name) for item in dataset.items)
        return dataclasses.replace(dataset, items=items, classes=(name,))

    dataset = labelled(data.dataset)
    val_dataset = dataset if data.val_dataset is data.dataset else labelled(data.val_dataset)
    return dataclasses.replace(data, dataset=dataset, val_dataset=val_dataset)


def _negative_items(data: TrainingData, wanted: set[str], seed: int) -> tuple["Dataset", list[int], int]:
    """Where OOD examples come from: ``(dataset, items, how many there were)``, at most :data:`MAX_NEGATIVES`.

    With a split of one folder, every image of another class (none is trained
    on); with ``--val DIR``, that folder's other classes, else the training folder's.
    """
    def others(dataset: "Dataset", candidates: Sequence[int]) -> list[int]:
        return [i for i in candidates if dataset.items[i].label not in wanted]

    if data.val_dataset is data.dataset:
        dataset, items = data.dataset, others(data.dataset, range(len(data.dataset)))
    else:
        dataset, items = data.val_dataset, others(data.val_dataset, data.val)
        if not items:
            dataset, items = data.dataset, others(data.dataset, range(len(data.dataset)))
    if len(items) > MAX_NEGATIVES:  # a seeded sample keeps memory and validation time bounded
        chosen = np.random.default_rng(seed + 11).choice(len(items), MAX_NEGATIVES, replace=False)
        return dataset, sorted(items[int(k)] for k in chosen), len(items)
    return dataset, items, len(items)


def validation_set(
    data: TrainingData, id_classes: Sequence[str], *, size: int, seed: int, progress: Progress | None = None
) -> ValidationSet:
    """ID validation images plus OOD examples: the folder's other classes, else generated distortions.

    See :func:`_negative_items` for which images of other classes are used; with
    none, one distortion (all nine kinds) of each ID validation image is.
    """
    wanted = set(id_classes)
    id_items = [i for i in data.val if data.val_dataset.items[i].label in wanted]
    if not id_items:
        raise ParameterError(f"the validation part holds no image of the ID class(es) {', '.join(id_classes)}; "
                             "add images of them, or give a validation folder that holds some (--val DIR).")
    identified = read_dataset(data.val_dataset, id_items, size=size).images
    dataset, negative_items, available = _negative_items(data, wanted, seed)
    if negative_items:
        negatives = read_dataset(dataset, negative_items, size=size).images
        sample = f", a seeded sample of {available}" if available > len(negative_items) else ""
        where = (f"{len(negatives)} images of the other classes ({', '.join(sorted(set(negatives.classes)))}"
                 f"{sample})")
    else:
        rng = np.random.default_rng(seed + 7)
        kinds = tuple(TRAIN_DISTORTIONS) + tuple(EXTRA_DISTORTIONS)
        fakes = np.stack([np.clip(distort(image, rng, kinds=kinds), 0.0, 1.0) for image in identified.images])
        negatives = LabelledImages(fakes.astype(np.float32), (DISTORTED,) * len(fakes), identified.sites,
                                   tuple(f"{name} (distorted)" for name in identified.files))
        where = f"{len(negatives)} generated distortions of the ID validation images (no other class in the data)"
    if progress is not None:
        progress(f"validation: {len(identified)} ID images vs {where}")
    images = LabelledImages.concatenate([identified, negatives], size)
    labels = np.r_[np.zeros(len(identified), int), np.ones(len(negatives), int)]
    return ValidationSet(images=images, labels=labels, negatives=where)


def _separation(scores: np.ndarray, labels: np.ndarray) -> float:
    """(mean OOD score − mean ID score) / std of all scores: breaks AUROC ties."""
    spread = float(np.std(scores)) + 1e-12
    return float((scores[labels == 1].mean() - scores[labels == 0].mean()) / spread)


def _validator(kind: str, model: "torch.nn.Module", params: Mapping[str, Any], val: ValidationSet, *,
               reconstruction_only: bool = False):  # -> Callable[[], ValidationScore]
    """Score the validation set, calibrate (G-mean threshold, CVAD range) and return the AUROC."""

    def validate() -> ValidationScore:
        raw = Detector(kind, model, {**params, "rec_min": 0.0, "rec_max": 1.0}, threshold=0.0)
        parts = raw.parts(val.images.images)
        if reconstruction_only:  # CVAD's generator stage: its discriminator is not trained yet
            scores = parts["rec"]
            metrics = ood_metrics(val.labels, scores).to_dict()
            return ValidationScore(score=metrics["auroc"], metric="auroc", tiebreak=_separation(scores, val.labels),
                                   metrics={"reconstruction_auroc": metrics["auroc"]})
        calibrated, threshold, metrics = calibrate(kind, parts, val.labels, dict(params))
        scores = combine_parts(kind, parts, calibrated)
        return ValidationScore(score=metrics["auroc"], metric="auroc", tiebreak=_separation(scores, val.labels),
                               metrics=metrics, payload=(calibrated, threshold))

    return validate


def _state(model: "torch.nn.Module") -> dict[str, "torch.Tensor"]:
    return copy.deepcopy(model.state_dict())


def _fit_stage(train_epoch, epochs: int, model: "torch.nn.Module", validate, *, deadline: Deadline,
               planned: DetectorPlan, label: str, progress: Progress | None, first_validation: int = 1,
               snapshot_model: "torch.nn.Module | None" = None, resume: FitResume | None = None) -> FitResult:
    """One stage under the harness; the best state is loaded back into ``snapshot_model`` (default ``model``)."""
    kept = snapshot_model if snapshot_model is not None else model
    result = fit(lambda _epoch: train_epoch(), epochs=epochs, validate=validate, snapshot=lambda: _state(kept),
                 deadline=deadline, patience=planned.patience, first_validation=first_validation, label=label,
                 progress=progress, resume=resume)
    kept.load_state_dict(result.state)
    return result


def _train_models(kind: str, train: np.ndarray, val: ValidationSet, base: Mapping[str, Any], planned: DetectorPlan,
                  *, deadline: Deadline, progress: Progress | None,
                  key: Sequence[Any] = ()) -> dict[str, tuple[Any, FitResult]]:
    """Fit the stages of ``kind``; ``{"ae"?: (model, fit), kind: (model, fit)}``, best states loaded.

    Inside a job each stage is saved after every epoch and resumed (``key``: what identifies the run).
    """
    from medlim.curation.ood.train import (
        AUTOENCODER_PARTS,
        CVAD_DISCRIMINATOR_PARTS,
        CVAD_GENERATOR_PARTS,
        TEND_PARTS,
        AutoencoderTrainer,
        CvadTrainer,
        TendTrainer,
        trainer_apply,
        trainer_parts,
    )

    config = planned.config
    if kind == "tend":
        stage1 = AutoencoderTrainer(train, config)
        share = config.ae_epochs / (config.ae_epochs + config.tend_epochs)
        ae_fit = _fit_stage(stage1.train_epoch, config.ae_epochs, stage1.model, _validator("ae", stage1.model, base, val),
                            deadline=deadline.share(share), planned=planned, label="AE baseline", progress=progress,
                            resume=fit_resume("ae", key, trainer_parts(stage1, *AUTOENCODER_PARTS),
                                              apply=trainer_apply(stage1)))
        stage2 = TendTrainer(train, stage1.model.eval(), config)
        params = {**base, "weight": config.weight, "margin": float(config.margin)}
        tend_parts = trainer_parts(stage2, *TEND_PARTS)
        tend_fit = _fit_stage(stage2.train_epoch, config.tend_epochs, stage2.model,
                              _validator("tend", stage2.model, params, val), deadline=deadline, planned=planned,
                              label="TEND", progress=progress, first_validation=config.warmup_epochs + 1,
                              resume=fit_resume("tend", key, tend_parts, apply=trainer_apply(stage2)))
        return {"ae": (stage1.model.eval(), ae_fit), "tend": (stage2.model.eval(), tend_fit)}
    trainer = CvadTrainer(train, config)
    share = config.cvad_epochs / (config.cvad_epochs + config.disc_epochs)
    _fit_stage(trainer.generator_epoch, config.cvad_epochs, trainer.model,
               _validator("cvad", trainer.model, base, val, reconstruction_only=True),
               deadline=deadline.share(share), planned=planned, label="CVAD generator", progress=progress,
               snapshot_model=trainer.model.generator,
               resume=fit_resume("cvad-generator", key, trainer_parts(trainer, *CVAD_GENERATOR_PARTS),
                                 apply=trainer_apply(trainer)))
    trainer.ensure_discriminator_optimiser()  # before its first epoch, so a checkpoint can hold it
    disc_parts = trainer_parts(trainer, *CVAD_DISCRIMINATOR_PARTS)
    cvad_fit = _fit_stage(trainer.discriminator_epoch, config.disc_epochs, trainer.model,
                          _validator("cvad", trainer.model, base, val), deadline=deadline, planned=planned,
                          label="CVAD discriminator", progress=progress,
                          resume=fit_resume("cvad-discriminator", key, disc_parts, apply=trainer_apply(trainer)))
    return {"cvad": (trainer.model.eval(), cvad_fit)}


def _entry_fields(kind: str, model: "torch.nn.Module", result: FitResult, *, name: str, version: str | None,
                  config: Any, id_classes: tuple[str, ...], data: TrainingData, planned: DetectorPlan,
                  command: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest fields of one trained detector (its calibration from the best validation)."""
    params, threshold = result.best.payload
    size = config.input_size
    kwargs: dict[str, Any] = {"channels": 1, "width": config.width, "input_size": size}
    if kind == "tend":
        kwargs["embedding"] = config.embedding
    elif kind == "cvad":
        kwargs["latent"] = config.latent
    what = {"ae": "AE reconstruction-error baseline (TEND stage 1)", "tend": f"TEND-{int(config.margin)} novelty "
            "detector", "cvad": "CVAD anomaly detector"}[kind]
    return {
        "name": name, "version": version, "task": "ood-detection", "architecture": ARCHITECTURE_OF[kind],
        "architecture_kwargs": kwargs, "preset": PRESET,
        "input_contract": {"channels": 1, "size": [size, size], "dtype": "float32", "range": [0.0, 1.0]},
        "output_type": "raw", "thresholds": {"score": float(threshold)}, "params": dict(params),
        "metrics": dict(metrics),
        "provenance": {"command": command, "seed": config.seed, "source": f"user dataset {data.fingerprint.id}"},
        "intended_use": "Research use only, not for diagnosis; trained on a user's dataset",
        "description": f"{what}, ID = {', '.join(id_classes)}; trained on the user dataset {data.fingerprint.id}",
        "data": data.record(), "plan": planned.plan.to_json(),
    }


def _acquisition(run: FolderRun, data: TrainingData, id_classes: tuple[str, ...],
                 fitted: Mapping[str, tuple[Any, FitResult]], names: Mapping[str, str], *, deadline: Deadline,
                 progress: Progress | None) -> dict[str, dict[str, Any]]:
    """Each detector kind's acquisition statistics as stored (``params["acquisition"]``); ``{}`` when off or late.

    The ID training images and the validation set are read again at the statistics' side; the detectors score
    the validation images (resized to their side) for the calibration.
    """
    from medlim.curation.image_statistics import STATS_SIZE
    from medlim.curation.ood.acquisition import fit_companion, statistics_features

    if not run.stats:
        return {}
    if deadline.expired():
        if progress is not None:
            progress("acquisition statistics skipped: the time budget (--max-minutes) is spent; the detectors "
                     "score alone")
        return {}
    items = [i for i in data.train if data.dataset.items[i].label in set(id_classes)]
    if progress is not None:
        progress(f"acquisition statistics: reading {len(items)} ID training images and the validation set at "
                 f"{STATS_SIZE} px")
    train = statistics_features(read_dataset(data.dataset, items, size=STATS_SIZE).images.images)
    val = validation_set(data, id_classes, size=STATS_SIZE, seed=run.seed)
    features = statistics_features(val.images.images)
    stored: dict[str, dict[str, Any]] = {}
    for kind, (model, result) in fitted.items():
        params, threshold = result.best.payload
        deep = Detector(kind, model, params, threshold=threshold).score(val.images.images).score
        companion = fit_companion(train, features, val.labels, deep)
        stored[kind] = companion.to_json()
        if progress is not None:
            metrics = companion.metrics
            progress(f"{names[kind]}: validation AUROC alone {metrics['validation_auroc_detector']:.3f}, statistics "
                     f"{metrics['validation_auroc_stats']:.3f}, fused {metrics['validation_auroc_fused']:.3f}")
    return stored


def _heldout(run: FolderRun, detectors: Mapping[str, Detector], *, size: int, deadline: Deadline,
             progress: Progress | None) -> tuple[dict[str, OodEvaluation], str | None]:
    """Held-out evaluations per detector kind, and the held-out folder's fingerprint id (``{}`` when skipped)."""
    if run.heldout_dir is None:
        return {}, None
    if deadline.expired():
        if progress is not None:
            progress("held-out evaluation skipped: the time budget (--max-minutes) is spent")
        return {}, None
    held = evaluation_data(run.heldout_dir, size=size, skip_bad=run.skip_bad, what="held-out folder",
                           progress=progress)
    results = {kind: evaluate_detector(detector, held.clean, seed=run.seed, shifted=held.shifted,
                                       shift_types=held.shift_types) for kind, detector in detectors.items()}
    if progress is not None:
        for kind, evaluation in results.items():
            progress(f"{kind}: held-out AUROC {evaluation.metrics.auroc:.3f}")
    return results, held.fingerprint


def _model_names(run: FolderRun, id_classes: tuple[str, ...]) -> dict[str, str]:
    """Detector kind → registry name (``tend`` also names its AE baseline ``ae``)."""
    slug = _slug(id_classes)
    names = {run.kind: run.name or f"{run.kind}-{slug}"}
    if run.kind == "tend":
        names["ae"] = f"{run.name}-ae" if run.name else f"ae-{slug}"
    return names


def _planned_data(run: FolderRun, data: TrainingData, id_classes: tuple[str, ...], progress: Progress | None
                  ) -> tuple[np.ndarray, ValidationSet, DetectorPlan]:
    """Read the ID training images and the validation set at the planned size, and plan the run."""
    summary = data.check.summary
    height = summary.height.median if summary.height else None
    width = summary.width.median if summary.width else None
    size = int(run.overrides.get("input_size") or plan_input_size(run.kind, height, width)[0])
    train_items = [i for i in data.train if data.dataset.items[i].label in set(id_classes)]
    if len(train_items) < 2:
        raise ParameterError(f"the training part holds {len(train_items)} image(s) of {', '.join(id_classes)}; "
                             "a detector needs at least 2.")
    if progress is not None:
        progress(f"reading {len(train_items)} ID training images at {size}×{size}")
    train = read_dataset(data.dataset, train_items, size=size)
    val = validation_set(data, id_classes, size=size, seed=run.seed, progress=progress)
    id_counts = {c: sum(1 for i in train_items if data.dataset.items[i].label == c) for c in id_classes}
    planned = plan_detector(run.kind, median_height=height, median_width=width, n_train=len(train_items),
                            id_counts=id_counts, colour=train.colour, images=len(train_items),
                            negatives=val.negatives, seed=run.seed, overrides=run.overrides)
    return train.images.images, val, planned


def _outcome_extra(data: TrainingData, planned: DetectorPlan, heldout: Mapping[str, OodEvaluation],
                   names: Mapping[str, str]) -> dict[str, Any]:
    extra: dict[str, Any] = {"data": {"fingerprint": data.fingerprint.id, "split": dict(data.split)},
                             "plan": planned.plan.to_json()["settings"]}
    if data.dropped is not None:
        extra["data"]["dropped"] = [p.to_json() for report in data.dropped for p in report.dropped]
    if heldout:
        extra["heldout"] = {names[k]: v.to_dict() for k, v in heldout.items()}
    return extra


def train_on_folder(
    run: FolderRun,
    *,
    registries: "Registries",
    deadline: Deadline,
    progress: Progress | None = None,
    allow_shipped_folder: bool = False,
) -> TrainingOutcome:
    """Check, split, plan, train, validate, (evaluate) and register a detector from a user's folder.

    Args:
        run: what the command asked for.
        registries: where names are looked up and the models written (its user registry).
        deadline: the command's ``--max-minutes`` budget, started when the command started.
        progress: callback for progress lines (the CLI writes them to stderr).
        allow_shipped_folder: see :meth:`medlim.core.weights.Registries.register`.

    Returns:
        The registered entries and each one's best validation.

    Raises:
        DatasetProblemsError: the folder has problems (and ``skip_bad`` is off or cannot fix them).
        NotValidatedError: a stage was never validated within the budget; nothing is registered.
        WeightsError: the name and version are taken.
    """
    if run.kind not in ("tend", "cvad"):
        raise ParameterError(f"`kind` must be 'tend' or 'cvad', {run.kind!r} is given.")
    data = _one_class_if_plain(prepare_training_data(run.data_dir, "ood", val_dir=run.val_dir, skip_bad=run.skip_bad,
                                                     seed=run.seed, progress=progress), run.id_classes)
    id_classes = resolve_id_classes(run.id_classes, data.dataset.classes)
    names = _model_names(run, id_classes)
    for model_name in names.values():
        claim_once(registries, model_name, run.version)  # fail before training, not after
    train, val, planned = _planned_data(run, data, id_classes, progress)
    size = planned.config.input_size
    base = {"input_size": size, "id_classes": list(id_classes), "training": planned.config.to_dict()}
    key = (recorded_command(f"medlim train {run.kind}", [*data.command_options(), ("--id-class", run.id_classes),
                                                          *run.command_options]), base)
    fitted = _train_models(run.kind, train, val, base, planned, deadline=deadline, progress=progress, key=key)
    acquisition = _acquisition(run, data, id_classes, fitted, names, deadline=deadline, progress=progress)
    detectors = {kind: Detector(kind, model, {**result.best.payload[0], **_companion(acquisition, kind)},
                                threshold=result.best.payload[1], name=names[kind])
                 for kind, (model, result) in fitted.items()}
    heldout, heldout_id = _heldout(run, detectors, size=max(d.read_size for d in detectors.values()),
                                   deadline=deadline, progress=progress)
    options = [*data.command_options(), ("--id-class", run.id_classes), ("--heldout", heldout_id),
               *run.command_options]
    command = recorded_command(f"medlim train {run.kind}", options)
    registered, validation = [], {}
    for kind in (["ae"] if "ae" in fitted else []) + [run.kind]:
        model, result = fitted[kind]
        metrics: dict[str, Any] = {"validation": result.to_json(), "n_train": len(train),
                                   "n_validation_id": int((val.labels == 0).sum()),
                                   "n_validation_ood": int((val.labels == 1).sum())}
        if kind in heldout:
            metrics["heldout"] = heldout[kind].to_dict()
        if kind in acquisition:
            metrics["acquisition"] = dict(acquisition[kind]["metrics"])
        fields_ = _entry_fields(kind, model, result, name=names[kind], version=run.version,
                                config=planned.config, id_classes=id_classes, data=data, planned=planned,
                                command=command, metrics=metrics)
        fields_["params"].update(_companion(acquisition, kind))
        entry = register_once(registries, fields_, model.state_dict(), allow_shipped_folder=allow_shipped_folder)
        registered.append(entry)
        validation[entry.name] = {**result.to_json(),
                                  **({"acquisition": metrics["acquisition"]} if "acquisition" in metrics else {})}
        if progress is not None:
            progress(f"registered {entry.label} in {registries.directory}")
    # issue 12/13: each detector's "unlike my training data" check, on its ID training images as it reads them
    entries, familiarity = attach_input_checks(registered, train, val.images.images[val.labels == 0],
                                               dataset=data.fingerprint.id, what="ID training images",
                                               progress=progress)
    return TrainingOutcome(registered=entries, validation=validation,
                           extra={**_outcome_extra(data, planned, heldout, names), "familiarity": familiarity})


def _companion(acquisition: Mapping[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    """``{"acquisition": …}`` for a kind that has the statistics, else ``{}`` (merged into its params)."""
    from medlim.curation.ood.acquisition import COMPANION_KEY

    return {COMPANION_KEY: acquisition[kind]} if kind in acquisition else {}


@dataclass(frozen=True)
class EvaluationData:
    """A folder read for evaluation.

    Attributes:
        clean: items without a shift type (classes define ID and OOD).
        shifted: items with a shift type, or ``None`` when there are none.
        shift_types: the shift type of each item of ``shifted``.
        fingerprint: the folder's fingerprint id.
    """

    clean: LabelledImages
    shifted: LabelledImages | None
    shift_types: tuple[str, ...]
    fingerprint: str


def evaluation_data(directory: str | Path, *, size: int, skip_bad: bool = False, what: str = "evaluation folder",
                    progress: Progress | None = None) -> EvaluationData:
    """Check and read a labelled folder for :func:`~medlim.curation.ood.evaluate.evaluate_detector`.

    The same check as ``medlim data check --task ood`` (problems refused unless
    ``skip_bad``; a small folder is fine for evaluation). Items whose
    ``shift_type`` is set (other than ``none``) are kept apart.
    """
    from medlim.core.datasets import dataset_fingerprint

    dataset, check, _ = check_folder(directory, task="ood", what=what, skip_bad=skip_bad,
                                     ignore=TRAINING_ONLY_PROBLEMS, progress=progress)
    read = read_dataset(dataset, size=size)
    shifted_mask = np.array([kind not in _NO_SHIFT for kind in read.shift_types], dtype=bool)
    clean = read.images.select(~shifted_mask)
    shifted = read.images.select(shifted_mask) if shifted_mask.any() else None
    kinds = tuple(kind for kind, flag in zip(read.shift_types, shifted_mask) if flag)
    return EvaluationData(clean=clean, shifted=shifted, shift_types=kinds,
                          fingerprint=dataset_fingerprint(dataset, check=check).id)

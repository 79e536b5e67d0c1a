"""Reproducible recipe: data → training → calibration → held-out evaluation → registry.

``medlim train tend|cvad`` call :func:`train_and_register`. Three data sets, all
internal-site radiographs (from a folder or generated in memory from seeds):

* training: ID-class images only;
* calibration (internal validation): ID and other-class images of a second
  seed; the CVAD reference range ``rec_min``/``rec_max`` and the G-mean
  threshold of every detector are fixed on it and stored in the manifest;
* held-out: ID and other-class images of :data:`HELDOUT_SEED`, never seen in
  training or calibration; its evaluation is stored as the entry's metrics.

``tend`` also registers its stage-1 autoencoder as the AE baseline.

Data from a folder is recorded in the manifest by what it is, never by where
it is (issue 14): the image counts and a content fingerprint
(:func:`data_record`), and the recorded command shows ``<data folder>`` in
place of the folder's path.

Shipped (settings chosen on validation phantoms of seed 7000; numbers on the
held-out seed 9000, 60 images per class, 64×64), every data set generated with
``--variability 1`` (within-site variation of one hospital, see
:func:`medlim.phantoms.radiograph.generate_radiograph`):

* ``medlim train tend --id-class C --margin 500 --epochs 150 --warmup-epochs 10
  --batch-size 16 --distortions barrel,perspective,arc,polar,tile,affine,spread,motion_blur,cut_paste
  --variability 1 --train-encoder --version 3`` — AUROC humerus AE 0.723 / TEND 0.869, forearm AE
  0.788 / TEND 0.813; validation transforms (random cut / crop+resize / noise / blur, held-out
  G-mean threshold) humerus 0.95 / 0.98 / 1.00 / 1.00, forearm 0.97 / 1.00 / 1.00 / 1.00;
* ``medlim train cvad --id-class C --epochs 150 --recon-weight 300 --variability 1 --version 5``
  — AUROC humerus 0.793, forearm 0.803; all four validation transforms detected at ≥ 0.96
  (held-out G-mean threshold; ≥ 0.98 at the stored one).

With the fixed acquisition of ``--variability 0`` the AE reconstruction error
was an unrealistically strong baseline (AUROC 0.99 / 0.92: the classes differ
by whole structures an AE trained on one class cannot draw, and nothing else
varies); the thesis's AE baselines on real data reach 0.10–0.67.

TEND's encoder: the thesis freezes the autoencoder's encoder in stage 2, the
authors' code trains it. With it frozen, TEND did not detect the noise and
blur transforms on the varied phantoms (held-out G-mean accuracy noise
0.18 / 0.72, blur 0.10 / 0.27 — the classifier and margin learner see only a
code that no longer carries acquisition detail, and margins 150/250, width 16,
more epochs did not change that on validation); trained (``--train-encoder``),
it did on validation seed 7000 (humerus 0.93 / 1.00 / 1.00 / 1.00, AUROC
0.856 vs AE 0.775; forearm 0.97 / 1.00 / 0.97 / 1.00, AUROC 0.801 vs 0.705), so
the shipped TEND follows the authors' code here (a stated choice; the frozen
encoder stays the default of :class:`~medlim.curation.ood.train.OodTrainingConfig`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from medlim.curation.ood.calibration import gmean_threshold, ood_metrics
from medlim.curation.ood.data import PRESET, LabelledImages, phantom_set, read_folder
from medlim.curation.ood.evaluate import OodEvaluation, evaluate_detector
from medlim.curation.ood.scoring import ARCHITECTURE_OF, Detector, combine_parts
from medlim.curation.ood.train import OodTrainingConfig, train_autoencoder, train_cvad, train_tend
from medlim.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import torch

    from medlim.core.weights import Registry, WeightsEntry

__all__ = ["HELDOUT_SEED", "DataSpec", "OodData", "prepare_data", "calibrate", "data_record", "train_and_register"]

#: Seed of the held-out phantom series (never used for training or calibration).
HELDOUT_SEED = 9000
Log = Callable[[str], None]


@dataclass(frozen=True)
class DataSpec:
    """Where the data comes from.

    Attributes:
        data_dir: folder of ``DIR/<class>/*`` images (internal-site rows are
            split by file order into training / calibration: every 5th ID image and
            every 5th other image go to calibration); ``None`` = phantoms.
        heldout_dir: folder of held-out images; ``None`` = phantoms of :data:`HELDOUT_SEED`.
        seed: phantom series seed of the training set (calibration uses ``seed + 1``).
        n_train: ID training images in total (split evenly over the ID classes).
        n_calib: calibration images per class.
        n_heldout: held-out images per class.
        variability: within-site variation of the generated phantoms
            (``generate_radiograph(variability=...)``), the same for the
            training, calibration and held-out sets; 0 = fixed acquisition.
    """

    data_dir: "Path | None" = None
    heldout_dir: "Path | None" = None
    seed: int = 1
    n_train: int = 600
    n_calib: int = 40
    n_heldout: int = 60
    variability: float = 0.0


@dataclass(frozen=True)
class OodData:
    """The three data sets of a run (at the model input size)."""

    train: LabelledImages
    calibration: LabelledImages
    heldout: LabelledImages


def prepare_data(spec: DataSpec, id_classes: Sequence[str], *, size: int, log: Log | None = None) -> OodData:
    """Build (or read) the training, calibration and held-out sets."""
    from medlim.phantoms.radiograph import BODY_PARTS

    id_classes = tuple(id_classes)
    if spec.data_dir is not None:
        everything = read_folder(spec.data_dir, size=size, sites=("internal",))
        unknown = [c for c in id_classes if c not in everything.classes]
        if unknown:
            raise ParameterError(f"ID classes {unknown} have no images in {spec.data_dir}.")
        is_id = everything.in_classes(id_classes)
        rank = np.zeros(len(everything), dtype=int)
        rank[is_id] = np.arange(int(is_id.sum()))
        rank[~is_id] = np.arange(int((~is_id).sum()))
        to_calibration = rank % 5 == 4
        train = everything.select(is_id & ~to_calibration)
        calibration = everything.select(to_calibration)
    else:
        unknown = [c for c in id_classes if c not in BODY_PARTS]
        if unknown:
            raise ParameterError(f"unknown ID classes {unknown}; phantom classes: {', '.join(BODY_PARTS)}.")
        per_class = max(1, spec.n_train // len(id_classes))
        if log:
            log(f"generating {per_class * len(id_classes)} training phantoms (seed {spec.seed})")
        train = phantom_set(seed=spec.seed, per_class=per_class, body_parts=id_classes, size=size,
                            variability=spec.variability)
        if log:
            log(f"generating {spec.n_calib * len(BODY_PARTS)} calibration phantoms (seed {spec.seed + 1})")
        calibration = phantom_set(seed=spec.seed + 1, per_class=spec.n_calib, body_parts=BODY_PARTS, size=size,
                                  variability=spec.variability)
    if spec.heldout_dir is not None:
        heldout = read_folder(spec.heldout_dir, size=size, sites=("internal",))
    else:
        if log:
            log(f"generating {spec.n_heldout * len(BODY_PARTS)} held-out phantoms (seed {HELDOUT_SEED})")
        heldout = phantom_set(seed=HELDOUT_SEED, per_class=spec.n_heldout, body_parts=BODY_PARTS, size=size,
                              variability=spec.variability)
    return OodData(train=train, calibration=calibration, heldout=heldout)


def data_record(spec: DataSpec, data: OodData) -> dict[str, Any]:
    """What the manifest records about a run's data: seeds, counts and a fingerprint, no folder names.

    Returns:
        ``{"seed", "calibration_seed", "heldout_seed", "source"}`` (``source``:
        ``"phantoms"`` or ``"folder"``), the phantoms' ``variability`` when not 0,
        and for a folder ``"heldout_source"``, ``"images"`` (counts per set) and
        ``"fingerprint"``: 16 hex digits of the sha256 of every set's images at the
        model input size and their classes, which tells whether two runs saw the
        same data without naming a file.
    """
    import hashlib

    record: dict[str, Any] = {"seed": spec.seed, "calibration_seed": spec.seed + 1, "heldout_seed": HELDOUT_SEED,
                              "source": "folder" if spec.data_dir is not None else "phantoms"}
    if spec.data_dir is None and spec.variability:
        record["variability"] = float(spec.variability)
    if spec.data_dir is None:
        return record
    digest = hashlib.sha256()
    for images in (data.train, data.calibration, data.heldout):
        digest.update(np.ascontiguousarray(images.images, dtype=np.float32).tobytes())
        digest.update("\n".join(images.classes).encode("utf-8"))
    record["heldout_source"] = "folder" if spec.heldout_dir is not None else "phantoms"
    record["images"] = {"train": len(data.train), "calibration": len(data.calibration), "heldout": len(data.heldout)}
    record["fingerprint"] = digest.hexdigest()[:16]
    return record


def _without_folders(command: str, spec: DataSpec) -> str:
    """``command`` with each argument naming a data folder shown as ``<data folder>`` / ``<held-out folder>``."""
    import shlex

    folders = {str(folder): shown for folder, shown in ((spec.data_dir, "<data folder>"),
                                                         (spec.heldout_dir, "<held-out folder>")) if folder is not None}
    if not folders:
        return command
    try:
        words = shlex.split(command)
    except ValueError:  # not a shell line: keep nothing of it rather than a path
        return "<command not recorded: it could not be parsed>"
    shown_words = []
    for word in words:
        option, equals, value = word.partition("=") if word.startswith("--") else ("", "", word)
        if value in folders:
            shown_words.append(f"{option}{equals}{shlex.quote(folders[value])}")
        else:
            shown_words.append(shlex.quote(word))
    return " ".join(shown_words)


def calibrate(
    kind: str, parts: dict[str, np.ndarray], labels: np.ndarray, params: dict[str, Any]
) -> tuple[dict[str, Any], float, dict[str, Any]]:
    """Fix a detector's reference range (CVAD) and G-mean threshold on calibration data.

    Args:
        kind: detector kind.
        parts: score parts of the calibration images.
        labels: ``np.ndarray[N]`` 1 = OOD.
        params: score parameters so far.

    Returns:
        ``(params, threshold, calibration metrics)``; CVAD params gain
        ``rec_min``/``rec_max`` (over all calibration images).
    """
    params = dict(params)
    if kind == "cvad":
        params["rec_min"] = float(np.min(parts["rec"]))
        params["rec_max"] = float(np.max(parts["rec"]))
        if params["rec_max"] <= params["rec_min"]:
            params["rec_max"] = params["rec_min"] + 1e-12
    scores = combine_parts(kind, parts, params)
    threshold, _, _ = gmean_threshold(labels, scores)
    return params, float(threshold), ood_metrics(labels, scores).to_dict()


def _register(
    registry: "Registry",
    *,
    kind: str,
    model: "torch.nn.Module",
    name: str,
    version: str,
    params: dict[str, Any],
    threshold: float,
    architecture_kwargs: dict[str, Any],
    metrics: dict[str, Any],
    command: str,
    seed: int,
    description: str,
) -> "WeightsEntry":
    from medlim import __version__
    from medlim.core.training_resume import job_checkpoint_folder, record_registrations, recorded_registrations
    from medlim.core.weights import Registry, save_weights

    size = int(params["input_size"])
    # re-read the manifest just before writing: training takes minutes and
    # another process may have registered weights meanwhile
    registry = Registry.load(registry.directory)
    recorded = recorded_registrations()
    if {"name": name, "version": version} in recorded:  # a resumed job registered it before it was stopped
        return registry.get(name, version)
    entry = save_weights(registry, {
        "name": name,
        "version": version,
        "task": "ood-detection",
        "architecture": ARCHITECTURE_OF[kind],
        "architecture_kwargs": architecture_kwargs,
        "preset": PRESET,
        "input_contract": {"channels": 1, "size": [size, size], "dtype": "float32", "range": [0.0, 1.0]},
        "output_type": "raw",
        "thresholds": {"score": threshold},
        "params": params,
        "metrics": metrics,
        "provenance": {"command": command, "seed": seed, "data_generator": "medlim.phantoms.radiograph",
                       "data_generator_version": __version__},
        "description": description,
    }, model.state_dict())
    folder = job_checkpoint_folder()
    if folder is not None:
        record_registrations(folder, [*recorded, {"name": entry.name, "version": entry.version}])
    return entry


def _fit_detector(kind: str, model: "torch.nn.Module", params: dict[str, Any], data: OodData, *, name: str,
                  id_classes: tuple[str, ...]) -> tuple[Detector, dict[str, Any], OodEvaluation]:
    calibration_labels = (~data.calibration.in_classes(id_classes)).astype(int)
    raw = Detector(kind, model, {**params, "rec_min": 0.0, "rec_max": 1.0}, threshold=0.0, name=name)
    parts = raw.parts(data.calibration.images)
    params, threshold, calibration_metrics = calibrate(kind, parts, calibration_labels, params)
    detector = Detector(kind, model, params, threshold=threshold, name=name)
    evaluation = evaluate_detector(detector, data.heldout, seed=HELDOUT_SEED)
    metrics = {"heldout": evaluation.to_dict(), "calibration": calibration_metrics,
               "n_train": len(data.train), "n_calibration": len(data.calibration), "n_heldout": len(data.heldout)}
    return detector, metrics, evaluation


def train_and_register(
    kind: str,
    *,
    id_classes: Sequence[str],
    data_spec: DataSpec,
    config: OodTrainingConfig,
    name: str | None = None,
    version: str = "1",
    command: str = "",
    registry: "Registry | None" = None,
    log: Log | None = None,
) -> dict[str, tuple["WeightsEntry", OodEvaluation]]:
    """Train a TEND (with its AE baseline) or CVAD detector and register it.

    Args:
        kind: ``"tend"`` or ``"cvad"``.
        id_classes: in-distribution classes.
        data_spec: data sources and sizes.
        config: hyper-parameters.
        name: registry name of the detector (default ``"<kind>-<classes>"``;
            the AE baseline of ``tend`` is ``"ae-<classes>"``).
        version: registry version.
        command: the exact command line, recorded as provenance.
        registry: where to save (default: the settings' weights folder).
        log: progress callback.

    Returns:
        ``{kind: (entry, held-out evaluation)}`` (``tend`` also returns ``"ae"``).
    """
    from medlim.core.weights import Registry

    if kind not in ("tend", "cvad"):
        raise ParameterError(f"`kind` must be 'tend' or 'cvad', {kind!r} is given.")
    id_classes = tuple(id_classes)
    if not id_classes:
        raise ParameterError("give at least one ID class.")
    registry = registry if registry is not None else Registry.load()
    data = prepare_data(data_spec, id_classes, size=config.input_size, log=log)
    suffix = "-".join(id_classes) if len(id_classes) <= 2 else f"{len(id_classes)}classes"
    base = {"input_size": config.input_size, "id_classes": list(id_classes), "training": config.to_dict(),
            "data": data_record(data_spec, data)}
    command = _without_folders(command, data_spec)
    results: dict[str, tuple[WeightsEntry, OodEvaluation]] = {}
    key = ("ood-recipe", kind, list(id_classes), name, version, command)  # inside a job: resumed per epoch
    if kind == "tend":
        autoencoder = train_autoencoder(data.train.images, config, log=log, key=key)
        ae_name = f"ae-{suffix}" if name is None else f"{name}-ae"
        baseline, metrics, evaluation = _fit_detector("ae", autoencoder, dict(base), data, name=ae_name,
                                                      id_classes=id_classes)
        entry = _register(registry, kind="ae", model=autoencoder, name=ae_name, version=version,
                          params=baseline.params, threshold=baseline.threshold,
                          architecture_kwargs={"channels": 1, "width": config.width, "input_size": config.input_size},
                          metrics=metrics, command=command, seed=config.seed,
                          description=f"AE reconstruction-error baseline, ID = {', '.join(id_classes)} (TEND stage 1)")
        results["ae"] = (entry, evaluation)
        if log:
            log(f"AE baseline: held-out AUROC {evaluation.metrics.auroc:.3f}")
        model = train_tend(data.train.images, autoencoder, config, log=log, key=key)
        params = {**base, "weight": config.weight, "margin": float(config.margin)}
        architecture_kwargs = {"channels": 1, "width": config.width, "input_size": config.input_size,
                               "embedding": config.embedding}
        description = f"TEND-{int(config.margin)} novelty detector, ID = {', '.join(id_classes)}"
    else:
        model = train_cvad(data.train.images, config, log=log, key=key)
        params = dict(base)
        architecture_kwargs = {"channels": 1, "width": config.width, "input_size": config.input_size,
                               "latent": config.latent}
        description = f"CVAD anomaly detector, ID = {', '.join(id_classes)}"
    detector_name = name or f"{kind}-{suffix}"
    detector, metrics, evaluation = _fit_detector(kind, model, params, data, name=detector_name, id_classes=id_classes)
    entry = _register(registry, kind=kind, model=model, name=detector_name, version=version, params=detector.params,
                      threshold=detector.threshold, architecture_kwargs=architecture_kwargs, metrics=metrics,
                      command=command, seed=config.seed, description=description)
    results[kind] = (entry, evaluation)
    if log:
        log(f"{kind}: held-out AUROC {evaluation.metrics.auroc:.3f}")
    return results

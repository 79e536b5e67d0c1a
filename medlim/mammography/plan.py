"""The training plan of SCU-Net on a user's annotated mammograms (issue 12; thesis §3.3.2).

As nnU-Net configures itself from a dataset fingerprint, :func:`plan_scunet`
turns what the dataset check and the patch extraction measured (image sizes,
pixel spacing, views with and without BAC, patch counts) and the machine it
runs on into the settings of a run, with the reason for each; settings given
on the command line win and are marked as such. The plan is recorded in the
manifest entry (``plan``). Nothing here imports torch.

Rules (the shipped ``scunet-bac`` weights and their recorded fine-tune are the
starting point, see ``weights/manifest.json``):

* preprocessing: the starting weights' preset and background-patch rule
  (fine-tuning must see what the weights saw); a fresh network takes
  ``thesis-unclipped`` (the 1–100 % stretch that keeps the brightest
  calcifications distinct). Training images are not resampled; the
  dataset's (lower) median pixel spacing and its range are recorded with the
  weights, and inference resamples an image outside that range to the median
  (issue 13, :mod:`medlim.mammography.spacing`).
* patches: every grid patch of the preset (512 px, the inference grid) with
  BAC, plus :data:`NEGATIVES_PER_VIEW` BAC-free patches per view drawn at random
  and :data:`LINE_NEGATIVES_PER_VIEW` more that hold the brightest thin lines
  (BAC-free views included; :func:`~medlim.mammography.train.line_scores`),
  preprocessed once and kept in memory. The network trains
  on crops of ``patch_size`` cut from them — 512 on a GPU; 256 on a CPU
  (a quarter of the pixels per step; SCU-Net is fully convolutional and its
  context blocks average over the crop), centred near a BAC pixel for BAC patches.
* class balance: each epoch draws ``negative_ratio`` BAC-free crops per BAC crop
  (1.5), spread so that every batch holds BAC crops; half of the BAC-free ones
  are hard negatives — patches where the network fired at their last visit,
  drawn in proportion to their false-positive pixels and cut around the
  strongest one (:func:`~medlim.mammography.train.draw_negatives`).
* schedule: AdamW (weight decay 0.01 as published), 3e-4 when fine-tuning (the
  shipped v2 fine-tune) and 1e-3 from scratch (thesis), cosine-annealed to 2 %
  over the planned steps or the time budget, whichever ends first; early
  stopping after :data:`PATIENCE_STEPS` steps (at least :data:`PATIENCE`
  validations) without a better Dice.
* validation: whole validation views (at most ``whole_view_views``, half with
  BAC), predicted as ``medlim bac evaluate`` predicts them; the epoch and the
  cut-off are chosen by the whole-view score of :mod:`.selection` (Dice on the
  views with BAC, among cut-offs that keep the median false area on BAC-free
  views within 0.5 mm²), never on
  training data. A fixed crop set (BAC crops and as many BAC-free crops, at most
  ``val_crops``) is scored too, its pooled Dice at the best of :data:`CUTOFFS`
  (the rule before issue 12's whole-view selection; it breaks ties).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from medlim.core.training import TrainingPlan
from medlim.errors import ParameterError

__all__ = [
    "NEGATIVES_PER_VIEW",
    "LINE_NEGATIVES_PER_VIEW",
    "NEGATIVE_RATIO",
    "HARD_NEGATIVE_SHARE",
    "PATIENCE",
    "PATIENCE_STEPS",
    "CUTOFFS",
    "FRESH_PRESET",
    "LOSSES",
    "POSITIVE_BALANCES",
    "AugmentationPolicy",
    "ScunetPlan",
    "PatchCounts",
    "plan_scunet",
]

#: BAC-free grid patches kept per view (a seeded sample; the pool hard negatives are mined from).
NEGATIVES_PER_VIEW = 8
#: BAC-free grid patches kept per view besides, those with the brightest thin lines (ligaments, vessel walls, skin
#: folds: what a network mistakes for calcified arteries). Hard negatives are mined from the pool only, and eight
#: random patches of a full-size view seldom hold the bright linear tissue that drew a fine-tuned model's false BAC
#: on a vendor look of the second phantom family (README, "Where the false BAC lies").
LINE_NEGATIVES_PER_VIEW = 16
#: BAC-free crops per BAC crop in an epoch.
NEGATIVE_RATIO = 1.5
#: Share of an epoch's BAC-free crops drawn as hard negatives.
HARD_NEGATIVE_SHARE = 0.5
#: Fewest validations without a better validation Dice before training stops.
PATIENCE = 5
#: Optimisation steps without a better validation Dice before training stops (when that is more validations).
PATIENCE_STEPS = 250
#: Probability cut-offs tried on the validation crops; the best becomes the weights' cut-off.
CUTOFFS: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Preprocessing of a network trained from scratch.
FRESH_PRESET = "thesis-unclipped"
#: Training losses: the thesis's soft Dice over the batch, and that plus pixel-wise binary cross-entropy (nnU-Net's
#: Dice + CE; a stated deviation, :func:`medlim.mammography.train.segmentation_loss`).
LOSSES: tuple[str, ...] = ("dice", "dice+bce", "dice+crop")
#: How an epoch draws its BAC patches: each once, or with every view's BAC patches weighing the same.
POSITIVE_BALANCES: tuple[str, ...] = ("patches", "views")
#: Optimisation steps aimed at: (fine-tune, fresh) on (CPU, GPU).
_TARGET_STEPS = {("fine-tune", "cpu"): 900, ("fine-tune", "cuda"): 3000, ("fresh", "cpu"): 2000,
                 ("fresh", "cuda"): 12000}
_EPOCH_BOUNDS = (2, 100)
_STEPS_PER_EPOCH_MAX = {"cpu": 100, "cuda": 250}
_VAL_CROPS = {"cpu": 64, "cuda": 256}
#: Most whole validation views scored at every validation (each costs a whole-view inference).
_WHOLE_VIEWS = {"cpu": 8, "cuda": 32}


@dataclass(frozen=True)
class AugmentationPolicy:
    """Augmentation suited to mammography patches (nnU-Net's probabilities, lighter ranges).

    Geometry: flips and 90° turns (a patch of vessels has no up or down); no
    scaling (a calcification's size in pixels is the detector's, and inference
    does not resample). Intensity, inside the breast only (black stays black,
    as outside the breast of a real image): brightness/contrast, gamma,
    Gaussian noise, Gaussian blur and a simulated lower resolution.

    Attributes:
        flip: probability of each of the two flips.
        rotate: probability of a 90° or 270° turn.
        contrast_p, contrast: probability and range of the contrast factor 1 ± contrast.
        brightness: additive shift range ± brightness (in [0, 1] units), drawn with the contrast.
        gamma_p, gamma: probability and range ``(low, high)`` of ``g ** γ``.
        noise_p, noise: probability and largest SD of Gaussian noise.
        blur_p, blur: probability and range of the Gaussian blur SD in px.
        resolution_p, resolution: probability and smallest scale of down-then-up sampling.
    """

    flip: float = 0.5
    rotate: float = 0.5
    contrast_p: float = 0.5
    contrast: float = 0.25
    brightness: float = 0.1
    gamma_p: float = 0.3
    gamma: tuple[float, float] = (0.7, 1.5)
    noise_p: float = 0.15
    noise: float = 0.03
    blur_p: float = 0.15
    blur: tuple[float, float] = (0.5, 1.0)
    resolution_p: float = 0.1
    resolution: float = 0.6

    def to_json(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


@dataclass(frozen=True)
class PatchCounts:
    """What the patch extraction found (the plan's data).

    Attributes:
        train_views, train_bac_free_views: training views, and those without BAC.
        positives: training grid patches with BAC.
        negatives: BAC-free training patches kept (the pool each epoch draws from).
        val_views, val_bac_free_views: validation views, and those without BAC.
        val_positives, val_negatives: validation patches with and without BAC available.
    """

    train_views: int
    train_bac_free_views: int
    positives: int
    negatives: int
    val_views: int
    val_bac_free_views: int
    val_positives: int
    val_negatives: int


@dataclass(frozen=True)
class ScunetPlan:
    """A planned SCU-Net run on a user's data.

    Attributes:
        preset, skip: preprocessing preset and background-patch rule (training and the registered weights).
        patch_size: training and validation crop side in px.
        batch_size, learning_rate, weight_decay, warmup_steps: the optimiser's settings.
        steps_per_epoch, epochs: an epoch is the step boundary of the time budget and of validation.
        patience: validations without improvement before stopping.
        negative_ratio: BAC-free crops per BAC crop in each epoch.
        hard_negative_share: share of those drawn as hard negatives.
        val_crops: most validation crops (half BAC, half BAC-free when there are enough).
        whole_view_views: most whole validation views scored at each validation.
        augmentation: the augmentation policy.
        loss: one of :data:`LOSSES`.
        positive_balance: one of :data:`POSITIVE_BALANCES`.
        seed: sampling and initialisation seed.
        threads: torch CPU threads (``None`` on a GPU).
        plan: the record (settings, reasons, overridden).
    """

    preset: str
    skip: bool | str
    patch_size: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_steps: int
    steps_per_epoch: int
    epochs: int
    patience: int
    negative_ratio: float
    hard_negative_share: float
    val_crops: int
    whole_view_views: int
    augmentation: AugmentationPolicy
    seed: int
    threads: int | None
    plan: TrainingPlan
    loss: str = "dice"
    positive_balance: str = "patches"


def _check_overrides(overrides: Mapping[str, Any]) -> None:
    size = overrides.get("patch_size")
    if size is not None and (not isinstance(size, int) or size % 32 or not 64 <= size <= 512):
        raise ParameterError(f"--patch-size must be a multiple of 32 between 64 and 512; {size!r} is given.")
    for name in ("batch_size", "epochs", "steps_per_epoch", "threads", "patience", "whole_view_views"):
        value = overrides.get(name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ParameterError(f"--{name.replace('_', '-')} must be a positive integer; {value!r} is given.")
    loss = overrides.get("loss")
    if loss is not None and loss not in LOSSES:
        raise ParameterError(f"--loss must be one of {', '.join(LOSSES)}; {loss!r} is given.")
    balance = overrides.get("positive_balance")
    if balance is not None and balance not in POSITIVE_BALANCES:
        raise ParameterError(f"--balance must be one of {', '.join(POSITIVE_BALANCES)}; {balance!r} is given.")
    lr = overrides.get("learning_rate")
    if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ParameterError(f"--lr must be a positive number; {lr!r} is given.")


def _schedule(mode: str, device: str, positives: int, batch: int) -> tuple[dict[str, Any], dict[str, str]]:
    steps_per_epoch = int(min(_STEPS_PER_EPOCH_MAX[device], max(5, math.ceil((1 + NEGATIVE_RATIO) * positives / batch))))
    target = _TARGET_STEPS[(mode, device)]
    epochs = int(min(_EPOCH_BOUNDS[1], max(_EPOCH_BOUNDS[0], math.ceil(target / steps_per_epoch))))
    settings = {"learning_rate": 3e-4 if mode == "fine-tune" else 1e-3, "weight_decay": 0.01,
                "warmup_steps": 0 if mode == "fine-tune" else min(50, steps_per_epoch),
                "steps_per_epoch": steps_per_epoch, "epochs": epochs,
                "patience": max(PATIENCE, math.ceil(PATIENCE_STEPS / steps_per_epoch))}
    reasons = {
        "learning_rate": ("AdamW 3e-4, the shipped scunet-bac v2 fine-tune" if mode == "fine-tune"
                          else "AdamW 1e-3, the thesis's rate for a fresh network, after a short linear warm-up"),
        "weight_decay": "0.01, the published code's",
        "schedule": "cosine from the rate to 2 % of it over the planned steps or the time budget (--max-minutes), "
                    "whichever ends first, so a run cut by the budget still ends annealed",
        "steps_per_epoch": f"one pass over the {positives} BAC patches and {NEGATIVE_RATIO:g}× as many BAC-free "
                           f"ones ({batch} crops a step), at most {_STEPS_PER_EPOCH_MAX[device]} on {device} so that "
                           "validation (whole views) and the time budget see frequent boundaries",
        "epochs": f"about {target} optimisation steps ({mode} on {device}), between {_EPOCH_BOUNDS[0]} and "
                  f"{_EPOCH_BOUNDS[1]} epochs; the best validated epoch is kept",
        "early_stopping": f"after about {PATIENCE_STEPS} optimisation steps (at least {PATIENCE} validations) "
                          "without a better whole-view validation score",
    }
    return settings, reasons


def _data_reasons(counts: PatchCounts, *, median_side: tuple[int, int] | None,
                  spacings: tuple[tuple[float, float, int], ...]) -> dict[str, str]:
    size = f"median view {median_side[0]}×{median_side[1]} px" if median_side else "no view size measured"
    spacing = (", ".join(f"{r:g}×{c:g} mm ({n} views)" for r, c, n in spacings[:3]) if spacings
               else "no pixel spacing in the files")
    return {
        "resampling": f"none in training; the median spacing is recorded with the weights and inference resamples "
                      f"images outside the training range to it; {size}; {spacing}",
        "patches": f"{counts.positives} grid patches with BAC from {counts.train_views} training views, and "
                   f"{counts.negatives} BAC-free patches ({NEGATIVES_PER_VIEW} per view, a seeded sample, and up to "
                   f"{LINE_NEGATIVES_PER_VIEW} more holding the brightest thin lines, from "
                   f"{counts.train_bac_free_views} BAC-free views too), preprocessed once and kept in memory",
        "class_balance": f"each epoch: every BAC crop and {NEGATIVE_RATIO:g}× as many BAC-free crops, spread over the "
                         f"batches so that each holds BAC; {HARD_NEGATIVE_SHARE:.0%} of the BAC-free ones are hard "
                         "negatives (where the network fired at their last visit, drawn in proportion to the false "
                         "pixels and cut around the strongest), the rest drawn anew from the pool",
        "loss": "soft Dice on the sigmoid output over the batch (the shipped weights' loss)",
    }


def _setting_reasons(mode: str, device: str, patch: int, batch: int, fine_tune: bool) -> dict[str, str]:
    """Why the start, preprocessing, crops, threads, augmentation and validation are what they are."""
    return {
        "start": f"{mode}: " + ("the task's default weights (give --init none to train from scratch)"
                                if fine_tune else "a freshly initialised network"),
        "preset": ("the starting weights' preprocessing (fine-tuning keeps what they saw)" if fine_tune
                   else f"{FRESH_PRESET}: the thesis preset with a stretch that keeps bright calcifications"),
        "skip": "the background-patch rule of the starting weights" if fine_tune else "the authors' rule",
        "normalisation": "the preset's patch normalisation (thesis presets: x/255 minus each patch's mean), grey "
                         "repeated to 3 channels",
        "patch_size": ("512 px, the inference patch" if patch == 512 else
                       f"{patch} px crops on {device}: {(patch / 512) ** 2:.0%} of the pixels of the 512 px "
                       "inference patch per crop; validation uses the same crops, the final evaluation whole views"),
        "batch_size": f"{batch} crops of {patch} px ({device})",
        "threads": ("half the CPU cores, at most 4: on shared cores more torch threads contend (one thread ran a "
                    "256 px step of SCU-Net 5–10× faster than two on 2 busy cores)" if device == "cpu"
                    else "not set on a GPU"),
        "augmentation": "flips, 90° turns; inside the breast: brightness/contrast, gamma, noise, blur, "
                        "lower resolution (nnU-Net's kinds at lighter settings); no scaling",
        "validation": f"up to {_WHOLE_VIEWS[device]} whole validation views (half with BAC), predicted as `medlim "
                      "bac evaluate` does; epoch and cut-off by the whole-view score (the mean Dice of the views "
                      "with BAC among cut-offs whose median false area on the BAC-free views is at most 0.5 mm², "
                      "the least false area when none is; "
                      "medlim.mammography.selection); ties broken by the pooled Dice of fixed crops (BAC crops "
                      f"and as many BAC-free ones, at most {_VAL_CROPS[device]}, best of "
                      f"{', '.join(map(str, CUTOFFS))})",
    }


def plan_scunet(
    *,
    device: str,
    fine_tune: bool,
    preset: str,
    skip: bool | str,
    counts: PatchCounts,
    median_side: tuple[int, int] | None = None,
    spacings: tuple[tuple[float, float, int], ...] = (),
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
    starting_point: str = "",
    given: tuple[str, ...] = (),
) -> ScunetPlan:
    """Plan an SCU-Net run on a user's views.

    Args:
        device: ``"cpu"`` or ``"cuda"`` (the device the run trains on).
        fine_tune: whether training starts from registered weights.
        preset, skip: preprocessing preset and background rule (from those weights, or the fresh defaults).
        counts: what the patch extraction found.
        median_side: median ``(height, width)`` of the views in px.
        spacings: ``(row mm, column mm, views)`` per pixel spacing (from the fingerprint).
        seed: sampling seed.
        overrides: settings given on the command line (``patch_size``, ``batch_size``,
            ``learning_rate``, ``epochs``, ``steps_per_epoch``, ``threads``, ``patience``,
            ``whole_view_views``, ``loss``, ``positive_balance``).
        starting_point: where the weights start, for the record (``"scunet-bac@2"``, ``"fresh"``).
        given: ``"preset"`` and/or ``"skip"`` when the command line chose them.

    Returns:
        A :class:`ScunetPlan`.

    Raises:
        ParameterError: an unknown device or a bad override.
    """
    if device not in ("cpu", "cuda"):
        raise ParameterError(f"`device` must be 'cpu' or 'cuda', {device!r} is given.")
    overrides = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    _check_overrides(overrides)
    mode = "fine-tune" if fine_tune else "fresh"
    patch = int(overrides.get("patch_size") or (512 if device == "cuda" else 256))
    batch = int(overrides.get("batch_size") or (16 if device == "cuda" else 4))
    settings: dict[str, Any] = {"preset": preset, "skip": skip, "patch_size": patch, "batch_size": batch,
                                "negative_ratio": NEGATIVE_RATIO,
                                "hard_negative_share": HARD_NEGATIVE_SHARE, "val_crops": _VAL_CROPS[device],
                                "whole_view_views": _WHOLE_VIEWS[device], "seed": seed, "loss": "dice",
                                "positive_balance": "patches",
                                "device": device, "start": starting_point or mode,
                                "threads": max(1, min(4, (os.cpu_count() or 2) // 2)) if device == "cpu" else None}
    schedule, schedule_reasons = _schedule(mode, device, counts.positives, batch)
    settings.update(schedule)
    reasons = {**_setting_reasons(mode, device, patch, batch, fine_tune),
               **_data_reasons(counts, median_side=median_side, spacings=spacings), **schedule_reasons}
    reasons.update({key: "given on the command line" for key in given})
    for key in overrides:
        planned = settings.get(key)
        reasons[key] = "given on the command line" + (f" (planned: {planned})" if planned is not None else "")
    settings.update(overrides)
    steps_per_epoch = int(settings["steps_per_epoch"])
    if "patience" not in overrides:
        settings["patience"] = max(PATIENCE, math.ceil(PATIENCE_STEPS / steps_per_epoch))
    settings["warmup_steps"] = 0 if fine_tune else min(50, steps_per_epoch)
    policy = AugmentationPolicy()
    record = TrainingPlan(task="scunet", settings={**settings, "augmentation": policy.to_json()}, reasons=reasons,
                          overridden=tuple(sorted({*overrides, *given})))
    return ScunetPlan(preset=preset, skip=skip, patch_size=int(settings["patch_size"]),
                      batch_size=int(settings["batch_size"]), learning_rate=float(settings["learning_rate"]),
                      weight_decay=float(settings["weight_decay"]), warmup_steps=int(settings["warmup_steps"]),
                      steps_per_epoch=int(settings["steps_per_epoch"]), epochs=int(settings["epochs"]),
                      patience=int(settings["patience"]), negative_ratio=float(settings["negative_ratio"]),
                      hard_negative_share=float(settings["hard_negative_share"]), val_crops=int(settings["val_crops"]),
                      whole_view_views=int(settings["whole_view_views"]), augmentation=policy, seed=int(seed),
                      threads=None if settings["threads"] is None else int(settings["threads"]), plan=record,
                      loss=str(settings["loss"]), positive_balance=str(settings["positive_balance"]))

"""The training plan of a TEND or CVAD detector, derived from a user's dataset (issue 12).

As nnU-Net configures itself from a dataset fingerprint, :func:`plan_detector`
turns what the dataset check measured (image sizes, counts) into the settings
of :class:`~medlim.curation.ood.train.OodTrainingConfig`, with the reason for
each; settings given on the command line win and are marked as such. The plan
is recorded in the manifest entry (``plan``).

Rules (the shipped detectors' settings, chosen on validation phantoms, are the
starting point; see :mod:`medlim.curation.ood.recipe`):

* input side: the median image's shorter side, rounded down to the network's
  step (64 for TEND, whose head halves the encoder's output once more; 32 for
  CVAD), between one step and :data:`MAX_INPUT_SIZE` (the thesis uses 256; a
  CPU trains 128 in reasonable time and the detector sees global appearance,
  not fine detail). Images are resized to it (area interpolation when shrinking).
* normalisation: none beyond the reader's [0, 1] (DICOM windowing and LUTs are
  applied there); no dataset statistics, so an image's score never depends on
  other images (thesis §4.1.3 only resizes).
* colour: scored as luminance (the ``ood-grey`` preset); the share of colour
  images is recorded.
* augmentation: none for the reconstruction models (flips or rotations would
  teach them that those images are normal); TEND's fake-OOD distortions are
  its contrastive signal (the shipped nine).
* schedule: Adam at a constant 1e-3 (thesis); epochs set so that each stage
  makes about as many optimisation steps as the shipped detectors did
  (within bounds), early stopping after :data:`PATIENCE` validations without a
  better AUROC, the best validated state kept.
* class balance: one-class training on the ID images; with several ID
  classes, their counts are recorded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medlim.core.training import TrainingPlan
from medlim.curation.ood.distortions import EXTRA_DISTORTIONS, TRAIN_DISTORTIONS
from medlim.curation.ood.train import OodTrainingConfig
from medlim.errors import ParameterError

__all__ = ["MAX_INPUT_SIZE", "PATIENCE", "DetectorPlan", "plan_input_size", "plan_detector"]

#: Largest planned input side (thesis 256; ``--input-size`` goes beyond).
MAX_INPUT_SIZE = 128
#: Validations without a better validation AUROC before a stage stops.
PATIENCE = 20
#: Optimisation steps per stage of the shipped detectors (≈ 600 training images).
_TARGET_STEPS = {"ae": 1100, "tend": 5600, "cvad": 2800, "disc": 230}
#: Epoch bounds per stage.
_EPOCH_BOUNDS = {"ae": (5, 200), "tend": (10, 300), "cvad": (10, 300), "disc": (3, 60)}
_STEP = {"tend": 64, "cvad": 32}
#: Settings each kind uses (the rest of OodTrainingConfig does not apply to it).
_USED = {
    "common": ("input_size", "width", "batch_size", "lr", "seed", "threads"),
    "tend": ("embedding", "ae_epochs", "tend_epochs", "warmup_epochs", "margin", "weight", "distortions",
             "train_encoder"),
    "cvad": ("latent", "cvad_epochs", "disc_epochs", "latent_noise", "recon_weight"),
}


@dataclass(frozen=True)
class DetectorPlan:
    """A planned run: the training settings, the early-stopping patience and the recorded plan.

    Attributes:
        config: the settings every stage trains with.
        patience: validations without improvement before a stage stops.
        plan: what the manifest records (settings, reasons, what was overridden).
    """

    config: OodTrainingConfig
    patience: int
    plan: TrainingPlan


def plan_input_size(kind: str, median_height: int | None, median_width: int | None) -> tuple[int, str]:
    """The input side for ``kind`` from the median image size, and the reason.

    Examples: 512×400 px → 128 (capped); 100×90 px for TEND → 64; 32×32 px for CVAD → 32; 100×300 px for
    CVAD → 64 (its branch latent of 4·256 values needs (side / 16)² to divide 1,024: 32, 64 or 128).
    """
    if kind not in _STEP:
        raise ParameterError(f"`kind` must be 'tend' or 'cvad', {kind!r} is given.")
    step = _STEP[kind]
    if not median_height or not median_width:
        return 64, "no image size measured; the shipped detectors' 64"
    side = min(int(median_height), int(median_width))
    if kind == "cvad":
        size = max([step] + [s for s in (32, 64, 128) if s <= min(side, MAX_INPUT_SIZE)])
        rule = "the largest of 32, 64 and 128 not above the side (the sides CVAD's latent of 256 takes)"
    else:
        size = min(MAX_INPUT_SIZE, max(step, (side // step) * step))
        rule = f"a multiple of {step} (the {kind.upper()} network's step) not above the side"
    return size, (f"median image {median_height}×{median_width} px: its shorter side {side} → {size}, {rule}, "
                  f"between {step} and {MAX_INPUT_SIZE} (the thesis uses 256; {MAX_INPUT_SIZE} keeps CPU training "
                  "practical)")


def _epochs(stage: str, batches_per_epoch: int) -> int:
    low, high = _EPOCH_BOUNDS[stage]
    return int(min(high, max(low, math.ceil(_TARGET_STEPS[stage] / max(1, batches_per_epoch)))))


def _tend_stages(batches: int) -> tuple[dict[str, Any], dict[str, str]]:
    """TEND's epochs, margin, encoder and distortions (warm-up set after overrides), with reasons."""
    settings = {"ae_epochs": _epochs("ae", batches), "tend_epochs": _epochs("tend", batches), "margin": 500.0,
                "train_encoder": True, "distortions": tuple(TRAIN_DISTORTIONS) + tuple(EXTRA_DISTORTIONS)}
    reasons = {
        "epochs": f"about {_TARGET_STEPS['ae']} autoencoder and {_TARGET_STEPS['tend']} TEND optimisation steps "
                  f"(the shipped detectors') at {batches} batches per epoch, within bounds",
        "warmup_epochs": "1/15 of the TEND epochs (shipped 10 of 150) before the margin loss starts",
        "margin": "R = 500 with the encoder trained in stage 2 (the shipped TEND settings, chosen on validation)",
        "augmentation": "none on the ID images; fake OOD from the nine distortions (thesis six + spread, "
                        "motion blur, cut-paste) is TEND's contrastive signal",
    }
    return settings, reasons


def _cvad_stages(batches: int) -> tuple[dict[str, Any], dict[str, str]]:
    """CVAD's generator and discriminator epochs, latent and reconstruction weight, with reasons."""
    settings = {"cvad_epochs": _epochs("cvad", batches), "disc_epochs": _epochs("disc", batches), "latent": 256,
                "recon_weight": 300.0}
    reasons = {
        "epochs": f"about {_TARGET_STEPS['cvad']} generator and {_TARGET_STEPS['disc']} discriminator optimisation "
                  f"steps (the shipped CVAD's) at {batches} batches per epoch, within bounds",
        "recon_weight": "1/(2σ²) = 300 (the shipped CVAD: sharper, more class-specific reconstructions)",
        "augmentation": "none: flips or rotations would teach the reconstruction that such images are normal",
    }
    return settings, reasons


def plan_detector(
    kind: str,
    *,
    median_height: int | None,
    median_width: int | None,
    n_train: int,
    id_counts: Mapping[str, int],
    colour: int,
    images: int,
    negatives: str,
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
) -> DetectorPlan:
    """Plan a TEND or CVAD run on a user's data.

    Args:
        kind: ``"tend"`` or ``"cvad"``.
        median_height, median_width: median image size in pixels (from the dataset check).
        n_train: ID training images.
        id_counts: ID class → training images.
        colour: how many images read were colour.
        images: how many images were read.
        negatives: where the validation's OOD images come from (one line, for the record).
        seed: training seed.
        overrides: settings given on the command line (``OodTrainingConfig`` field → value).

    Returns:
        A :class:`DetectorPlan`.
    """
    overrides = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    size, size_reason = plan_input_size(kind, median_height, median_width)
    batch = int(overrides.get("batch_size") or min(16 if kind == "tend" else 32, max(2, n_train // 4)))
    batches = max(1, n_train // batch)
    settings: dict[str, Any] = {"input_size": size, "width": 8, "batch_size": batch, "lr": 1e-3, "seed": seed,
                                "threads": 1}
    reasons = {
        "input_size": size_reason,
        "width": "the shipped detectors' base width w = 8 (thesis 16): small files, CPU-friendly",
        "batch_size": f"{n_train} ID training images: a quarter of them, between 2 and "
                      f"{16 if kind == 'tend' else 32} (the shipped setting)",
        "lr": "Adam at a constant 1e-3 (thesis §4.1.3)",
        "normalisation": "pixels in [0, 1] as the reader returns them (DICOM windowing and LUTs applied there); "
                         "no dataset statistics, so an image's score never depends on other images",
        "colour": (f"{colour} of {images} images are colour; scored as luminance (ood-grey preset)" if colour
                   else "grey images (ood-grey preset)"),
        "class_balance": "one-class training on the ID images (" + ", ".join(
            f"{name} {count}" for name, count in sorted(id_counts.items())) + ")",
        "validation": f"best state by validation AUROC (ID validation images vs {negatives}); ties broken by "
                      "the separation of the two score distributions",
        "early_stopping": f"after {PATIENCE} validations without a better AUROC (each stage)",
    }
    stage_settings, stage_reasons = (_tend_stages if kind == "tend" else _cvad_stages)(batches)
    settings.update(stage_settings)
    reasons.update(stage_reasons)
    for key, value in overrides.items():
        planned = settings.get(key)
        reasons[key] = "given on the command line" + (f" (planned: {planned})" if planned is not None else "")
    settings.update(overrides)
    if kind == "tend" and "warmup_epochs" not in overrides:
        tend_epochs = int(settings["tend_epochs"])
        settings["warmup_epochs"] = min(max(1, round(tend_epochs / 15)), tend_epochs - 1)
    try:
        config = OodTrainingConfig(**{k: v for k, v in settings.items() if k in OodTrainingConfig.__dataclass_fields__})
    except TypeError as exc:  # pragma: no cover - an unknown override is a programming error
        raise ParameterError(f"bad training settings: {exc}") from None
    every = config.to_dict()
    recorded = {**{key: every[key] for key in _USED["common"] + _USED[kind]}, "patience": PATIENCE}
    plan = TrainingPlan(task=kind, settings=recorded, reasons=reasons, overridden=tuple(sorted(overrides)))
    return DetectorPlan(config=config, patience=PATIENCE, plan=plan)

"""The training plan of an OSCARS family or a PMS model, derived from a user's dataset (issue 12; thesis §6.1.3, §6.2.3).

As nnU-Net configures itself from a dataset fingerprint, :func:`plan_oscars`
and :func:`plan_pms` turn what the dataset check measured (image sizes,
counts per class or label) into the settings of
:class:`~medlim.curation.retrieval.train.RetrievalTrainingConfig` (and, for
OSCARS, of the per-class anomaly detectors behind its bins), with the reason
for each; settings given on the command line win and are marked as such. The
plan is recorded in every manifest entry the run writes (``plan``).

Rules (the shipped phantom models' settings are the starting point; see
:mod:`medlim.curation.retrieval.recipe`):

* input side: the median image's shorter side, rounded down to a multiple of
  32, between 32 and :data:`MAX_INPUT_SIZE` = 64 for PMS, the shipped
  models' side; for an OSCARS family down to 32, 64 or
  :data:`OSCARS_MAX_INPUT_SIZE` = 128, the sides its per-class CVADs take
  (the thesis uses 224 with a pre-trained backbone; a CPU trains 64 in
  minutes, and retrieval by finding works on global appearance). Images
  are resized to it (area interpolation when shrinking). OSCARS's cap was
  chosen on validation: 7 × 120 external and 7 × 200 internal radiographs of
  256 px (seeds 1, 2), scored on 7 × 50 external radiographs of seed 9001,
  ``--max-minutes 20``, one thread: precision@10 0.715 at 64 and 0.758 at 128
  (triplet 0.675 and 0.754; S@10 0.273 / 0.278 and 0.270 / 0.275).
* normalisation: none beyond the reader's [0, 1] in grey (DICOM windowing and
  LUTs applied there; colour read as luminance, the ``ood-grey`` preset); no
  dataset statistics, so an image's vector never depends on other images.
* augmentation: PMS — a random zoom-crop (≤ 10 % of the side) and a small
  contrast and brightness jitter of every training batch (chosen on
  validation chest films, see the ``augment`` reason); an OSCARS family —
  the ``strong`` augmentation (zoom, turns of ±10°, contrast, gamma, noise,
  blur, lower resolution; :class:`~medlim.curation.retrieval.train.StrongAugmentation`),
  chosen on validation radiographs (the ``augmentation`` reason). No flips:
  orientation and laterality carry meaning in radiographs.
* negatives (OSCARS family): semi-hard (the ``mining`` reason; a stated
  deviation from the thesis's random draw, ``--mining random`` restores it).
* OSCARS's λ (Eq. 6.1): 0.2 instead of the thesis's 0.05 (the ``oscars_weight``
  reason; a stated deviation, ``--oscars-lambda 0.05`` restores it).
* schedule: Adam from 1e-3 with nnU-Net's poly decay; epochs set so that
  training makes three times the optimisation steps of the shipped
  embeddings and twice those of the shipped PMS (within bounds); the state
  with the best validation precision@10 (PMS: full-match precision@10 with
  the default DS) is kept; early stopping after :data:`PATIENCE` validations
  without improvement (a quarter of the epochs when more);
  ``--max-minutes`` stops earlier.

The augmentation, the poly decay and the longer schedule were chosen on
validation folders — 600 chest films (seed 1) scored on 600 of seed 5000,
and 7 × 120 external with 7 × 200 internal radiographs (seeds 1, 2) scored
on 7 × 50 external radiographs of seed 5000 — starting from the shipped
recipe's settings (no augmentation, constant rate, shipped steps). PMS
full-match precision@10 with the symmetric DS: 0.31, with augmentation
0.41, plus poly decay 0.42, plus twice the steps 0.47. OSCARS (with
augmentation) precision@10 0.59 → 0.73 with poly decay and three times the
steps (S@10 0.256 → 0.273; its triplet baseline 0.64 → 0.70, S@10 0.268 → 0.285).
* class balance: every anchor gets a partner of its class (OSCARS: class and
  anomaly bin), so each class takes part in proportion to its images; PMS
  weighs its proxy loss by each label's positive rate τ (eq. 6.3). Counts are
  recorded.
* threads: half the CPU cores, at most 4 (the phantom recipe uses one, for
  bit-for-bit reproduction).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medlim.core.training import TrainingPlan
from medlim.curation.retrieval.train import RetrievalTrainingConfig
from medlim.errors import ParameterError

__all__ = ["MAX_INPUT_SIZE", "OSCARS_MAX_INPUT_SIZE", "PATIENCE", "DETECTOR_SHARE", "RetrievalPlan", "plan_input_size",
           "plan_oscars", "plan_pms"]

#: Largest planned input side (the shipped models'; ``--input-size`` goes beyond).
MAX_INPUT_SIZE = 64
#: Largest planned input side of an OSCARS family (its embeddings, baselines and anomaly detectors).
OSCARS_MAX_INPUT_SIZE = 128
#: Smallest input side (one step of the CVAD detectors).
MIN_INPUT_SIZE = 32
#: Sides an OSCARS family may plan: its per-class CVADs take 32, 64 and 128 (``(side / 16)²`` divides 128).
OSCARS_SIDES = (32, 64, 128)
#: Validations without a better validation score before training stops.
PATIENCE = 10
#: Share of the time left that the OSCARS anomaly detectors may use under ``--max-minutes``.
DETECTOR_SHARE = 0.3
#: Optimisation steps planned: 3× the shipped embeddings' (30 epochs × ~31 batches) and 2× the shipped
#: PMS's (5 + 10 epochs × ~37 batches), with poly decay — chosen on validation folders (module docstring).
_TARGET_STEPS = {"embedding": 2800, "warmup": 380, "joint": 750, "generator": 360, "discriminator": 120}
_EPOCH_BOUNDS = {"embedding": (10, 300), "warmup": (2, 60), "joint": (4, 120), "generator": (10, 60),
                 "discriminator": (3, 20)}


@dataclass(frozen=True)
class RetrievalPlan:
    """A planned run.

    Attributes:
        config: the settings every network of the run trains with.
        patience: validations without improvement before a network stops.
        detector: the per-class anomaly detectors' settings (OSCARS), else ``None``.
        plan: what the manifest records (settings, reasons, what was overridden).
    """

    config: RetrievalTrainingConfig
    patience: int
    detector: Any
    plan: TrainingPlan


def plan_input_size(median_height: int | None, median_width: int | None, *,
                    cap: int = MAX_INPUT_SIZE) -> tuple[int, str]:
    """The input side from the median image size (at most ``cap``), and the reason.

    Examples: 512×400 px → 64 (capped at 64), → 128 (capped at 128); 48×40 px → 32; 32×32 px → 32;
    160×160 px → 64 for PMS (160 capped), 128 for an OSCARS family (32, 64 or 128, as its detectors need);
    100×100 px → 64 both ways.
    """
    if not median_height or not median_width:
        return MAX_INPUT_SIZE, f"no image size measured; the shipped models' {MAX_INPUT_SIZE}"
    side = min(int(median_height), int(median_width))
    if cap <= MAX_INPUT_SIZE:
        size = min(cap, max(MIN_INPUT_SIZE, (side // MIN_INPUT_SIZE) * MIN_INPUT_SIZE))
        rule = f"a multiple of {MIN_INPUT_SIZE} not above the side"
    else:  # the per-class CVADs need (side / 16)² to divide 4 · latent = 128: 32, 64 or 128
        size = max([MIN_INPUT_SIZE] + [s for s in OSCARS_SIDES if s <= min(side, cap)])
        rule = f"the largest of {', '.join(map(str, OSCARS_SIDES))} not above the side (the anomaly detectors' sides)"
    why = ("the shipped models' side" if cap == MAX_INPUT_SIZE else
           f"chosen on validation radiographs: precision@10 0.758 at 128 against 0.715 at {MAX_INPUT_SIZE}")
    return size, (f"median image {median_height}×{median_width} px: its shorter side {side} → {size}, {rule}, "
                  f"between {MIN_INPUT_SIZE} and {cap} ({why}; the thesis uses 224 with a pre-trained backbone)")


def _epochs(stage: str, batches_per_epoch: int) -> int:
    low, high = _EPOCH_BOUNDS[stage]
    return int(min(high, max(low, math.ceil(_TARGET_STEPS[stage] / max(1, batches_per_epoch)))))


def _patience(epochs: int) -> int:
    """Validations without improvement before stopping: :data:`PATIENCE`, or a quarter of the epochs when more."""
    return max(PATIENCE, math.ceil(epochs / 4))


#: Why an OSCARS family plans the strong augmentation and semi-hard negatives (validation figures).
STRONG_AUGMENTATION_REASON = (
    "strong augmentation of every training batch (a stated addition; same for every method of the family): "
    "zoom-crop up to 20 % of the side, turns up to ±10°, contrast ×(1 ± 0.3) and brightness ± 0.1 on every image; "
    "gamma 0.67–1.5, Gaussian noise up to σ 0.05, blur σ 0.5–1.5 px and down-sampling to 0.5–1 of the side on "
    "half each; no flips. Sites' radiographs differ in exactly these (processing, noise, resolution, "
    "positioning). Chosen on validation radiographs (the triplet baseline alone, 80 epochs at 128 px on 7 × 120 "
    "external radiographs of seed 1, scored on 7 × 50 of seed 9001: precision@10 0.799 light, 0.793 strong with "
    "random negatives; 0.829 light, 0.846 strong with semi-hard ones)")
SEMIHARD_REASON = (
    "semi-hard negatives (FaceNet; a stated deviation — the thesis draws every partner at random): OSCARS's "
    "inter-class negative and the triplet baseline's negative are, among the batch's images of other classes "
    "farther from the anchor than the hinge's other member, the closest. The hardest negative collapsed the "
    "embedding on validation (precision@10 0.47 after 40 epochs); chosen on validation radiographs (figures in "
    "the augmentation reason; the planned command on seeds 1 / 2, scored on seed 9001: OSCARS precision@10 0.758 → "
    "0.836, its triplet baseline 0.751 → 0.825, with this, the strong augmentation and the budget-following "
    "schedule). OSCARS's intra-class negative (its own class, another anomaly bin) is mined the same way, against "
    "the positive, before the inter-class one ('semihard-all'): in two paired runs of the planned command on those "
    "validation folders OSCARS precision@10 0.812 and 0.837 against 0.804 and 0.810 with the intra-class negative "
    "drawn at random ('semihard'), S@10 0.280 and 0.281 against 0.288 and 0.297 (lower is better); the triplet "
    "baseline has no intra-class negative and is the same either way")

#: OSCARS's λ planned for a user's folders (Eq. 6.1's weight of the intra-class hinge; the thesis 0.05).
PLANNED_OSCARS_LAMBDA = 0.2
OSCARS_LAMBDA_REASON = (
    "λ = 0.2, the weight of OSCARS's intra-class hinge (a stated deviation — the thesis's λ is 0.05, which the "
    "phantom recipes keep; --oscars-lambda 0.05 restores it). Chosen on validation radiographs by the issue's "
    "rule — S@10 below the triplet baseline's at no more than 0.02 lower precision@10 on both validation sets, "
    "then the higher mean precision@10 — from one planned 20-minute run per λ and set (7 × 120 external, 7 × 200 "
    "internal; set 1 = seeds 1 / 2 scored on 9001, set 2 = seeds 13 / 14 scored on 9200; OSCARS precision@10 / S@10 "
    "against its triplet baseline's): λ 0.05: set 1 0.812 / 0.280 vs 0.825 / 0.292 and 0.837 / 0.281 vs 0.829 / "
    "0.282, set 2 0.837 / 0.287 vs 0.835 / 0.280 (S@10 above); λ 0.2: 0.844 / 0.283 vs 0.804 / 0.290, 0.822 / "
    "0.269 vs 0.816 / 0.298; λ 0.3: 0.807 / 0.280 vs 0.805 / 0.286, 0.797 / 0.263 vs 0.815 / 0.290; λ 0.5: 0.834 / "
    "0.261 vs 0.839 / 0.281, 0.806 / 0.243 vs 0.828 / 0.286 (precision@10 0.022 lower). A larger λ lowers S@10 "
    "(closer anomaly scores among the retrieved) at some cost in precision; the triplet baseline has no such term")


def _threads() -> int:
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def _common(size: int, size_reason: str, colour: int, images: int, seed: int) -> tuple[dict[str, Any], dict[str, str]]:
    settings: dict[str, Any] = {"input_size": size, "width": 16, "lr": 1e-3, "lr_schedule": "poly", "seed": seed,
                                "threads": _threads(), "augment": True}
    reasons = {
        "input_size": size_reason,
        "width": "the shipped models' ResNet-18 base width 16 (128-d vectors; torchvision 64)",
        "lr": "Adam from 1e-3 (the shipped models; thesis SGD 1e-3 from pre-trained weights)",
        "lr_schedule": "poly decay lr·(1 − f)^0.9 (nnU-Net's), f the larger of the epoch fraction and (OSCARS family) "
                       "the share of its --max-minutes time spent, so a run the budget cuts still ends annealed (the "
                       "SCU-Net and Mask R-CNN trainers' rule), over three times the shipped embeddings' "
                       "and twice the shipped PMS's optimisation steps: on validation folders (7 × 120 radiographs, "
                       "600 chest films, both with augmentation) precision@10 of OSCARS rose from 0.59 to 0.73 and "
                       "PMS full-match precision@10 from 0.41 to 0.47 against a constant rate and the shipped steps",
        "threads": "half the CPU cores, at most 4",
        "normalisation": "pixels in [0, 1] as the reader returns them (DICOM windowing and LUTs applied there); "
                         "no dataset statistics, so an image's vector never depends on other images",
        "colour": (f"{colour} of {images} images are colour; read as luminance (ood-grey preset)" if colour
                   else "grey images (ood-grey preset)"),
        "augment": "light augmentation of every training batch: a random zoom-crop of up to 10 % of the side, "
                   "contrast ×(1 ± 0.1) and brightness ± 0.05; no flips or rotations (orientation and laterality "
                   "carry meaning in radiographs). Chosen on validation chest films (PMS on 600 films, seed 5000: "
                   "full-match precision@10 0.31 → 0.41 with it); the phantom recipes train without it",
        "early_stopping": f"after {PATIENCE} validations without a better validation score, or a quarter of the "
                          "epochs when that is more; the best state is kept",
    }
    return settings, reasons


def _finish(task: str, settings: dict[str, Any], reasons: dict[str, str], overrides: Mapping[str, Any],
            extra: Mapping[str, Any]) -> tuple[RetrievalTrainingConfig, TrainingPlan]:
    """Apply the command line's settings, build the config and the recorded plan."""
    for key in overrides:
        planned = settings.get(key, extra.get("detector", {}).get("generator_epochs") if key == "detector_epochs"
                               else None)
        reasons[key] = "given on the command line" + (f" (planned: {planned})" if planned is not None else "")
    settings.update({k: v for k, v in overrides.items() if k in RetrievalTrainingConfig.__dataclass_fields__})
    try:
        config = RetrievalTrainingConfig(**{k: v for k, v in settings.items()
                                            if k in RetrievalTrainingConfig.__dataclass_fields__})
    except TypeError as exc:  # pragma: no cover - an unknown override is a programming error
        raise ParameterError(f"bad training settings: {exc}") from None
    recorded = {**settings, **dict(extra), "patience": _patience(int(settings["epochs"])), "device": "cpu"}
    return config, TrainingPlan(task=task, settings=recorded, reasons=reasons, overridden=tuple(sorted(overrides)))


def _detector_config(size: int, per_class: Mapping[str, int], seed: int, threads: int,
                     overrides: Mapping[str, Any]) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """The per-class CVADs behind OSCARS's bins, with their recorded settings and reasons."""
    from medlim.curation.shift.detectors import DetectorConfig

    smallest = min(per_class.values()) if per_class else 0
    batches = max(1, (smallest - smallest // 5) // 16)  # every fifth image is held back for the reference range
    generator = int(overrides.get("detector_epochs") or _epochs("generator", batches))
    discriminator = max(1, generator // 3) if overrides.get("detector_epochs") else _epochs("discriminator", batches)
    config = DetectorConfig(kind="cvad", input_size=size, epochs=generator, head_epochs=discriminator, seed=seed,
                            threads=threads)
    settings = {"detector": {"kind": "cvad", "input_size": size, "width": config.width, "latent": config.latent,
                             "generator_epochs": generator, "discriminator_epochs": discriminator,
                             "batch_size": config.batch_size, "share_of_budget": DETECTOR_SHARE}}
    reasons = {"detector": f"MedShift's per-class CVAD on the internal images of each class (thesis §6.1.2), "
                           f"about {_TARGET_STEPS['generator']} generator and {_TARGET_STEPS['discriminator']} "
                           f"discriminator steps for the smallest class ({smallest} internal images), within "
                           f"bounds; under --max-minutes at most {DETECTOR_SHARE:.0%} of the time left"}
    return config, settings, reasons


def plan_oscars(*, median_height: int | None, median_width: int | None, n_train: int,
                class_counts: Mapping[str, int], internal_counts: Mapping[str, int], colour: int, images: int,
                seed: int = 0, overrides: Mapping[str, Any] | None = None) -> RetrievalPlan:
    """Plan an OSCARS family (OSCARS, its triplet and classification baselines, the detectors) on a user's data.

    Args:
        median_height, median_width: median external image size in pixels (from the dataset check).
        n_train: external training images.
        class_counts: class → external training images.
        internal_counts: class → internal images (the detectors' data).
        colour: how many images read were colour; images: how many were read.
        seed: training seed.
        overrides: settings given on the command line (config fields, ``detector_epochs``).
    """
    overrides = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    planned_size, size_reason = plan_input_size(median_height, median_width, cap=OSCARS_MAX_INPUT_SIZE)
    settings, reasons = _common(planned_size, size_reason, colour, images, seed)
    size = int(overrides.get("input_size", planned_size))
    anchors = int(overrides.get("anchors") or 32)
    batches = max(1, math.ceil(n_train / anchors))
    settings.update(anchors=anchors, epochs=_epochs("embedding", batches))
    reasons["anchors"] = "32 anchors per batch, each with one partner of its class (and bin) — the shipped setting"
    reasons["epochs"] = (f"about {_TARGET_STEPS['embedding']} optimisation steps (three times the shipped models') at "
                         f"{batches} batches per epoch, within bounds; every method of the family gets the same "
                         "schedule")
    reasons["class_balance"] = ("anchors drawn uniformly over the images, each with a partner of its class: "
                                + ", ".join(f"{name} {count}" for name, count in sorted(class_counts.items())))
    reasons["validation"] = ("best state by validation precision@10 (leave-one-out on the validation images); ties "
                             "broken by the lower S@10")
    settings.update(augmentation="strong", mining="semihard-all", oscars_weight=PLANNED_OSCARS_LAMBDA)
    reasons["augmentation"] = STRONG_AUGMENTATION_REASON
    reasons["mining"] = SEMIHARD_REASON
    reasons["oscars_weight"] = OSCARS_LAMBDA_REASON
    detector, detector_settings, detector_reasons = _detector_config(size, internal_counts, seed,
                                                                     settings["threads"], overrides)
    reasons.update(detector_reasons)
    config, plan = _finish("oscars", settings, reasons, overrides, detector_settings)
    return RetrievalPlan(config=config, patience=_patience(config.epochs), detector=detector, plan=plan)


def plan_pms(*, median_height: int | None, median_width: int | None, n_train: int, label_counts: Mapping[str, int],
             colour: int, images: int, seed: int = 0, overrides: Mapping[str, Any] | None = None) -> RetrievalPlan:
    """Plan a PMS model on a user's multi-label data (arguments as :func:`plan_oscars`; ``label_counts``:
    label → training images carrying it)."""
    overrides = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    planned_size, size_reason = plan_input_size(median_height, median_width)
    settings, reasons = _common(planned_size, size_reason, colour, images, seed)
    batch = int(overrides.get("batch_size") or min(32, max(2, n_train // 4)))
    batches = max(1, n_train // batch)
    settings.update(batch_size=batch, warmup_epochs=_epochs("warmup", batches), epochs=_epochs("joint", batches),
                    branch_dim=256, bank_size=1000)
    reasons["batch_size"] = f"32 (the shipped setting), at most a quarter of the {n_train} training images"
    reasons["epochs"] = (f"about {_TARGET_STEPS['warmup']} warm-up and {_TARGET_STEPS['joint']} joint optimisation "
                         f"steps (twice the shipped pms-chest's 5 + 10 epochs, the thesis's) at {batches} batches "
                         "per epoch")
    reasons["bank_size"] = "M = 1000 per class, 256-d class embeddings (thesis)"
    reasons["class_balance"] = ("L_pms weighs each label by its positive rate τ (eq. 6.3); positives per label: "
                                + ", ".join(f"{name} {count}" for name, count in sorted(label_counts.items())))
    reasons["validation"] = ("best state by validation full-match precision@10 with the default DS (leave-one-out "
                             "on the validation images), checked after every joint epoch; ties broken by "
                             "partial-match precision@10")
    config, plan = _finish("pms", settings, reasons, overrides, {})
    return RetrievalPlan(config=config, patience=_patience(config.epochs), detector=None, plan=plan)

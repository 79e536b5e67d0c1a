"""'Unlike my training data' for SCU-Net: features of a mammogram as the model sees it, and calibration (issue 13).

The check itself is model-agnostic (:mod:`medlim.core.familiarity`); what is
BAC-specific lives here: the features are computed on the weights' preprocessed
image (``I`` of thesis eq. 3.8–3.9: disk median, breast mask, contrast stretch)
inside the breast mask, so analysis reuses the image inference already made
(no second preprocessing), and calibration reproduces a model's training
images:

* shipped phantom-trained weights: :func:`training_phantoms` reads the seed,
  count and sizes from the manifest entry's recorded ``medlim train scunet``
  command, :func:`calibrate_phantom_weights` regenerates those phantoms (the
  first ``n``), fits the reference and chooses the limit on validation phantoms
  of the same family (seed :data:`VALIDATION_SEED`, never the held-out seed
  90001); ``medlim weights calibrate-familiarity NAME@VERSION`` writes the file;
* weights trained on a person's own folder: :func:`calibrate_from_images` on
  the 8-bit training and validation images of that run.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from medlim.core.familiarity import (
    FamiliarityCheck,
    FamiliarityResult,
    fit_familiarity,
    image_features,
    unlike_training_warning,
)
from medlim.errors import ParameterError, WeightsError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.weights.entry import WeightsEntry
    from medlim.mammography.preprocess import PreprocessedImage

__all__ = [
    "DEFAULT_CALIBRATION_N",
    "DEFAULT_VALIDATION_N",
    "FOR_PROCESSING_REASON",
    "MAMMOGRAM_KIND",
    "VALIDATION_SEED",
    "TrainingPhantoms",
    "assess_mammogram",
    "calibrate_from_images",
    "calibrate_phantom_weights",
    "calibration_command",
    "mammogram_features",
    "phantom_features",
    "preprocessed_features",
    "check_preprocessed",
    "checked_view",
    "GREY_AIR_NOTE",
    "training_phantoms",
]

#: What SCU-Net expects, for the warning ("check that it is a mammogram of the kind this model expects").
MAMMOGRAM_KIND = "a mammogram"

#: ``unlike_training.reason`` of a "For Processing" file (flagged whatever its score).
FOR_PROCESSING_REASON = "a 'For Processing' image; the model was trained on 'For Presentation' images"

#: Phantom seed of the validation images that choose the limit (the cut-off's validation seed; never 90001).
VALIDATION_SEED = 80_001

#: Training images the reference is fitted on by default (at most the training count).
DEFAULT_CALIBRATION_N = 80

#: Validation phantoms by default (50: at most one may lie above the limit for a ≤ 2 % flag rate).
DEFAULT_VALIDATION_N = 50

#: ``medlim train scunet`` defaults for the phantom recipe (medlim/cli/train.py, PhantomSpec).
_RECIPE_DEFAULTS = {"seed": 1, "n": 320, "sizes": ("full", "full-small"), "bac_fraction": 0.85}


def preprocessed_features(preprocessed: PreprocessedImage) -> np.ndarray:
    """Features (:data:`medlim.core.familiarity.FEATURE_NAMES`) of the image SCU-Net sees, inside the breast mask
    (of :func:`checked_view`: calibration and scoring read the same view)."""
    view = checked_view(preprocessed)
    return image_features(view.grey, foreground=view.breast_mask)


def check_preprocessed(check: FamiliarityCheck, preprocessed: PreprocessedImage) -> FamiliarityResult:
    """Score an already preprocessed mammogram against a model's check (a few milliseconds; :func:`checked_view`)."""
    view = checked_view(preprocessed)
    return check.check_image(view.grey, foreground=view.breast_mask)


def checked_view(preprocessed: PreprocessedImage) -> PreprocessedImage:
    """What the check scores: the view as it came when the preset's background floor made its air black
    (:attr:`~medlim.mammography.preprocess.PreprocessedImage.as_read`; a radiograph's grey air made black would
    look more like a mammogram), else the view the model saw."""
    return preprocessed if preprocessed.as_read is None else preprocessed.as_read


#: Added to the warning of a flagged view whose air the preset's background floor made black.
GREY_AIR_NOTE = ("Its background (the air around the breast) is not black; the model was given the view with "
                 "the air set to black.")


def assess_mammogram(
    check: FamiliarityCheck, preprocessed: PreprocessedImage, *, presentation_intent: str | None = None
) -> tuple[FamiliarityResult, str | None]:
    """The check's result for one mammogram and the warning to show, if any.

    A "For Processing" file is flagged whatever its score: SCU-Net weights are
    trained on "For Presentation" images, and a raw image can look like one once
    its grey levels are stretched (the reader already warns about such a file, so
    no second warning is added unless the score is above the limit too).

    Args:
        check: the weights' check.
        preprocessed: the image as the model saw it (from inference; not preprocessed again).
        presentation_intent: the file's ``"FOR PRESENTATION"``/``"FOR PROCESSING"``, or ``None``.

    Returns:
        ``(result, warning)``: the warning is ``None`` unless the score is above the limit.
    """
    result = check_preprocessed(check, preprocessed)
    warning = unlike_training_warning(result, kind=MAMMOGRAM_KIND) if result.flagged else None
    if warning is not None and preprocessed.as_read is not None:
        warning += " " + GREY_AIR_NOTE
    if not result.flagged and (presentation_intent or "").upper() == "FOR PROCESSING":
        result = dataclasses.replace(result, flagged=True, reason=FOR_PROCESSING_REASON)
    return result, warning


def mammogram_features(image: np.ndarray, preset: str) -> np.ndarray:
    """Preprocess an 8-bit grey image by ``preset`` and compute its features.

    Args:
        image: ``np.uint8[H, W]``.
        preset: the weights' preprocessing preset name.
    """
    from medlim.mammography.preprocess import preprocess_image

    return preprocessed_features(preprocess_image(image, preset))


@dataclass(frozen=True)
class TrainingPhantoms:
    """The phantom series a model was trained on, as its recorded command says.

    Attributes:
        seed: series seed.
        count: images in training.
        sizes: phantom sizes alternated by image index.
        bac_fraction: fraction of patients with BAC.
    """

    seed: int
    count: int
    sizes: tuple[str, ...]
    bac_fraction: float = 0.85

    def sample(self, n: int) -> TrainingPhantoms:
        """The first ``min(n, count)`` training images."""
        if n < 8:
            raise ParameterError(f"calibration needs at least 8 images; --n {n} is given.")
        return TrainingPhantoms(self.seed, min(n, self.count), self.sizes, self.bac_fraction)


def _option(tokens: list[str], name: str) -> str | None:
    for i, token in enumerate(tokens):
        if token == name and i + 1 < len(tokens):
            return tokens[i + 1]
        if token.startswith(name + "="):
            return token.split("=", 1)[1]
    return None


def training_phantoms(entry: WeightsEntry) -> TrainingPhantoms:
    """The training phantoms of phantom-trained SCU-Net weights, from the entry's recorded command.

    Raises:
        WeightsError: the weights were not trained by ``medlim train scunet`` on
            ``medlim.phantoms.mammogram`` phantoms (imported weights, a person's folder).
    """
    command = entry.provenance.command or ""
    tokens = shlex.split(command)
    generator = entry.provenance.data_generator or ""
    if "scunet" not in tokens or not generator.startswith("medlim.phantoms.mammogram") or "--data" in tokens:
        raise WeightsError(
            f"{entry.label} was not trained on phantoms medlim can regenerate (command {command!r}); "
            "its training-data check is calibrated when it is trained (calibrate_from_images)."
        )
    seed = _option(tokens, "--seed")
    count = _option(tokens, "--n")
    sizes = _option(tokens, "--sizes")
    return TrainingPhantoms(
        seed=int(seed) if seed is not None else int(_RECIPE_DEFAULTS["seed"]),
        count=int(count) if count is not None else int(_RECIPE_DEFAULTS["n"]),
        sizes=tuple(s for s in sizes.split(",") if s) if sizes else tuple(_RECIPE_DEFAULTS["sizes"]),
        bac_fraction=float(_RECIPE_DEFAULTS["bac_fraction"]),
    )


def _phantom_features(job: tuple[int, int, str, float, str]) -> np.ndarray:
    from medlim.phantoms.mammogram import generate_mammogram

    seed, index, size, bac_fraction, preset = job
    # The 8-bit image the training recipe made (medlim.mammography.recipe._one).
    phantom = generate_mammogram(seed=seed, index=index, size=size, bac_fraction=bac_fraction)
    image = np.clip(np.rint(phantom.image * 255.0), 0, 255).astype(np.uint8)
    return mammogram_features(image, preset)


def phantom_features(
    phantoms: TrainingPhantoms, preset: str, *, workers: int | None = None
) -> Iterator[np.ndarray]:
    """Features of phantoms ``0 .. count−1`` of the series (sizes alternated as in training), in order.

    Generation and preprocessing run in ``workers`` processes (default: all CPUs).
    """
    jobs = [(phantoms.seed, i, phantoms.sizes[i % len(phantoms.sizes)], phantoms.bac_fraction, preset)
            for i in range(phantoms.count)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        yield from map(_phantom_features, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_phantom_features, jobs, chunksize=1)


def calibration_command(entry: WeightsEntry, n: int, validation_n: int) -> str:
    """The command that reproduces the check file of ``entry``."""
    command = f"medlim weights calibrate-familiarity {entry.name}@{entry.version}"
    if n != DEFAULT_CALIBRATION_N:
        command += f" --n {n}"
    if validation_n != DEFAULT_VALIDATION_N:
        command += f" --validation-n {validation_n}"
    return command


def calibrate_phantom_weights(
    entry: WeightsEntry,
    *,
    n: int = DEFAULT_CALIBRATION_N,
    validation_n: int = DEFAULT_VALIDATION_N,
    workers: int | None = None,
    progress: Any = None,
) -> FamiliarityCheck:
    """Fit the check of phantom-trained SCU-Net weights on their own training phantoms.

    The reference is fitted on the first ``n`` training phantoms (seed and sizes
    from the recorded command); the limit is the larger of 1.1 × the 99.5 %
    quantile of their scores and the smallest limit that flags at most 2 % of
    ``validation_n`` phantoms of seed :data:`VALIDATION_SEED` (same sizes).

    Args:
        entry: the weights (their preset preprocesses every image).
        n: training phantoms to calibrate on (at most the training count).
        validation_n: validation phantoms.
        workers: processes generating phantoms (default: all CPUs).
        progress: ``progress(done, total)`` after each image.

    Raises:
        WeightsError: weights not trained on regenerable phantoms.
        ParameterError: ``n`` below 8 or ``validation_n`` below 1.
    """
    if validation_n < 1:
        raise ParameterError(f"--validation-n must be at least 1; {validation_n} is given.")
    train = training_phantoms(entry).sample(n)
    validation = TrainingPhantoms(VALIDATION_SEED, validation_n, train.sizes, train.bac_fraction)
    total = train.count + validation.count
    rows = []
    for done, row in enumerate(_chain(phantom_features(train, entry.preset, workers=workers),
                                      phantom_features(validation, entry.preset, workers=workers)), start=1):
        rows.append(row)
        if progress is not None:
            progress(done, total)
    sizes = ",".join(train.sizes)
    selection = {
        "calibration": {"generator": "medlim.phantoms.mammogram", "seed": train.seed, "indices": [0, train.count - 1],
                        "n": train.count, "sizes": sizes, "bac_fraction": train.bac_fraction,
                        "role": "training images of the weights (first n of the recorded command)"},
        "validation": {"generator": "medlim.phantoms.mammogram", "seed": validation.seed,
                       "indices": [0, validation.count - 1], "n": validation.count, "sizes": sizes,
                       "role": "chooses the limit (never the held-out seed 90001)"},
        "preset": entry.preset,
    }
    return fit_familiarity(
        np.stack(rows[: train.count]),
        validation=np.stack(rows[train.count:]),
        source=f"{train.count} training phantoms of {entry.label} (medlim.phantoms.mammogram seed {train.seed}, "
               f"sizes {sizes}), preprocessed by the '{entry.preset}' preset",
        selection=selection,
    )


def _chain(*iterators: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    for iterator in iterators:
        yield from iterator


def calibrate_from_images(
    training: Iterable[np.ndarray],
    validation: Iterable[np.ndarray],
    *,
    preset: str,
    source: str,
    selection: dict[str, Any] | None = None,
) -> FamiliarityCheck:
    """Fit the check of weights trained on a person's own images.

    Args:
        training: the 8-bit grey training images (``np.uint8[H, W]``, as read for
            training), at least 8; a sample of them is fine (e.g. up to 120).
        validation: that run's validation images (not its held-out test images).
        preset: the weights' preprocessing preset.
        source: plain description of the images (never a path or patient name).
        selection: what served what, recorded in the file (e.g. the split's counts and seed).

    Raises:
        ParameterError: fewer than 8 training images.
    """
    train_rows = [mammogram_features(image, preset) for image in training]
    validation_rows = [mammogram_features(image, preset) for image in validation]
    return fit_familiarity(
        np.stack(train_rows) if train_rows else np.zeros((0, 0)),
        validation=np.stack(validation_rows) if validation_rows else None,
        source=source,
        selection={"preset": preset, **(selection or {})},
    )

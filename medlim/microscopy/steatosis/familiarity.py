"""'Unlike my training data' for the steatosis Mask R-CNN: H&E features at a fixed scale, and calibration (issue 13).

The check is model-agnostic (:mod:`medlim.core.familiarity`); what is
steatosis-specific lives here. The network reads the RGB image as it is
(preset ``rgb-unit``: no resampling, tiles of 1024 px), so the features
describe the RGB image itself — grey levels, texture and colour saturation
(an H&E section is pink and purple; a radiograph, a fluorescence image or a
grey picture is not) — on blocks of :data:`BLOCK` × :data:`BLOCK` pixels
whatever the image's size. The core's default grid (a fixed number of blocks)
would describe a 4096 px field at a quarter of a 1024 px tile's scale and flag
a larger field of the same tissue; fixed blocks keep training tiles, validation
crops and whole images comparable.

Calibration reproduces a model's training images:

* the shipped phantom-trained weights: :func:`training_tiles` reads the seed,
  count and size from the entry's recorded ``medlim train steatosis`` command,
  :func:`calibrate_phantom_weights` regenerates those H&E phantoms and chooses
  the limit on phantoms of the validation seed :data:`VALIDATION_SEED` (the
  seed the recipe's settings were chosen on; never the held-out seed 7);
  ``medlim weights calibrate-familiarity maskrcnn-steatosis@2`` writes the file;
* weights trained on a person's folder: the training command fits the check on
  the run's weak-labelled training tiles and its validation crops
  (:func:`medlim.microscopy.steatosis.folder.train_steatosis_on_folder`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
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

__all__ = [
    "BLOCK",
    "DEFAULT_VALIDATION_N",
    "HE_KIND",
    "VALIDATION_SEED",
    "TrainingTiles",
    "assess_he",
    "calibrate_phantom_weights",
    "calibration_command",
    "he_features",
    "training_tiles",
]

#: What the steatosis network expects, for the warning.
HE_KIND = "an H&E image of liver tissue"

#: Side, in pixels, of the blocks the image is averaged over before it is described.
BLOCK = 4

#: Largest grid side: a whole slide beyond 8192 px is described on coarser blocks rather than on a huge grid.
_MAX_GRID = 2048

#: Phantom seed of the validation tiles that choose the limit (the recipe's validation seed; never 7, its held-out seed).
VALIDATION_SEED = 5

#: Validation phantoms by default.
DEFAULT_VALIDATION_N = 24

#: ``medlim train steatosis`` defaults of the phantom recipe (medlim/cli/train.py).
_RECIPE_DEFAULTS = {"seed": 11, "tiles": 40, "tile_size": 512}


def he_features(image: np.ndarray) -> np.ndarray:
    """Features (:data:`medlim.core.familiarity.FEATURE_NAMES`) of an RGB image on :data:`BLOCK` px blocks.

    Args:
        image: ``np.ndarray[H, W, 3]`` RGB, uint8 or float in [0, 1] (a grey
            ``[H, W]`` image is described as it is: no saturation).

    Returns:
        ``np.float64[F]``.
    """
    side = max(int(image.shape[0]), int(image.shape[1]))
    grid = min(_MAX_GRID, max(1, math.ceil(side / BLOCK)))
    return image_features(image, grid=grid)


def assess_he(check: FamiliarityCheck, image: np.ndarray) -> tuple[FamiliarityResult, str | None]:
    """The check's result for one image and the warning to show, if any.

    Args:
        check: the weights' check.
        image: the image the network reads, ``np.ndarray[H, W, 3]`` RGB.

    Returns:
        ``(result, warning)``: the warning is ``None`` unless the image is flagged.

    Raises:
        WeightsError: the check describes images by other features than this medlim computes.
    """
    result = check.check_features(he_features(image))
    return result, unlike_training_warning(result, kind=HE_KIND) if result.flagged else None


@dataclass(frozen=True)
class TrainingTiles:
    """The H&E phantom series a model was trained on, as its recorded command says.

    Attributes:
        seed: series seed.
        count: tiles in training (indices 0..count−1).
        size: tile side in px.
    """

    seed: int
    count: int
    size: int

    def images(self) -> Iterable[np.ndarray]:
        """The tiles as the recipe made them, ``np.uint8[size, size, 3]``, in order."""
        from medlim.phantoms.he import generate_he

        for index in range(self.count):
            yield generate_he(self.seed, index=index, size=(self.size, self.size)).image


def _option(command: str, name: str) -> int | None:
    found = re.search(rf"{re.escape(name)}[ =](\d+)", command)
    return int(found.group(1)) if found else None


def training_tiles(entry: WeightsEntry) -> TrainingTiles:
    """The training phantoms of phantom-trained steatosis weights, from the entry's recorded command.

    Raises:
        WeightsError: the weights were not trained by ``medlim train steatosis`` on
            ``medlim.phantoms.he`` phantoms (imported weights, a person's folder).
    """
    command = entry.provenance.command or ""
    generator = entry.provenance.data_generator or ""
    if "train steatosis" not in command or not generator.startswith("medlim.phantoms.he") or "--data" in command:
        raise WeightsError(
            f"{entry.label} was not trained on phantoms medlim can regenerate (command {command!r}); "
            "its training-data check is fitted when it is trained on a folder."
        )
    seed = _option(command, "--seed")
    if seed is None:
        seed = int(entry.provenance.seed) if entry.provenance.seed is not None else _RECIPE_DEFAULTS["seed"]
    return TrainingTiles(seed=seed,
                         count=_option(command, "--tiles") or _RECIPE_DEFAULTS["tiles"],
                         size=_option(command, "--tile-size") or _RECIPE_DEFAULTS["tile_size"])


def calibration_command(entry: WeightsEntry, validation_n: int) -> str:
    """The command that reproduces the check file of ``entry``."""
    command = f"medlim weights calibrate-familiarity {entry.name}@{entry.version}"
    return command if validation_n == DEFAULT_VALIDATION_N else f"{command} --validation-n {validation_n}"


def calibrate_phantom_weights(
    entry: WeightsEntry,
    *,
    validation_n: int = DEFAULT_VALIDATION_N,
    progress: Callable[[int, int], None] | None = None,
) -> FamiliarityCheck:
    """Fit the check of phantom-trained steatosis weights on their own training tiles.

    The reference is fitted on every training tile (seed, count and size from the
    recorded command); the limit is the larger of 1.1 × the 99.5 % quantile of
    their scores and the smallest limit that flags at most 2 % of ``validation_n``
    tiles of seed :data:`VALIDATION_SEED` (same size).

    Raises:
        WeightsError: weights not trained on regenerable phantoms.
        ParameterError: ``validation_n`` below 1.
    """
    if validation_n < 1:
        raise ParameterError(f"--validation-n must be at least 1; {validation_n} is given.")
    train = training_tiles(entry)
    validation = TrainingTiles(VALIDATION_SEED, validation_n, train.size)
    total, rows = train.count + validation.count, []
    for series in (train, validation):
        for image in series.images():
            rows.append(he_features(image))
            if progress is not None:
                progress(len(rows), total)
    selection: dict[str, Any] = {
        "block": BLOCK,
        "calibration": {"generator": "medlim.phantoms.he", "seed": train.seed, "indices": [0, train.count - 1],
                        "n": train.count, "size": train.size, "role": "training tiles of the weights"},
        "validation": {"generator": "medlim.phantoms.he", "seed": validation.seed,
                       "indices": [0, validation.count - 1], "n": validation.count, "size": validation.size,
                       "role": "chooses the limit (never the held-out seed 7)"},
    }
    return fit_familiarity(
        np.stack(rows[: train.count]), validation=np.stack(rows[train.count:]), selection=selection,
        source=f"{train.count} training tiles of {entry.label} (medlim.phantoms.he seed {train.seed}, "
               f"{train.size} px), RGB on {BLOCK} px blocks",
    )

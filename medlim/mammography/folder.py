"""SCU-Net trained or fine-tuned on a user's annotated mammograms (issue 12; thesis §3.3.2).

``medlim train scunet --data DIR`` calls :func:`train_scunet_on_folder`:

1. the folder (``image,mask`` manifest or a Decathlon ``dataset.json``;
   DICOM or PNG, any size) is checked as ``medlim data check --task bac`` does
   and split 20 % by patient (or ``--val DIR``) by
   :func:`medlim.core.training.prepare_training_data`;
2. the starting weights are the task's default (``scunet-bac``) unless
   ``--init`` names others or ``none`` (a fresh network); their preset and
   background rule preprocess the data;
3. every view is read once (:func:`~medlim.mammography.evaluate.read_annotated_view`),
   preprocessed and cut into the preset's 512 px grid: all patches with BAC
   and a seeded sample of BAC-free ones (BAC-free views included) stay in
   memory; the validation views give a fixed crop set;
4. the settings are planned from the data and the machine (:mod:`.plan`);
5. training runs under the harness (:func:`medlim.core.training.fit`):
   crops of every BAC patch and 1.5× as many BAC-free ones, half of those hard
   negatives (where the network fired at their last visit, mined from the
   training steps' own outputs at no extra cost), mammography augmentation,
   AdamW with a cosine schedule inside the budget, validated after every epoch
   on whole validation views through the inference path of ``medlim bac
   evaluate`` (:mod:`.selection`: the epoch and the cut-off by Dice on the
   views with BAC less a penalty for false area on BAC-free views; balanced
   crops alone missed those false positives), the best state kept, early stopping;
6. if time is left, a gate (:mod:`.gating`) and then a region filter
   (:mod:`.regions`: fitted on as many training views as the budget covers,
   at least twice as many as are validated whole and at most 64, predicted by
   the chosen state) are each kept only when they beat the cut-off on the same
   whole validation views;
7. if time is left, the whole validation views are evaluated once with the
   thesis protocol (Dice, TAM_100 R², relative bias, false AM on BAC-free
   views; :func:`~medlim.mammography.evaluate.evaluate_bac`), view by view
   while the budget lasts;
8. the model goes to the user registry with the dataset's fingerprint, the
   split, the plan and the figures; the recorded command names the data by
   fingerprint and the starting weights by name and version.
9. the "unlike my training data" check (issue 13; :mod:`.familiarity`) is
   fitted on the training views as the model saw them (features taken while
   they were preprocessed in step 3, no second pass), its limit chosen with the
   validation views, and stored beside the weights; ``medlim bac quantify``
   and the BAC page run it as they do the shipped weights' check.

Nothing is written between stages; a run that was never validated registers nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import medlim
from medlim.core.training import (
    Deadline,
    NotValidatedError,
    Progress,
    TrainingData,
    TrainingOutcome,
    ValidationScore,
    fit,
    prepare_training_data,
    recorded_command,
)
from medlim.core.training_resume import claim_once, fit_resume, register_once
from medlim.errors import ParameterError
from medlim.mammography.evaluate import BacEvaluation, evaluate_bac, read_annotated_view
from medlim.mammography.plan import (
    CUTOFFS,
    FRESH_PRESET,
    LINE_NEGATIVES_PER_VIEW,
    NEGATIVES_PER_VIEW,
    PatchCounts,
    ScunetPlan,
    plan_scunet,
)
from medlim.mammography.selection import WHOLE_VIEW_CUTOFFS, WholeViewScore, WholeViewValidation, spread_views

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from medlim.core.datasets import Dataset
    from medlim.core.weights import Registries, WeightsEntry
    from medlim.mammography.gating import ComponentGate
    from medlim.mammography.regions import RegionFilter

__all__ = ["BAC_TASK", "ScunetRun", "PatchPool", "ScunetFolderTrainer", "train_scunet_on_folder"]

#: Registry task of SCU-Net weights.
BAC_TASK = "bac-segmentation"
#: ``--init`` value meaning "a freshly initialised network".
NO_INIT = "none"
#: Share of the budget left when the closing whole-view evaluation may not take more (a fifth: the epoch and the
#: cut-off are already chosen on whole views during training, so the closing pass over every validation view is a
#: record, not a choice; on 2 busy cores half the budget left one epoch of training, 2026-12-05).
_EVALUATION_SHARE_MAX = 0.2
#: Most training views the region filter is fitted on (:func:`_choose_region_filter`; fewer when the budget is short).
REGION_FILTER_MAX_VIEWS = 64


@dataclass(frozen=True)
class ScunetRun:
    """What ``medlim train scunet --data DIR`` asked for.

    Attributes:
        data_dir: the training folder.
        val_dir: a separate validation folder, or ``None`` (20 % held out by patient).
        init: starting weights ``NAME[@VERSION]``, ``"none"`` for a fresh network, or
            ``None`` for the task's default weights.
        name: registry name (default ``scunet-bac-<first 8 characters of the fingerprint>``).
        version: registry version (default: the next free one).
        seed: split, sampling and initialisation seed.
        skip_bad: leave out bad rows instead of refusing the dataset.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when present).
        preset, skip: preprocessing and background rule given on the command line (default: the starting weights').
        overrides: planned settings given on the command line (``patch_size``, ``batch_size``,
            ``learning_rate``, ``epochs``, ``steps_per_epoch``).
        command_options: further ``(flag, value)`` pairs of the recorded command (no paths).
    """

    data_dir: Path
    val_dir: Path | None = None
    init: str | None = None
    name: str | None = None
    version: str | None = None
    seed: int = 0
    skip_bad: bool = False
    device: str | None = None
    preset: str | None = None
    skip: bool | str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    command_options: Sequence[tuple[str, Any]] = ()


@dataclass(frozen=True)
class PatchPool:
    """Preprocessed 512 px grid patches in memory.

    Attributes:
        grey: ``np.uint8[N, P, P]`` patches as the preset preprocesses them.
        mask: ``np.bool_[N, P, P]`` ground truth.
        views: views read; ``bac_free_views``: those without BAC.
        grid_patches: grid patches not skipped as background (the inference work of these views).
        seconds: wall time of reading and preprocessing.
        features: ``np.float64[views, F]``, each view's training-data features as the model
            sees it (:func:`medlim.mammography.familiarity.preprocessed_features`).
        view_has_bac: per view read, whether its mask holds BAC.
        view_of: ``np.int64[N]`` the view (0-based, in reading order) each patch was cut from.
    """

    grey: np.ndarray
    mask: np.ndarray
    views: int
    bac_free_views: int
    grid_patches: int
    seconds: float
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    view_has_bac: tuple[bool, ...] = ()
    view_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def positive(self) -> np.ndarray:
        """``np.bool_[N]``: the patch holds calcification."""
        return np.asarray(self.mask.reshape(len(self.mask), -1).any(axis=1))


@dataclass(frozen=True)
class _Start:
    """The starting network and where it came from."""

    model: "torch.nn.Module"
    entry: "WeightsEntry | None"
    preset: str
    skip: bool | str

    @property
    def label(self) -> str:
        return NO_INIT if self.entry is None else self.entry.label


def _starting_point(registries: "Registries", run: ScunetRun, progress: Progress | None) -> _Start:
    """The network to train: the task's default weights, the ``--init`` weights, or a fresh one."""
    import torch

    from medlim.core.weights import build_model, parse_model_spec
    from medlim.mammography.analysis import DEFAULT_BAC_WEIGHTS, bac_model_from_entry
    from medlim.mammography.scunet import build_scunet

    torch.manual_seed(run.seed)
    if run.init is not None and run.init.strip().lower() == NO_INIT:
        return _Start(build_scunet(), None, run.preset or FRESH_PRESET, True if run.skip is None else run.skip)
    if run.init is None:
        entry = registries.default(BAC_TASK) or registries.get(DEFAULT_BAC_WEIGHTS)
    else:
        spec = parse_model_spec(run.init)
        entry = registries.get(spec.name, spec.version)
    if entry.architecture != "scunet":
        raise ParameterError(f"--init must name SCU-Net weights; {entry.label} is a {entry.architecture!r}.")
    model = build_scunet()
    model.load_state_dict(build_model(entry, device="cpu").state_dict())
    if progress is not None:
        progress(f"starting from {entry.label} (fine-tuning; --init none trains from scratch)")
    settings = bac_model_from_entry(entry, model)  # the skip rule and preset as inference reads them
    return _Start(model, entry, run.preset or settings.preset, settings.skip if run.skip is None else run.skip)


def _extract(dataset: "Dataset", indices: Sequence[int], *, start: _Start, rng: np.random.Generator,
             deadline: Deadline, what: str, progress: Progress | None) -> PatchPool:
    """Read, preprocess and cut ``indices`` of ``dataset`` once: every BAC patch, a sample of BAC-free ones."""
    from medlim.mammography.familiarity import preprocessed_features
    from medlim.mammography.preprocess import background_rule, get_preset, preprocess_image
    from medlim.mammography.train import TrainingImage, extract_image_patches

    started = time.perf_counter()
    greys, masks, features, has_bac, view_of = [], [], [], [], []
    bac_free = grid = 0
    rule = background_rule(start.skip, start.preset)
    for done, index in enumerate(indices, start=1):
        if deadline.expired():
            raise NotValidatedError(f"the time budget of {deadline.describe()} ran out while reading the {what} "
                                    f"({done - 1} of {len(indices)} views). Nothing was registered; give more "
                                    "minutes, or fewer views.")
        view = read_annotated_view(dataset, index)
        preprocessed = preprocess_image(view.image, start.preset)
        features.append(preprocessed_features(preprocessed))
        positives, negatives = extract_image_patches(TrainingImage(view.image, view.mask), preset=start.preset,
                                                     max_negatives=NEGATIVES_PER_VIEW, rng=rng, skip=start.skip,
                                                     preprocessed=preprocessed,
                                                     line_negatives=LINE_NEGATIVES_PER_VIEW)
        has_bac.append(bool(view.mask.any()))
        bac_free += int(not has_bac[-1])
        grid += _grid_patches(view.image.shape, get_preset(start.preset).patch_size, len(positives), rule)
        greys += [positives.grey, negatives.grey]
        masks += [positives.mask, negatives.mask]
        view_of.append(np.full(len(positives.grey) + len(negatives.grey), done - 1, np.int64))
        if progress is not None and (done % 10 == 0 or done == len(indices)):
            progress(f"preprocessed {done}/{len(indices)} {what} views")
    return PatchPool(grey=np.concatenate(greys), mask=np.concatenate(masks), views=len(indices),
                     bac_free_views=bac_free, grid_patches=grid, seconds=time.perf_counter() - started,
                     features=np.stack(features) if features else np.zeros((0, 0)), view_has_bac=tuple(has_bac),
                     view_of=np.concatenate(view_of) if view_of else np.zeros(0, np.int64))


def _grid_patches(shape: tuple[int, ...], patch: int, positives: int, rule: Any) -> int:
    """An estimate of the patches inference predicts on a view (for the time the whole-view evaluation needs):
    the 64 px overlap grid, two thirds of it when a background rule skips some, never fewer than its BAC patches."""
    rows, cols = (max(patch, int(side)) for side in shape[:2])
    stride = patch - 64
    count = (math.ceil((rows - patch) / stride) + 1) * (math.ceil((cols - patch) / stride) + 1)
    return max(positives, count if rule is None else max(1, (2 * count) // 3))


def _validation_crops(pool: PatchPool, size: int, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed validation set: BAC crops and as many BAC-free ones, at most ``limit`` (seeded)."""
    from medlim.mammography.train import sample_crops

    rng = np.random.default_rng([seed, 8001])
    positive = np.flatnonzero(pool.positive)
    negative = np.flatnonzero(~pool.positive)
    if len(positive) == 0:
        raise ParameterError("the validation part holds no view with BAC, so a segmentation cannot be validated; "
                             "give a validation folder with annotated BAC (--val DIR), or add views with BAC.")
    take_pos = min(len(positive), max(1, limit // 2))
    take_neg = min(len(negative), limit - take_pos)
    chosen = np.sort(np.r_[rng.choice(positive, take_pos, replace=False), rng.choice(negative, take_neg,
                                                                                         replace=False)])
    return sample_crops(pool.grey[chosen], pool.mask[chosen], size=size, rng=rng)


class ScunetFolderTrainer:
    """SCU-Net training state on in-memory patches: epochs, validation, snapshots.

    Args:
        model: the network (trained in place).
        pool: training patches.
        val_grey, val_mask: the fixed validation crops (``np.uint8[M, s, s]``, ``np.bool_[M, s, s]``).
        plan: the planned settings.
        device: torch device.
        train_seconds: the training stage's budget in seconds (``inf``: none) for the schedule.
        whole_views: scores the live network on whole validation views and chooses the cut-off
            (:class:`~medlim.mammography.selection.WholeViewValidation`); ``None``: the crops choose.
    """

    def __init__(self, model: "torch.nn.Module", pool: PatchPool, val_grey: np.ndarray, val_mask: np.ndarray,
                 plan: ScunetPlan, *, device: "torch.device", train_seconds: float = math.inf,
                 whole_views: Callable[[], WholeViewScore] | None = None) -> None:
        import torch

        self.plan, self.device, self.pool, self.whole_views = plan, device, pool, whole_views
        self.model = model.to(device).train()
        self.val_grey, self.val_mask = val_grey, val_mask
        self.positive = np.flatnonzero(pool.positive)
        self.negative = np.flatnonzero(~pool.positive)
        # hard negatives: false-positive pixels of each pool patch at its last visit, and where the strongest was
        self.hardness = np.zeros(len(pool.grey))
        self.hot_spot = np.full((len(pool.grey), 2), -1, np.int64)
        self.rng = np.random.default_rng(plan.seed)
        self.generator = torch.Generator().manual_seed(plan.seed)
        self.optimiser = torch.optim.AdamW(self.model.parameters(), lr=plan.learning_rate,
                                           weight_decay=plan.weight_decay)
        self.total_steps = plan.epochs * plan.steps_per_epoch
        self.train_seconds, self.started, self.step = train_seconds, time.perf_counter(), 0
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimiser, self._factor)

    def _factor(self, step: int) -> float:
        """Linear warm-up, then cosine to 2 % by the larger of the step and the time fractions."""
        warmup = self.plan.warmup_steps
        if step < warmup:
            return (step + 1) / warmup
        done = (step - warmup) / max(1, self.total_steps - warmup)
        if math.isfinite(self.train_seconds) and self.train_seconds > 0:
            done = max(done, (time.perf_counter() - self.started) / self.train_seconds)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))

    def _epoch_order(self) -> np.ndarray:
        """Every BAC patch and ``negative_ratio`` × as many BAC-free ones (a ``hard_negative_share`` of them hard),
        each group shuffled, the BAC patches spread evenly, cycled to the epoch's length."""
        from medlim.mammography.train import draw_negatives, interleave

        wanted = min(int(round(self.plan.negative_ratio * len(self.positive))), len(self.negative))
        picked = draw_negatives(self.hardness[self.negative], wanted, hard_share=self.plan.hard_negative_share,
                                rng=self.rng)
        order = interleave(self._positives(), self.rng.permutation(self.negative[picked]))
        return np.resize(order, self.plan.steps_per_epoch * self.plan.batch_size)

    def _positives(self) -> np.ndarray:
        """The epoch's BAC patches: each once (``"patches"``), or as many drawn with every view's BAC patches
        weighing the same in all (``"views"``: a view with one speck of mild BAC counts as much as one with heavy
        BAC over twenty patches)."""
        view_of = self.pool.view_of
        if self.plan.positive_balance != "views" or len(view_of) != len(self.pool.grey) or not len(self.positive):
            return self.rng.permutation(self.positive)
        views = view_of[self.positive]
        per_view = np.bincount(views)
        weight = 1.0 / per_view[views]
        return self.rng.choice(self.positive, size=len(self.positive), replace=True, p=weight / weight.sum())

    def _remember_hard(self, chosen: np.ndarray, probability: np.ndarray, coordinates: np.ndarray) -> None:
        """Record where the BAC-free crops of a step fired (``probability`` ``np.float32[N, s, s]``, ``coordinates``
        ``np.float32[N, 2, s, s]`` their pixels' patch positions) for the next epochs' hard negatives."""
        from medlim.mammography.train import false_positive_spots

        free = ~self.pool.positive[chosen]
        if not free.any():
            return
        counts, spots = false_positive_spots(probability[free], coordinates[free])
        self.hardness[chosen[free]] = counts
        self.hot_spot[chosen[free]] = spots

    def _inputs(self, grey: np.ndarray) -> "torch.Tensor":
        import torch

        from medlim.mammography.preprocess import normalise_patches

        patches = torch.from_numpy(np.ascontiguousarray(grey))[:, None].to(self.device)
        return normalise_patches(patches, self.plan.preset)

    def train_epoch(self, epoch: int) -> str:
        """One epoch of ``steps_per_epoch`` optimiser steps; returns a progress line."""
        import torch

        from medlim.mammography.train import augment_patches, crop_corners, cut_crops, segmentation_loss

        self.model.train()
        order, total = self._epoch_order(), 0.0
        autocast = self.device.type == "cuda"
        size = self.plan.patch_size
        # each crop pixel's (row, column) in the crop; augmented with the mask, so that a false positive of the
        # flipped or turned crop is traced back to its place in the patch
        within = torch.from_numpy(np.indices((size, size), dtype=np.float32))
        for k in range(self.plan.steps_per_epoch):
            chosen = order[k * self.plan.batch_size : (k + 1) * self.plan.batch_size]
            corners = crop_corners(self.pool.grey[chosen], self.pool.mask[chosen], size=size, rng=self.rng,
                                   centres=self.hot_spot[chosen])
            grey, mask = cut_crops(self.pool.grey[chosen], self.pool.mask[chosen], corners, size)
            target = torch.cat([torch.from_numpy(mask)[:, None].float(),
                                within.expand(len(chosen), 2, size, size)], dim=1)
            grey_t, target_t = augment_patches(torch.from_numpy(grey)[:, None].float() / 255.0, target,
                                               generator=self.generator, policy=self.plan.augmentation)
            inputs = self._inputs((grey_t[:, 0] * 255.0).round().to(torch.uint8).numpy())
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=autocast):
                logits = self.model(inputs)
            probability = torch.sigmoid(logits.float())
            loss = segmentation_loss(logits, target_t[:, :1].to(self.device), kind=self.plan.loss)
            coordinates = target_t[:, 1:].numpy() + corners[:, :, None, None].astype(np.float32)
            self._remember_hard(chosen, probability.detach()[:, 0].float().cpu().numpy(), coordinates)
            self.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            self.optimiser.step()
            self.schedule.step()
            self.step += 1
            total += float(loss.detach())
        return (f"SCU-Net epoch {epoch}/{self.plan.epochs}: soft-Dice loss {total / self.plan.steps_per_epoch:.4f}, "
                f"lr {self.optimiser.param_groups[0]['lr']:.2e}")

    def probabilities(self) -> np.ndarray:
        """``np.float32[M, s, s]`` probabilities of the validation crops (eval mode, no augmentation)."""
        import torch

        self.model.eval()
        out = []
        with torch.inference_mode():
            for first in range(0, len(self.val_grey), 2 * self.plan.batch_size):
                batch = self.val_grey[first : first + 2 * self.plan.batch_size]
                out.append(torch.sigmoid(self.model(self._inputs(batch)).float())[:, 0].cpu().numpy())
        self.model.train()
        return np.concatenate(out)

    def validate(self) -> ValidationScore:
        """The whole-view score and cut-off (:mod:`~medlim.mammography.selection`), the crops' pooled Dice breaking
        ties; without whole views, the crops' pooled Dice and its best cut-off of
        :data:`~medlim.mammography.plan.CUTOFFS`."""
        crops = self._validate_crops()
        if self.whole_views is None:
            return crops
        whole = self.whole_views()
        metrics = {**crops.metrics, "crop_dice": crops.score, "crop_cutoff": crops.payload, **whole.to_json()}
        return ValidationScore(score=whole.score, metric="whole_view_score", tiebreak=crops.score, metrics=metrics,
                               payload=whole.cutoff)

    def _validate_crops(self) -> ValidationScore:
        """Pooled Dice of the validation crops at the best cut-off of :data:`~medlim.mammography.plan.CUTOFFS`."""
        probability = self.probabilities()
        truth = self.val_mask
        dice = {}
        for cutoff in CUTOFFS:
            predicted = probability > cutoff
            tp = int(np.count_nonzero(predicted & truth))
            wrong = int(np.count_nonzero(predicted ^ truth))
            dice[cutoff] = 2 * tp / (2 * tp + wrong) if tp + wrong else 1.0
        best = max(CUTOFFS, key=lambda c: (dice[c], -abs(c - 0.5)))
        soft = 1.0 - 2.0 * float((probability * truth).sum()) / (float(truth.sum() + (probability ** 2).sum()) + 1e-6)
        free = ~truth.reshape(len(truth), -1).any(axis=1)
        false_px = float((probability[free] > best).sum() / max(1, int(free.sum())))
        metrics = {"cutoff": best, "dice_at_0.5": dice[0.5], "soft_dice_loss": soft,
                   "val_crops_bac": int((~free).sum()), "val_crops_bac_free": int(free.sum()),
                   "false_px_per_bac_free_crop": false_px}
        return ValidationScore(score=dice[best], metric="dice", tiebreak=-soft, metrics=metrics, payload=best)

    def snapshot(self) -> dict[str, "torch.Tensor"]:
        """A CPU copy of the network's state."""
        return {key: value.detach().to("cpu").clone() for key, value in self.model.state_dict().items()}

    def resume_parts(self) -> dict[str, Any]:
        """What a job's checkpoint keeps (:func:`medlim.core.training_resume.capture_state`)."""
        return {"model": self.model, "optimiser": self.optimiser, "schedule": self.schedule, "rng": self.rng,
                "generator": self.generator, "step": self.step, "train_elapsed": time.perf_counter() - self.started,
                "hardness": self.hardness, "hot_spot": self.hot_spot}

    def resume_apply(self, values: Mapping[str, Any]) -> None:
        """Set the counters and the hard-negative memory a checkpoint kept (the schedule's time fraction goes
        on where it stopped)."""
        self.step = int(values["step"])
        self.started = time.perf_counter() - float(values["train_elapsed"])
        self.hardness = np.asarray(values["hardness"], dtype=np.float64).copy()
        self.hot_spot = np.asarray(values["hot_spot"], dtype=np.int64).copy()


def _seconds_per_patch(model: "torch.nn.Module", device: "torch.device", preset: str) -> float:
    """Measured seconds of one 512 px inference patch (two patches timed once)."""
    import torch

    from medlim.mammography.preprocess import get_preset, normalise_patches

    size = get_preset(preset).patch_size
    patches = torch.zeros((2, 1, size, size), dtype=torch.uint8, device=device)
    model.to(device).eval()
    tick = time.perf_counter()
    with torch.inference_mode():
        model(normalise_patches(patches, preset))
    model.train()
    return (time.perf_counter() - tick) / 2


def _provisional_entry(fields: Mapping[str, Any]) -> "WeightsEntry":
    """An in-memory entry of the fields (no file yet) so the evaluation reads the same settings as the registry."""
    from medlim.core.weights.entry import (
        InputContract,
        TrainingProvenance,
        WeightsEntry,
    )

    values = {**fields, "version": fields.get("version") or "0", "file": "unregistered.safetensors", "sha256": "0" * 64,
              "input_contract": InputContract.from_dict(fields["input_contract"]),
              "provenance": TrainingProvenance.from_dict(fields["provenance"])}
    return WeightsEntry(**values)


def _whole_views(data: TrainingData, deadline: Deadline, per_view: float, progress: Progress | None
                 ) -> Iterator[tuple[Any, ...]]:
    """The validation views, read one at a time while the budget covers one more."""
    total = len(data.val)
    for done, index in enumerate(data.val):
        if done and deadline.limited and deadline.remaining() < per_view:  # the caller checked the first
            if progress is not None:
                progress(f"whole-view evaluation stopped by the time budget after {done} of {total} views")
            return
        yield read_annotated_view(data.val_dataset, index).sample()


def _whole_view_metrics(summary: BacEvaluation | None, evaluated: int, total: int) -> dict[str, Any]:
    """The figures of the whole-view evaluation for the manifest (NaN → null)."""
    if summary is None:
        return {"views": 0, "of": total, "skipped": "the time budget (--max-minutes) was spent"}

    def num(value: float | None) -> float | None:
        return None if value is None or not math.isfinite(value) else round(float(value), 4)

    return {"views": evaluated, "of": total, "cutoff": summary.threshold, "x": summary.x,
            "dice": num(summary.whole_image["f1"]), "dice_pooled": num(summary.whole_image_pooled["f1"]),
            "tam_100_r2": num(summary.agreement["tam_x"].r2) if summary.x == 100 else None,
            "r2": {k: num(a.r2) for k, a in summary.agreement.items()},
            "tam_relative_bias": num(summary.tam_relative_bias), "bac_free_views": summary.bac_free_images,
            "false_am_px_median": num(summary.false_am_px_median),
            "false_am_mm2_median": num(summary.false_am_mm2_median)}


def _evaluate_whole_views(model: "torch.nn.Module", fields: Mapping[str, Any], data: TrainingData, *,
                          deadline: Deadline, per_view: float, progress: Progress | None) -> dict[str, Any]:
    """Evaluate the validation views once with the thesis protocol, while the budget lasts."""
    from medlim.mammography.analysis import bac_model_from_entry

    total = len(data.val)
    if deadline.limited and deadline.remaining() < per_view:
        if progress is not None:
            progress("whole-view evaluation skipped: the time budget (--max-minutes) is spent")
        return _whole_view_metrics(None, 0, total)
    bac_model = bac_model_from_entry(_provisional_entry(fields), model.eval())
    summary, per_image = evaluate_bac(
        bac_model, _whole_views(data, deadline, per_view, progress),
        progress=None if progress is None else lambda done, _name: progress(f"evaluated view {done}/{total}"))
    if not per_image:
        return _whole_view_metrics(None, 0, total)
    return _whole_view_metrics(summary, len(per_image), total)


def _choose_gate(whole_views: WholeViewValidation, best: ValidationScore, *, deadline: Deadline, per_view: float,
                 progress: Progress | None) -> tuple[ComponentGate | None, dict[str, Any]]:
    """A gate (:mod:`medlim.mammography.gating`) for the chosen state when one beats the best plain cut-off on the
    whole validation views with no more false area on average (:func:`~medlim.mammography.selection.gate_over_cutoff`);
    ``None`` (the thesis's single cut-off) otherwise or when the budget cannot cover a sweep.

    Args:
        best: the fit's best validation (``score`` and ``metrics["whole_view_false_penalty"]`` of the plain cut-off).
    """
    from medlim.mammography.gating import gate_grid
    from medlim.mammography.selection import gate_over_cutoff

    if deadline.limited and deadline.remaining() < 2.0 * per_view * len(whole_views):
        if progress is not None:
            progress("gate selection skipped: the time budget (--max-minutes) cannot cover it")
        return None, {"skipped": "the time budget (--max-minutes)"}
    if progress is not None:
        progress(f"choosing a gate on {len(whole_views)} whole validation views")
    plain_score = float(best.score)
    plain_penalty = float(best.metrics.get("whole_view_false_penalty", 0.0))
    scores = whole_views.gated(gate_grid())
    top = max(scores, key=lambda s: s.score)
    kept = gate_over_cutoff(scores, plain_score=plain_score, plain_false_penalty=plain_penalty)
    chosen = None if kept is None else kept.gate
    if progress is not None:
        verdict = "none kept" if kept is None or chosen is None else (
            f"kept floor {chosen.floor:g}, seed {chosen.seed:g} ({kept.score:.4f})")
        progress(f"gates: best score {top.score:.4f} against the plain cut-off's {plain_score:.4f} (mean false cost "
                 f"{top.false_penalty:.4f} against {plain_penalty:.4f}): {verdict}")
    return chosen, {"plain_score": round(plain_score, 4), "plain_false_penalty": round(plain_penalty, 4),
                    "best_gate": top.to_json(), "kept_gate": None if kept is None else kept.to_json(),
                    "chosen": None if chosen is None else chosen.to_json()}


def _choose_region_filter(model: "torch.nn.Module", fields: Mapping[str, Any], data: TrainingData,
                          train: PatchPool, whole_views: WholeViewValidation, *, gate: "ComponentGate | None",
                          cutoff: float, least: int, deadline: Deadline, per_view: float,
                          progress: Progress | None) -> tuple["RegionFilter | None", dict[str, Any]]:
    """A region filter (:mod:`medlim.mammography.regions`) fitted on as many training views as the budget covers
    (at least ``least`` or all there are, at most :data:`REGION_FILTER_MAX_VIEWS`) predicted by the chosen state
    (after its cut-off and gate), kept when it beats them on the whole validation views
    (:func:`~medlim.mammography.selection.filter_over_cutoff`); ``None`` otherwise or when the budget cannot cover
    the least views, the validation pass and the closing evaluation."""
    from medlim.mammography.analysis import bac_model_from_entry
    from medlim.mammography.evaluate import predict_view, sweep_region_filter
    from medlim.mammography.regions import RegionTable, fit_region_filter, region_table
    from medlim.mammography.selection import filter_over_cutoff, whole_view_score

    available = min(len(train.view_has_bac), REGION_FILTER_MAX_VIEWS)
    count = available
    if deadline.limited:
        spare = deadline.remaining() - per_view * len(data.val) - 1.3 * per_view * len(whole_views)
        count = min(available, int(spare // (1.3 * per_view)) if per_view > 0 else available)
    if count < min(least, available) or count < 1:
        if progress is not None:
            progress("region filter skipped: the time budget (--max-minutes) cannot cover it")
        return None, {"skipped": "the time budget (--max-minutes)"}
    chosen = spread_views(train.view_has_bac, count)
    bac_model = bac_model_from_entry(_provisional_entry(fields), model)
    tables, spacings = [], []
    for done, position in enumerate(chosen, start=1):
        index = data.train[position]
        _name, image, truth, file_spacing, _intent = read_annotated_view(data.dataset, index).sample()
        scaled, _spacing = predict_view(bac_model, image, file_spacing)
        spacing = scaled.decision.pixel_spacing_mm
        if spacing is not None:
            spacings.append(math.sqrt(spacing[0] * spacing[1]))
        patient = data.dataset.items[index].patient
        tables.append(region_table(scaled.prediction.probability, scaled.prediction.preprocessed.grey, floor=cutoff,
                                   spacing_mm=spacing if spacing is not None else 1.0, truth=truth,
                                   group=f"patient:{patient}" if patient else f"view:{position}"))
        if progress is not None:
            progress(f"region filter: predicted training view {done}/{len(chosen)}")
    region_filter, record = fit_region_filter(RegionTable.join(tables), floor=cutoff,
                                              spacing_mm=float(np.median(spacings)) if spacings else 1.0)
    record = {"training_views": len(chosen), **record}
    if region_filter is None:
        if progress is not None:
            progress(f"region filter not fitted: {record['skipped']}")
        return None, record
    per = sweep_region_filter(bac_model, whole_views.samples, region_filter=region_filter, cutoff=cutoff, gate=gate)
    with_filter = whole_view_score(per[True], cutoff=cutoff, gate=gate)
    without = whole_view_score(per[False], cutoff=cutoff, gate=gate)
    kept = filter_over_cutoff(with_filter, without)
    record.update({"with_filter": with_filter.to_json(), "without_filter": without.to_json(), "kept": kept,
                   "filter": region_filter.to_json()})  # kept or not: what was tried, for a later look
    if progress is not None:
        progress(f"region filter: whole-view score {with_filter.score:.4f} against {without.score:.4f} without it "
                 f"(mean false cost {with_filter.false_penalty:.4f} against {without.false_penalty:.4f}): "
                 f"{'kept' if kept else 'not kept'}")
    return (region_filter if kept else None), record


def _choose_postprocessing(model: "torch.nn.Module", best: ValidationScore, data: TrainingData, train: PatchPool,
                           whole_views: WholeViewValidation, *, start: _Start, planned: ScunetPlan, command: str,
                           name: str, version: str | None, deadline: Deadline, per_view: float,
                           progress: Progress | None) -> tuple[ComponentGate | None, dict[str, Any],
                                                               RegionFilter | None, dict[str, Any], dict[str, Any]]:
    """The chosen state's gate (:func:`_choose_gate`), then its region filter (:func:`_choose_region_filter`), and
    the manifest fields they give: ``(gate, its record, filter, its record, fields)``."""
    gate, gate_metrics = _choose_gate(whole_views, best, deadline=deadline, per_view=per_view, progress=progress)
    cutoff = best.payload if gate is None else gate.floor
    fields = _entry_fields(name=name, version=version, start=start, planned=planned, cutoff=cutoff, data=data,
                           command=command, metrics={}, gate=gate)
    region_filter, filter_metrics = _choose_region_filter(
        model, fields, data, train, whole_views, gate=gate, cutoff=cutoff, least=2 * planned.whole_view_views,
        deadline=deadline, per_view=per_view, progress=progress)
    if region_filter is not None:
        fields = _entry_fields(name=name, version=version, start=start, planned=planned, cutoff=cutoff, data=data,
                               command=command, metrics={}, gate=gate, region_filter=region_filter)
    return gate, gate_metrics, region_filter, filter_metrics, fields


def _whole_view_validation(model: "torch.nn.Module", data: TrainingData, val: PatchPool, *, start: _Start,
                           planned: ScunetPlan, command: str, name: str, version: str | None,
                           progress: Progress | None) -> WholeViewValidation:
    """Up to ``whole_view_views`` validation views (half with BAC) in memory, scored with the live ``model``
    under the settings it will be registered with (:func:`_provisional_entry`), as ``medlim bac evaluate`` would."""
    from medlim.mammography.analysis import bac_model_from_entry

    chosen = spread_views(val.view_has_bac, planned.whole_view_views)
    samples = [read_annotated_view(data.val_dataset, data.val[i]).sample() for i in chosen]
    fields = _entry_fields(name=name, version=version, start=start, planned=planned, cutoff=0.5, data=data,
                           command=command, metrics={})
    if progress is not None:
        progress(f"validating on {len(samples)} whole views ({sum(val.view_has_bac[i] for i in chosen)} with BAC) "
                 f"of {val.views}: epoch and cut-off by the whole-view score")
    return WholeViewValidation(samples, bac_model_from_entry(_provisional_entry(fields), model))


def _entry_fields(*, name: str, version: str | None, start: _Start, planned: ScunetPlan, cutoff: float,
                  data: TrainingData, command: str, metrics: Mapping[str, Any],
                  gate: ComponentGate | None = None, region_filter: RegionFilter | None = None) -> dict[str, Any]:
    """The manifest fields of SCU-Net weights trained on a user's folder (``gate``: chosen by :func:`_choose_gate`,
    ``region_filter`` by :func:`_choose_region_filter`)."""
    from medlim.core.spacing import training_spacing

    selection = (f"cut-off {cutoff:g}: best whole-view score (the mean Dice of the views with BAC, among cut-offs "
                 "whose median false area on the BAC-free views is at most 0.5 mm²; the least false area when none "
                 f"is) of the validation views among {', '.join(map(str, WHOLE_VIEW_CUTOFFS))}, at the epoch chosen "
                 "by the same score (validation data only; medlim.mammography.selection)")
    if gate is not None:
        selection = (f"gate floor {gate.floor:g}, seed {gate.seed:g} and cut-off {cutoff:g}: on the chosen epoch's "
                     "state, the gate of medlim.mammography.gating.gate_grid with the best whole-view score on the "
                     "same validation views among those scoring above the best plain cut-off with no higher mean "
                     "false cost on the BAC-free views (" + selection + ")")
    if region_filter is not None:
        selection += ("; then regions of p > {:g} whose shape and contrast a logistic regression fitted on the run's "
                      "training views judges not BAC are dropped (medlim.mammography.regions; a deviation from the "
                      "thesis), kept because it beat the same cut-off and gate without it on the same whole "
                      "validation views".format(region_filter.floor))
    how = f"fine-tuned from {start.label}" if start.entry is not None else "trained from scratch"
    source = f"user dataset {data.fingerprint.id}, {how}"
    spacing = training_spacing(data.fingerprint.spacings, where=f"user dataset {data.fingerprint.id}")
    return {
        "name": name, "version": version, "task": BAC_TASK, "architecture": "scunet", "preset": planned.preset,
        "input_contract": {"channels": 3, "size": [512, 512], "dtype": "float32", "range": [-1.0, 1.0], **spacing},
        "output_type": "probability", "thresholds": {"output": float(cutoff)},
        "params": {"overlap": 64, "merge": "max", "skip": planned.skip, "output_activation": "sigmoid", "x": 100.0,
                   "threshold_selection": selection, **({} if gate is None else {"gate": gate.to_json()}),
                   **({} if region_filter is None else {"region_filter": region_filter.to_json()})},
        "metrics": dict(metrics),
        "provenance": {"command": command, "seed": planned.seed, "source": source,
                       "data_generator_version": medlim.__version__},
        "intended_use": "Research use only, not for diagnosis; trained on a user's dataset",
        "description": f"SCU-Net for breast arterial calcification, {how} on the user dataset {data.fingerprint.id}",
        "data": data.record(), "plan": planned.plan.to_json(),
    }


def _prepare(run: ScunetRun, data: TrainingData, start: _Start, device: str, deadline: Deadline,
             progress: Progress | None) -> tuple[PatchPool, PatchPool, ScunetPlan]:
    """Cut the training and validation views into patches and plan the run."""
    rng = np.random.default_rng(run.seed)
    train = _extract(data.dataset, data.train, start=start, rng=rng, deadline=deadline, what="training",
                     progress=progress)
    val = _extract(data.val_dataset, data.val, start=start, rng=rng, deadline=deadline, what="validation",
                   progress=progress)
    counts = PatchCounts(train_views=train.views, train_bac_free_views=train.bac_free_views,
                         positives=int(train.positive.sum()), negatives=int((~train.positive).sum()),
                         val_views=val.views, val_bac_free_views=val.bac_free_views,
                         val_positives=int(val.positive.sum()), val_negatives=int((~val.positive).sum()))
    if counts.positives == 0:
        raise ParameterError("the training views hold no calcification inside the breast (every mask is empty, "
                             "or its BAC lies in background patches); SCU-Net needs outlined BAC to learn from.")
    summary = data.check.summary
    side = (summary.height.median, summary.width.median) if summary.height and summary.width else None
    planned = plan_scunet(device=device, fine_tune=start.entry is not None, preset=start.preset, skip=start.skip,
                          counts=counts, median_side=side, spacings=data.fingerprint.spacings, seed=run.seed,
                          overrides=run.overrides, starting_point=start.label if start.entry else "fresh",
                          given=tuple(k for k, v in (("preset", run.preset), ("skip", run.skip)) if v is not None))
    if progress is not None:
        progress(f"{counts.positives} BAC patches and {counts.negatives} BAC-free ones from {counts.train_views} "
                 f"training views; plan: {planned.patch_size} px crops, batch {planned.batch_size}, "
                 f"{planned.epochs} epochs of {planned.steps_per_epoch} steps, lr {planned.learning_rate:g}")
    return train, val, planned


def _budgets(deadline: Deadline, *, per_view: float, views: int) -> tuple[Deadline, float]:
    """The training stage's budget, leaving time for the closing whole-view evaluation (at most a fifth of the rest)."""
    if not deadline.limited:
        return deadline, math.inf
    wanted = 1.2 * per_view * views
    remaining = deadline.remaining()
    share = 1.0 - min(_EVALUATION_SHARE_MAX, wanted / remaining) if remaining > 0 else 1.0
    stage = deadline.share(max(share, 1e-6))
    return stage, stage.remaining()


def _attach_check(entry: "WeightsEntry", train: PatchPool, val: PatchPool, *, data: TrainingData, preset: str,
                  progress: Progress | None) -> tuple["WeightsEntry", dict[str, Any]]:
    """Fit the training-data check on the training views' features, its limit on the validation views'."""
    from medlim.core.familiarity import attach_training_check

    selection = {"preset": preset, "calibration": {"views": train.views, "role": "the training views of the run"},
                 "validation": {"views": val.views, "role": "the run's validation views (choose the limit)"},
                 "dataset": data.fingerprint.id}
    return attach_training_check(entry, train.features, val.features, selection=selection, progress=progress,
                                 source=f"{train.views} training views of the user dataset {data.fingerprint.id}, "
                                        f"preprocessed by the '{preset}' preset")


def train_scunet_on_folder(
    run: ScunetRun,
    *,
    registries: "Registries",
    deadline: Deadline,
    progress: Progress | None = None,
    allow_shipped_folder: bool = False,
) -> TrainingOutcome:
    """Check, split, plan, train, validate, choose a gate, evaluate and register SCU-Net on a user's annotated views.

    Args:
        run: what the command asked for.
        registries: where names are looked up and the model written (its user registry).
        deadline: the command's ``--max-minutes`` budget, started when the command started.
        progress: callback for progress lines (the CLI writes them to stderr).
        allow_shipped_folder: see :meth:`medlim.core.weights.Registries.register`.

    Returns:
        The registered entry, its best validation and the whole-view figures.

    Raises:
        DatasetProblemsError: the folder has problems (and ``skip_bad`` is off or cannot fix them).
        NotValidatedError: the budget ran out before a validation; nothing is registered.
        ParameterError: no BAC to learn from or to validate on; bad settings.
        WeightsError: unknown ``--init`` weights, or the name and version are taken.
    """
    from medlim.core.device import select_device

    data = prepare_training_data(run.data_dir, "bac", val_dir=run.val_dir, skip_bad=run.skip_bad, seed=run.seed,
                                 progress=progress)
    name = run.name or f"scunet-bac-{data.fingerprint.id[:8]}"
    claim_once(registries, name, run.version)  # fail before training, not after
    start = _starting_point(registries, run, progress)
    device = select_device(run.device)
    train, val, planned = _prepare(run, data, start, device.type, deadline, progress)
    if planned.threads is not None:
        import torch

        torch.set_num_threads(planned.threads)
    val_grey, val_mask = _validation_crops(val, planned.patch_size, planned.val_crops, run.seed)
    per_view = _seconds_per_patch(start.model, device, planned.preset) * val.grid_patches / max(1, val.views) + (
        val.seconds / max(1, val.views))
    stage, train_seconds = _budgets(deadline, per_view=per_view, views=val.views)
    options = [*data.command_options(), ("--init", start.label), *run.command_options]
    command = recorded_command("medlim train scunet", options)
    whole_views = _whole_view_validation(start.model, data, val, start=start, planned=planned, command=command,
                                         name=name, version=run.version, progress=progress)
    trainer = ScunetFolderTrainer(start.model, train, val_grey, val_mask, planned, device=device,
                                  train_seconds=train_seconds, whole_views=whole_views)
    resume = fit_resume("scunet", (command, planned.plan.to_json()), trainer.resume_parts, apply=trainer.resume_apply)
    result = fit(trainer.train_epoch, epochs=planned.epochs, validate=trainer.validate, snapshot=trainer.snapshot,
                 deadline=stage, patience=planned.patience, label="SCU-Net", progress=progress, resume=resume)
    trainer.model.load_state_dict(result.state)
    model = trainer.model.to("cpu").eval()
    gate, gate_metrics, region_filter, filter_metrics, fields = _choose_postprocessing(
        model, result.best, data, train, whole_views, start=start, planned=planned, command=command, name=name,
        version=run.version, deadline=deadline, per_view=per_view, progress=progress)
    whole = _evaluate_whole_views(model, fields, data, deadline=deadline, per_view=per_view, progress=progress)
    metrics = {"validation": result.to_json(), "gate_selection": gate_metrics,
               "region_filter_selection": filter_metrics, "whole_view": whole,
               "n_train_views": train.views,
               "n_validation_views": val.views, "patches": {"bac": int(train.positive.sum()),
                                                            "bac_free": int((~train.positive).sum())}}
    entry = register_once(registries, {**fields, "metrics": metrics}, model.state_dict(),
                          allow_shipped_folder=allow_shipped_folder)
    if progress is not None:
        progress(f"registered {entry.label} in {registries.directory}")
    entry, familiarity = _attach_check(entry, train, val, data=data, preset=planned.preset, progress=progress)
    extra: dict[str, Any] = {"data": {"fingerprint": data.fingerprint.id, "split": dict(data.split)},
                             "plan": planned.plan.to_json()["settings"], "whole_view": whole, "init": start.label,
                             "gate_selection": gate_metrics, "region_filter_selection": filter_metrics,
                             "familiarity": familiarity}
    if data.dropped is not None:
        extra["data"]["dropped"] = [p.to_json() for report in data.dropped for p in report.dropped]
    figures = result.to_json()
    if gate is not None:  # what the model was registered with, beside the plain cut-off the epoch was chosen at
        figures = {**figures, "gate": gate.to_json(), "gate_whole_view_score": gate_metrics["kept_gate"]["whole_view_score"]}
    if region_filter is not None:  # and the region filter, with the score it was kept at
        figures = {**figures, "region_filter_whole_view_score": filter_metrics["with_filter"]["whole_view_score"]}
    return TrainingOutcome(registered=(entry,), validation={entry.name: figures}, extra=extra)

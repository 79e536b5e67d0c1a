"""Training loops of the retrieval networks (thesis §6.1.3 and §6.2.3 "Experimental Setup").

* :func:`train_embedding` — one ResNet-18 embedding with one of three
  objectives: ``"oscars"`` (quadruplets, eq. 6.1), ``"triplet"`` (plain
  DeepRank-style triplets) or ``"classification"`` (cross-entropy; the
  embedding is the trunk feature). Every batch holds 32 anchors plus one
  partner per anchor (same class and bin for OSCARS, same class for the
  triplet), so each anchor has a positive; the remaining partners are sampled
  inside the batch (:mod:`medlim.curation.retrieval.oscars`), and each image
  is embedded once per batch.
* :func:`train_pms` — warm-up epochs with the classification loss only while
  the memory bank fills, then the bank is frozen, proxies are its row means,
  and the joint loss ``λ·L_cls + (1 − λ)·L_pms`` is optimised.

Deviation from the thesis (stated in the weights' manifest entries too):
training from scratch (no ImageNet weights) with Adam (lr 1e-3) for 30
epochs (PMS: 5 warm-up + 10 joint, the thesis's schedule) instead of SGD for
50 epochs from a pre-trained backbone, because
the shipped models must train on a CPU in minutes. Deterministic for a seed on
the CPU; progress through an optional ``log(line)`` callback. Inside a job
(issue 15) each epoch is saved and a resumed job goes on after the last saved
one (:func:`medlim.core.training.run_epochs`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from medlim.core.augmentation import INTENSITY_DRAWS, augment_intensity
from medlim.curation.retrieval.nets import EmbeddingNet, PmsNet
from medlim.curation.retrieval.oscars import LAMBDA as OSCARS_LAMBDA
from medlim.curation.retrieval.oscars import (
    oscars_loss,
    sample_quadruplets,
    sample_triplets,
    semihard_intra_negatives,
    semihard_negatives,
    triplet_loss,
)
from medlim.curation.retrieval.pms import LAMBDA, MemoryBank, classification_loss, imbalance_ratios, pms_loss
from medlim.errors import ParameterError

if TYPE_CHECKING:
    from medlim.core.training import Deadline

__all__ = ["EMBEDDING_METHODS", "RetrievalTrainingConfig", "EmbeddingTrainer", "PmsTrainer", "LR_SCHEDULES",
           "AUGMENTATIONS", "MININGS", "StrongAugmentation", "augment_batch", "augment_batch_strong",
           "train_embedding", "train_pms", "embed", "pms_outputs"]

EMBEDDING_METHODS: tuple[str, ...] = ("oscars", "triplet", "classification")
LR_SCHEDULES: tuple[str, ...] = ("constant", "poly")
#: Batch augmentations: :func:`augment_batch` (``"light"``) and :func:`augment_batch_strong` (``"strong"``).
AUGMENTATIONS: tuple[str, ...] = ("light", "strong")
#: How the negative of a triplet (OSCARS: the inter-class negative) is drawn: at random among the batch's other
#: classes (the thesis), or the semi-hard one (:func:`~medlim.curation.retrieval.oscars.semihard_negatives`).
MININGS: tuple[str, ...] = ("random", "semihard", "semihard-all")
Log = Callable[[str], None]


@dataclass(frozen=True)
class RetrievalTrainingConfig:
    """Hyper-parameters (defaults = the shipped recipes).

    Attributes:
        input_size: square grey input side (thesis 224; shipped 64).
        width: ResNet-18 base width (torchvision 64; shipped 16 → 128-d features).
        epochs: embedding epochs (OSCARS/baselines); PMS: joint epochs after the warm-up.
        warmup_epochs: PMS warm-up (classification only, bank filling).
        anchors: anchors per batch (each brings one partner).
        batch_size: PMS batch size.
        lr: Adam learning rate.
        branch_dim: PMS class-embedding size (thesis 256).
        bank_size: PMS memory bank M per class (thesis 1000).
        pms_weight: PMS λ (thesis 0.25).
        oscars_weight: OSCARS's λ, the weight of its intra-class hinge (Eq. 6.1; thesis 0.05).
        seed, threads: determinism and CPU threads (one by default: the shipped models were
            trained on one thread of a shared machine).
        augment: augmentation of every training batch; off in the phantom recipes (the shipped
            models were trained without it), planned on for a user's folder.
        augmentation: which, when ``augment`` is on: ``"light"`` (:func:`augment_batch`) or
            ``"strong"`` (:func:`augment_batch_strong`, planned for an OSCARS family).
        mining: ``"random"`` negatives (the thesis) or ``"semihard"`` ones (a stated deviation) for
            OSCARS's inter-class negative and the triplet baseline's; ``"semihard-all"`` (planned for an
            OSCARS family) also mines OSCARS's intra-class negative (the triplet is as ``"semihard"``).
        lr_schedule: ``"constant"`` (the phantom recipes) or ``"poly"`` (nnU-Net's
            ``lr·(1 − epoch/epochs)^0.9``, set at the start of every epoch; an OSCARS family on a
            user's folders also follows its ``--max-minutes`` share, see :func:`_set_learning_rate`).
    """

    input_size: int = 64
    width: int = 16
    epochs: int = 8
    warmup_epochs: int = 3
    anchors: int = 32
    batch_size: int = 32
    lr: float = 1e-3
    branch_dim: int = 256
    bank_size: int = 1000
    pms_weight: float = LAMBDA
    seed: int = 0
    threads: int = 1
    augment: bool = False
    lr_schedule: str = "constant"
    augmentation: str = "light"
    mining: str = "random"
    oscars_weight: float = OSCARS_LAMBDA

    def __post_init__(self) -> None:
        for name, allowed in (("lr_schedule", LR_SCHEDULES), ("augmentation", AUGMENTATIONS), ("mining", MININGS)):
            if getattr(self, name) not in allowed:
                raise ParameterError(f"`{name}` must be one of {allowed}, {getattr(self, name)!r} is given.")
        for name in ("input_size", "width", "epochs", "anchors", "batch_size", "branch_dim", "bank_size", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"`{name}` must be a positive integer, {value!r} is given.")
        if isinstance(self.warmup_epochs, bool) or not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 1:
            raise ParameterError(f"`warmup_epochs` must be ≥ 1 (the bank needs it), {self.warmup_epochs!r} is given.")
        if not 0.0 <= self.pms_weight <= 1.0:
            raise ParameterError(f"`pms_weight` (λ) must be in [0, 1], {self.pms_weight!r} is given.")
        if not 0.0 <= self.oscars_weight <= 1.0:
            raise ParameterError(f"`oscars_weight` (OSCARS's λ) must be in [0, 1], {self.oscars_weight!r} is given.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tensor(images: np.ndarray, config: RetrievalTrainingConfig) -> torch.Tensor:
    array = np.asarray(images, dtype=np.float32)
    if array.ndim != 3 or array.shape[1:] != (config.input_size, config.input_size) or len(array) < 4:
        raise ParameterError(f"training images must be [N ≥ 4, {config.input_size}, {config.input_size}]; "
                             f"shape {array.shape} is given.")
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    return torch.from_numpy(np.ascontiguousarray(array)).unsqueeze(1)


#: Augmentation strengths: zoom-crop of up to this share of the side, contrast factor 1 ± this, brightness ± this.
AUGMENT_ZOOM, AUGMENT_CONTRAST, AUGMENT_BRIGHTNESS = 0.1, 0.1, 0.05


def augment_batch(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A randomly zoomed, shifted and contrast-jittered copy of a batch (no flips: laterality carries meaning).

    Each image is cropped to a random square of ``1 − u·AUGMENT_ZOOM`` of its side at a random place
    and resized back (bilinear, border padding), then its contrast about its mean is scaled by
    ``1 ± AUGMENT_CONTRAST`` and ``± AUGMENT_BRIGHTNESS`` is added; values stay in [0, 1].

    Args:
        batch: ``Tensor[B, 1, s, s]`` float in [0, 1].
        generator: the augmentation's own random stream (the training's other streams are untouched).
    """
    n = batch.shape[0]
    scale = 1.0 - AUGMENT_ZOOM * torch.rand(n, generator=generator)
    shift = (2.0 * torch.rand(n, 2, generator=generator) - 1.0) * (1.0 - scale).unsqueeze(1)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = scale, scale, shift
    grid = torch.nn.functional.affine_grid(theta.to(batch), list(batch.shape), align_corners=False)
    out = torch.nn.functional.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)
    contrast = 1.0 + AUGMENT_CONTRAST * (2.0 * torch.rand(n, 1, 1, 1, generator=generator) - 1.0)
    brightness = AUGMENT_BRIGHTNESS * (2.0 * torch.rand(n, 1, 1, 1, generator=generator) - 1.0)
    mean = out.mean(dim=(2, 3), keepdim=True)
    return ((out - mean) * contrast.to(out) + mean + brightness.to(out)).clamp(0.0, 1.0)


@dataclass(frozen=True)
class StrongAugmentation:
    """The ``"strong"`` batch augmentation's ranges: what varies between sites' radiographs (issue 12).

    Geometry: a zoom-crop of up to ``zoom`` of the side, a turn of up to ``rotate_degrees`` either way
    (positioning) and a shift within the crop; no flips (laterality carries meaning). Intensity
    (:func:`medlim.core.augmentation.augment_intensity`, the fields below as there): contrast and brightness
    on every image, gamma, noise, blur and a lower resolution on half of them each. Chosen on validation
    radiographs (``medlim.curation.retrieval.plan``).
    """

    zoom: float = 0.2
    rotate_degrees: float = 10.0
    contrast_p: float = 1.0
    contrast: float = 0.3
    brightness: float = 0.1
    gamma_p: float = 0.5
    gamma: tuple[float, float] = (0.67, 1.5)
    noise_p: float = 0.5
    noise: float = 0.05
    blur_p: float = 0.5
    blur: tuple[float, float] = (0.5, 1.5)
    resolution_p: float = 0.5
    resolution: float = 0.5


def augment_batch_strong(batch: torch.Tensor, generator: torch.Generator,
                         policy: StrongAugmentation = StrongAugmentation()) -> torch.Tensor:
    """A randomly zoomed, turned, shifted and intensity-augmented copy of a batch (see :class:`StrongAugmentation`).

    Args:
        batch: ``Tensor[B, 1, s, s]`` float in [0, 1].
        generator: the augmentation's own random stream.
        policy: the ranges.

    Returns:
        ``Tensor[B, 1, s, s]`` in [1/255, 1].
    """
    n = batch.shape[0]
    scale = 1.0 - policy.zoom * torch.rand(n, generator=generator)
    angle = (2.0 * torch.rand(n, generator=generator) - 1.0) * math.radians(policy.rotate_degrees)
    shift = (2.0 * torch.rand(n, 2, generator=generator) - 1.0) * (1.0 - scale).unsqueeze(1)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = scale * torch.cos(angle), -scale * torch.sin(angle)
    theta[:, 1, 0], theta[:, 1, 1] = scale * torch.sin(angle), scale * torch.cos(angle)
    theta[:, :, 2] = shift
    grid = torch.nn.functional.affine_grid(theta.to(batch), list(batch.shape), align_corners=False)
    moved = torch.nn.functional.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)
    draws = torch.rand(n, INTENSITY_DRAWS, generator=generator)
    return torch.stack([augment_intensity(moved[i], draws[i], policy, generator) for i in range(n)])


class _Augmenter:
    """The batch transform of a run: :func:`augment_batch` or :func:`augment_batch_strong` (``config.augmentation``)
    on its own seeded stream (``generator``, which a job's checkpoint keeps), or the identity when
    ``config.augment`` is off (``generator`` is ``None``)."""

    def __init__(self, config: RetrievalTrainingConfig) -> None:
        self.generator = torch.Generator().manual_seed(config.seed + 17) if config.augment else None
        self.transform = augment_batch_strong if config.augmentation == "strong" else augment_batch

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return batch if self.generator is None else self.transform(batch, self.generator)


def _augmenter(config: RetrievalTrainingConfig) -> _Augmenter:
    """The batch transform of a run (see :class:`_Augmenter`)."""
    return _Augmenter(config)


def _set_learning_rate(optimiser: torch.optim.Optimizer, config: RetrievalTrainingConfig, done: int, total: int,
                       budget: "Deadline | None" = None) -> None:
    """The epoch's learning rate: constant, or poly decay ``lr·(1 − f)^0.9`` with ``f`` the larger of the epoch
    fraction ``done/total`` and the share of the training budget spent (``budget``, a ``--max-minutes`` share;
    so a run the budget cuts short still ends annealed, as the SCU-Net and Mask R-CNN trainers do)."""
    if config.lr_schedule == "poly":
        fraction = done / max(total, 1)
        if budget is not None:
            fraction = max(fraction, budget.spent_fraction())
        for group in optimiser.param_groups:
            group["lr"] = config.lr * (1.0 - min(fraction, 1.0)) ** 0.9


def _partnered_batches(groups: np.ndarray, anchors: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of ``anchors`` random anchors, each followed by one partner of the same group (when one exists)."""
    order = rng.permutation(len(groups))
    members: dict[int, np.ndarray] = {g: np.nonzero(groups == g)[0] for g in np.unique(groups)}
    batches = []
    for start in range(0, len(order), anchors):
        chosen = order[start : start + anchors]
        partners = []
        for a in chosen:
            pool = members[int(groups[a])]
            pool = pool[pool != a]
            if len(pool):
                partners.append(int(rng.choice(pool)))
        batch = np.unique(np.concatenate([chosen, np.asarray(partners, dtype=np.int64)]))
        if len(batch) > 3:
            batches.append(batch)
    return batches


def _checked_groups(method: str, labels: np.ndarray, count: int, bins: np.ndarray | None) -> np.ndarray:
    """The partner groups of a batch: class (triplet, classification) or class and bin (OSCARS)."""
    if method not in EMBEDDING_METHODS:
        raise ParameterError(f"`method` must be one of {EMBEDDING_METHODS}, {method!r} is given.")
    if labels.shape != (count,) or labels.min() < 0:
        raise ParameterError(f"`classes` must be {count} non-negative integers, shape {labels.shape} is given.")
    if method != "oscars":
        return labels
    if bins is None or np.shape(bins) != (count,):
        raise ParameterError("OSCARS needs one anomaly bin per image (`bins`).")
    return labels * 1000 + np.asarray(bins, dtype=np.int64)


class EmbeddingTrainer:
    """One embedding being trained with OSCARS, plain triplets or classification, an epoch at a time.

    :func:`train_embedding` runs ``config.epochs`` calls of :meth:`train_epoch`;
    the training harness (:func:`medlim.core.training.fit`) calls it with a
    validation after each epoch. The random streams are drawn in the same
    order either way, so a seed gives the same network.

    Args:
        images: ``np.ndarray[N, s, s]`` float32 in [0, 1].
        classes: ``np.ndarray[N]`` int class labels in ``[0, C)``.
        method: one of :data:`EMBEDDING_METHODS`.
        config: hyper-parameters.
        bins: ``np.ndarray[N]`` int anomaly bins (required for ``"oscars"``).
        n_classes: classes of the classifier head (default ``max(classes) + 1``).
    """

    def __init__(self, images: np.ndarray, classes: np.ndarray, *, method: str, config: RetrievalTrainingConfig,
                 bins: np.ndarray | None = None, n_classes: int | None = None) -> None:
        if method not in EMBEDDING_METHODS:
            raise ParameterError(f"`method` must be one of {EMBEDDING_METHODS}, {method!r} is given.")
        self.data = _tensor(images, config)
        self.labels = np.asarray(classes, dtype=np.int64)
        self.groups = _checked_groups(method, self.labels, len(self.data), bins)
        self.bins = None if bins is None else np.asarray(bins)
        self.method, self.config = method, config
        heads = n_classes if n_classes is not None else int(self.labels.max()) + 1
        self.model = EmbeddingNet(channels=1, width=config.width, n_classes=heads if method == "classification" else 0)
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.rng = np.random.default_rng(config.seed)
        self.target = torch.from_numpy(self.labels)
        self.augment = _augmenter(config)
        self.epochs_done = 0
        self.budget: Deadline | None = None  # the --max-minutes share the poly schedule also follows

    def _batch_loss(self, batch: np.ndarray) -> tuple[torch.Tensor, int] | None:
        """The loss of one batch and how many anchors (or images) it averages over; ``None`` when no tuple exists."""
        index = torch.from_numpy(batch)
        if self.method == "classification":
            logits = self.model.logits(self.augment(self.data[index]))
            return torch.nn.functional.cross_entropy(logits, self.target[index]), len(batch)
        embeddings = self.model(self.augment(self.data[index]))
        if self.method == "oscars":
            assert self.bins is not None  # checked by _checked_groups
            rows = self._mined(sample_quadruplets(self.labels[batch], self.bins[batch], self.rng), embeddings, batch)
            if not len(rows):
                return None
            r = torch.from_numpy(rows)
            return oscars_loss(embeddings[r[:, 0]], embeddings[r[:, 1]], embeddings[r[:, 2]], embeddings[r[:, 3]],
                               weight=self.config.oscars_weight), len(rows)
        rows = self._mined(sample_triplets(self.labels[batch], self.rng), embeddings, batch)
        if not len(rows):
            return None
        r = torch.from_numpy(rows)
        return triplet_loss(embeddings[r[:, 0]], embeddings[r[:, 1]], embeddings[r[:, 2]]), len(rows)

    def _mined(self, rows: np.ndarray, embeddings: torch.Tensor, batch: np.ndarray) -> np.ndarray:
        """The sampled tuples with their negatives replaced by semi-hard ones (``config.mining``).

        The last negative must lie farther from the anchor than the tuple's previous member — the positive of a
        triplet, the intra-class negative of an OSCARS quadruplet (the two distances the hinge compares). With
        ``"semihard-all"`` an OSCARS quadruplet's intra-class negative is mined first, against the positive."""
        if self.config.mining == "random" or not len(rows):
            return rows
        with torch.no_grad():
            distances = torch.cdist(embeddings, embeddings).numpy()
        anchors, mined = rows[:, 0], rows.copy()
        if self.config.mining == "semihard-all" and rows.shape[1] == 4:
            mined[:, 2] = semihard_intra_negatives(distances, self.labels[batch], self.bins[batch], anchors,
                                                   distances[anchors, rows[:, 1]], fallback=rows[:, 2])
        mined[:, -1] = semihard_negatives(distances, self.labels[batch], anchors, distances[anchors, mined[:, -2]],
                                          fallback=rows[:, -1])
        return mined

    def train_epoch(self) -> str:
        """One epoch over the training images; returns a progress line."""
        _set_learning_rate(self.optimiser, self.config, self.epochs_done, self.config.epochs, self.budget)
        self.model.train()
        total, count = 0.0, 0
        for batch in _partnered_batches(self.groups, self.config.anchors, self.rng):
            step = self._batch_loss(batch)
            if step is None:
                continue
            loss, used = step
            self.optimiser.zero_grad()
            loss.backward()
            self.optimiser.step()
            total += float(loss.detach()) * used
            count += used
        self.epochs_done += 1
        self.model.eval()
        return f"{self.method} epoch {self.epochs_done}/{self.config.epochs}: loss {total / max(count, 1):.4f}"

    def resume_parts(self) -> dict[str, Any]:
        """What a job's checkpoint keeps (:func:`medlim.core.training_resume.capture_state`)."""
        parts = {"model": self.model, "optimiser": self.optimiser, "rng": self.rng, "epochs_done": self.epochs_done}
        return parts if self.augment.generator is None else {**parts, "augment": self.augment.generator}

    def resume_apply(self, values: Mapping[str, Any]) -> None:
        """Set back the plain values of a checkpoint (the epoch counter)."""
        self.epochs_done = int(values["epochs_done"])


def train_embedding(
    images: np.ndarray,
    classes: np.ndarray,
    *,
    method: str,
    config: RetrievalTrainingConfig,
    bins: np.ndarray | None = None,
    log: Log | None = None,
    key: Sequence[Any] | None = None,
) -> EmbeddingNet:
    """Train an embedding with OSCARS, plain triplets or classification (``config.epochs`` epochs).

    Args:
        images: ``np.ndarray[N, s, s]`` float32 in [0, 1].
        classes: ``np.ndarray[N]`` int class labels in ``[0, C)``.
        method: one of :data:`EMBEDDING_METHODS`.
        config: hyper-parameters.
        bins: ``np.ndarray[N]`` int anomaly bins (required for ``"oscars"``).
        log: progress callback.
        key: what identifies the run (a recipe's settings): inside a job each epoch is saved and a
            resumed job goes on after the last saved one (issue 15); ``None``: nothing saved or read.

    Returns:
        The trained :class:`EmbeddingNet` in eval mode (with a classifier for
        ``"classification"``).
    """
    trainer = EmbeddingTrainer(images, classes, method=method, config=config, bins=bins)
    _run_trainer(trainer, config.epochs, stage=method, label=method, log=log, key=key)
    return trainer.model.eval()


class PmsTrainer:
    """PMS being trained an epoch at a time: warm-up epochs fill the bank, then joint epochs.

    The bank is frozen and the proxies set at the start of the first joint
    epoch; :func:`train_pms` runs ``warmup_epochs + epochs`` calls of
    :meth:`train_epoch`.

    Args:
        images: ``np.ndarray[N, s, s]`` float32 in [0, 1].
        labels: ``np.ndarray[N, k]`` multi-hot {0, 1}.
        config: hyper-parameters.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, config: RetrievalTrainingConfig) -> None:
        self.data = _tensor(images, config)
        targets = np.asarray(labels)
        if targets.ndim != 2 or len(targets) != len(self.data) or not np.isin(targets, (0, 1)).all():
            raise ParameterError(f"`labels` must be a {{0, 1}} matrix [{len(self.data)}, k], shape {targets.shape} "
                                 "is given.")
        self.config = config
        self.target = torch.from_numpy(targets.astype(np.float32))
        self.tau = torch.from_numpy(imbalance_ratios(targets).astype(np.float32))
        self.model = PmsNet(channels=1, width=config.width, n_classes=targets.shape[1], branch_dim=config.branch_dim)
        self.bank = MemoryBank(targets.shape[1], config.branch_dim, size=config.bank_size)
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.proxies: torch.Tensor | None = None
        self.augment = _augmenter(config)
        self.epochs_done = 0

    @property
    def total_epochs(self) -> int:
        return self.config.warmup_epochs + self.config.epochs

    def train_epoch(self) -> str:
        """One warm-up or joint epoch; returns a progress line."""
        config, model = self.config, self.model
        warm = self.epochs_done < config.warmup_epochs
        if not warm and self.proxies is None:
            self.bank.freeze()
            self.proxies = self.bank.proxies()
            model.proxies.copy_(self.proxies)
        _set_learning_rate(self.optimiser, config, self.epochs_done, self.total_epochs)
        model.train()
        total = 0.0
        for index in torch.randperm(len(self.data), generator=self.generator).split(config.batch_size):
            if len(index) < 2:
                continue  # batch norm needs two samples
            embeddings, probabilities = model(self.augment(self.data[index]))
            loss = classification_loss(probabilities, self.target[index])
            if warm or self.proxies is None:
                self.bank.push(embeddings, self.target[index])
            else:
                loss = config.pms_weight * loss + (1.0 - config.pms_weight) * pms_loss(
                    embeddings, self.target[index], self.proxies, self.tau)
            self.optimiser.zero_grad()
            loss.backward()
            self.optimiser.step()
            total += float(loss.detach()) * len(index)
        self.epochs_done += 1
        model.eval()
        stage = "warm-up" if warm else "joint"
        return f"pms {stage} epoch {self.epochs_done}/{self.total_epochs}: loss {total / len(self.data):.4f}"

    def resume_parts(self) -> dict[str, Any]:
        """What a job's checkpoint keeps (:func:`medlim.core.training_resume.capture_state`), the bank too."""
        parts = {"model": self.model, "optimiser": self.optimiser, "generator": self.generator,
                 "epochs_done": self.epochs_done, "proxies": self.proxies, "bank": self.bank.bank,
                 "bank_count": self.bank.count, "bank_frozen": self.bank.frozen}
        return parts if self.augment.generator is None else {**parts, "augment": self.augment.generator}

    def resume_apply(self, values: Mapping[str, Any]) -> None:
        """Set back the plain values of a checkpoint (counter, proxies, memory bank)."""
        self.epochs_done, self.proxies = int(values["epochs_done"]), values["proxies"]
        self.bank.bank, self.bank.count = values["bank"], np.asarray(values["bank_count"], dtype=np.int64)
        self.bank.frozen = bool(values["bank_frozen"])


def _run_trainer(trainer: EmbeddingTrainer | PmsTrainer, epochs: int, *, stage: str, label: str, log: Log | None,
                 key: Sequence[Any] | None) -> None:
    """``epochs`` epochs of ``trainer`` under :func:`medlim.core.training.run_epochs` (inside a job and with a
    ``key``: saved after every epoch and resumed)."""
    from medlim.core.training import run_epochs
    from medlim.core.training_resume import fit_resume

    resume = None if key is None else fit_resume(stage, (*key, trainer.config.to_dict()), trainer.resume_parts,
                                                 apply=trainer.resume_apply)
    run_epochs(lambda _epoch: trainer.train_epoch(), epochs=epochs, label=label, progress=log, resume=resume)


def train_pms(images: np.ndarray, labels: np.ndarray, *, config: RetrievalTrainingConfig,
              log: Log | None = None, key: Sequence[Any] | None = None) -> PmsNet:
    """Train PMS: warm-up (classification, bank filling), then the joint loss.

    Args:
        images: ``np.ndarray[N, s, s]`` float32 in [0, 1].
        labels: ``np.ndarray[N, k]`` multi-hot {0, 1}.
        config: hyper-parameters (``warmup_epochs`` + ``epochs`` joint epochs).
        log: progress callback.
        key: as :func:`train_embedding`.

    Returns:
        The trained :class:`PmsNet` in eval mode, its ``proxies`` buffer set.
    """
    trainer = PmsTrainer(images, labels, config=config)
    _run_trainer(trainer, trainer.total_epochs, stage="pms", label="pms", log=log, key=key)
    return trainer.model.eval()


def _batched(model: torch.nn.Module, images: np.ndarray, fn: Callable[[torch.Tensor], Any], *, chunk: int = 128) -> list[Any]:
    array = np.asarray(images, dtype=np.float32)
    device = next(model.parameters()).device
    outputs = []
    with torch.no_grad():
        for start in range(0, len(array), chunk):
            outputs.append(fn(torch.from_numpy(array[start : start + chunk]).unsqueeze(1).to(device)))
    return outputs


def embed(model: EmbeddingNet, images: np.ndarray) -> np.ndarray:
    """Embeddings ``np.ndarray[N, D]`` float32 of ``[N, s, s]`` images (eval mode, per image)."""
    model.eval()
    parts = _batched(model, images, lambda x: model(x).cpu().numpy())
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, model.embedding_dim), np.float32)


def pms_outputs(model: PmsNet, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(s [N, k], p [N, k])`` float64: class similarities to the proxies and class probabilities."""
    model.eval()

    def run(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        e, p = model(x)
        return model.class_similarity(e).double().cpu().numpy(), p.double().cpu().numpy()

    parts = _batched(model, images, run)
    if not parts:
        return np.zeros((0, model.n_classes)), np.zeros((0, model.n_classes))
    return np.concatenate([s for s, _ in parts]), np.concatenate([p for _, p in parts])

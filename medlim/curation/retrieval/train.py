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
the CPU; progress through an optional ``log(line)`` callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from medlim.curation.retrieval.nets import EmbeddingNet, PmsNet
from medlim.curation.retrieval.oscars import oscars_loss, sample_quadruplets, sample_triplets, triplet_loss
from medlim.curation.retrieval.pms import LAMBDA, MemoryBank, classification_loss, imbalance_ratios, pms_loss
from medlim.errors import ParameterError

__all__ = ["EMBEDDING_METHODS", "RetrievalTrainingConfig", "train_embedding", "train_pms", "embed", "pms_outputs"]

EMBEDDING_METHODS: tuple[str, ...] = ("oscars", "triplet", "classification")
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
        seed, threads: determinism and CPU threads (one by default: the shipped models were
            trained on one thread of a shared machine).
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

    def __post_init__(self) -> None:
        for name in ("input_size", "width", "epochs", "anchors", "batch_size", "branch_dim", "bank_size", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"`{name}` must be a positive integer, {value!r} is given.")
        if isinstance(self.warmup_epochs, bool) or not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 1:
            raise ParameterError(f"`warmup_epochs` must be ≥ 1 (the bank needs it), {self.warmup_epochs!r} is given.")
        if not 0.0 <= self.pms_weight <= 1.0:
            raise ParameterError(f"`pms_weight` (λ) must be in [0, 1], {self.pms_weight!r} is given.")

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


def train_embedding(
    images: np.ndarray,
    classes: np.ndarray,
    *,
    method: str,
    config: RetrievalTrainingConfig,
    bins: np.ndarray | None = None,
    log: Log | None = None,
) -> EmbeddingNet:
    """Train an embedding with OSCARS, plain triplets or classification.

    Args:
        images: ``np.ndarray[N, s, s]`` float32 in [0, 1].
        classes: ``np.ndarray[N]`` int class labels in ``[0, C)``.
        method: one of :data:`EMBEDDING_METHODS`.
        config: hyper-parameters.
        bins: ``np.ndarray[N]`` int anomaly bins (required for ``"oscars"``).
        log: progress callback.

    Returns:
        The trained :class:`EmbeddingNet` in eval mode (with a classifier for
        ``"classification"``).
    """
    if method not in EMBEDDING_METHODS:
        raise ParameterError(f"`method` must be one of {EMBEDDING_METHODS}, {method!r} is given.")
    data = _tensor(images, config)
    labels = np.asarray(classes, dtype=np.int64)
    if labels.shape != (len(data),) or labels.min() < 0:
        raise ParameterError(f"`classes` must be {len(data)} non-negative integers, shape {labels.shape} is given.")
    if method == "oscars":
        if bins is None or np.shape(bins) != (len(data),):
            raise ParameterError("OSCARS needs one anomaly bin per image (`bins`).")
        groups = labels * 1000 + np.asarray(bins, dtype=np.int64)
    else:
        groups = labels
    n_classes = int(labels.max()) + 1
    model = EmbeddingNet(channels=1, width=config.width, n_classes=n_classes if method == "classification" else 0)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = np.random.default_rng(config.seed)
    target = torch.from_numpy(labels)
    model.train()
    for epoch in range(config.epochs):
        total, count = 0.0, 0
        for batch in _partnered_batches(groups, config.anchors, rng):
            index = torch.from_numpy(batch)
            if method == "classification":
                loss = torch.nn.functional.cross_entropy(model.logits(data[index]), target[index])
                used = len(batch)
            else:
                embeddings = model(data[index])
                if method == "oscars":
                    rows = sample_quadruplets(labels[batch], np.asarray(bins)[batch], rng)
                    if not len(rows):
                        continue
                    r = torch.from_numpy(rows)
                    loss = oscars_loss(embeddings[r[:, 0]], embeddings[r[:, 1]], embeddings[r[:, 2]], embeddings[r[:, 3]])
                else:
                    rows = sample_triplets(labels[batch], rng)
                    if not len(rows):
                        continue
                    r = torch.from_numpy(rows)
                    loss = triplet_loss(embeddings[r[:, 0]], embeddings[r[:, 1]], embeddings[r[:, 2]])
                used = len(rows)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * used
            count += used
        if log:
            log(f"{method} epoch {epoch + 1}/{config.epochs}: loss {total / max(count, 1):.4f}")
    return model.eval()


def train_pms(images: np.ndarray, labels: np.ndarray, *, config: RetrievalTrainingConfig,
              log: Log | None = None) -> PmsNet:
    """Train PMS: warm-up (classification, bank filling), then the joint loss.

    Args:
        images: ``np.ndarray[N, s, s]`` float32 in [0, 1].
        labels: ``np.ndarray[N, k]`` multi-hot {0, 1}.
        config: hyper-parameters (``warmup_epochs`` + ``epochs`` joint epochs).
        log: progress callback.

    Returns:
        The trained :class:`PmsNet` in eval mode, its ``proxies`` buffer set.
    """
    data = _tensor(images, config)
    targets = np.asarray(labels)
    if targets.ndim != 2 or len(targets) != len(data) or not np.isin(targets, (0, 1)).all():
        raise ParameterError(f"`labels` must be a {{0, 1}} matrix [{len(data)}, k], shape {targets.shape} is given.")
    target = torch.from_numpy(targets.astype(np.float32))
    tau = torch.from_numpy(imbalance_ratios(targets).astype(np.float32))
    model = PmsNet(channels=1, width=config.width, n_classes=targets.shape[1], branch_dim=config.branch_dim)
    bank = MemoryBank(targets.shape[1], config.branch_dim, size=config.bank_size)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    proxies = None
    model.train()
    for epoch in range(config.warmup_epochs + config.epochs):
        warm = epoch < config.warmup_epochs
        if not warm and proxies is None:
            bank.freeze()
            proxies = bank.proxies()
            model.proxies.copy_(proxies)
        total = 0.0
        for index in torch.randperm(len(data), generator=generator).split(config.batch_size):
            if len(index) < 2:
                continue  # batch norm needs two samples
            embeddings, probabilities = model(data[index])
            loss = classification_loss(probabilities, target[index])
            if warm:
                bank.push(embeddings, target[index])
            else:
                loss = config.pms_weight * loss + (1.0 - config.pms_weight) * pms_loss(
                    embeddings, target[index], proxies, tau)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(index)
        if log:
            stage = "warm-up" if warm else "joint"
            log(f"pms {stage} epoch {epoch + 1}/{config.warmup_epochs + config.epochs}: loss {total / len(data):.4f}")
    return model.eval()


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

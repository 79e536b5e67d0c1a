"""Train-and-register recipes for the shipped retrieval models (thesis §6.1.3, §6.2.3 on phantoms).

OSCARS family (:func:`train_oscars_family`), on radiograph phantoms
(:mod:`medlim.phantoms.radiograph`):

1. internal phantoms (``site="internal"``) train MedShift's per-class CVADs;
2. external phantoms (``site="external"``, the noisy external set D_E) are
   scored by their class's detector and binned per class (k-means, B = 5);
3. OSCARS, the plain triplet baseline and the classification baseline are
   trained on the same external images with the same backbone and schedule;
4. a held-out external set (another seed) is embedded and evaluated
   leave-one-out: precision@K, hit rate@K and S@K (A = scaled anomaly score).

PMS (:func:`train_pms_recipe`), on chest phantoms (:mod:`medlim.phantoms.chest`):
train, then evaluate weighted and unweighted DS and per-class AUC on a
held-out set. Each model is written with :func:`medlim.core.weights.save_weights`
with its held-out table in ``metrics`` and the reproducing command.

Shipped v1 (``medlim train oscars --seed 1``, ``medlim train pms --seed 1``;
64×64 inputs, width 16, Adam 1e-3; 490 external training radiographs, 8
epochs each; 600 chest phantoms, 3 warm-up + 6 joint epochs, batch 32). On
2 CPU cores shared with other jobs (load 10–19) training took 930 s (OSCARS),
1663 s (triplet), 537 s (classification) and 1791 s (PMS) — well over the
5-minute aim, because of the load (once the machine was quiet, a duplicate
PMS run reached epoch 8 of 9 in about 2.5 min). Held-out results
(``medlim retrieval evaluate``), reported as measured:

* radiographs (n = 175): precision@10 triplet 0.446, classification 0.442,
  OSCARS 0.419; S@10 triplet 0.352, classification 0.386, OSCARS 0.389. The
  target (OSCARS lower S@10 than the triplet at ≤ 0.02 lower precision@10) is
  **not met** by these short from-scratch runs (OSCARS is better only at
  S@1: 0.178 vs 0.193). The per-class CVAD scores that define the bins do
  track the phantoms' true shift severity (Spearman 0.46–0.71 per class).
* chest (n = 300): full-match precision@10 unweighted 0.624, weighted 0.475;
  partial 0.943 vs 0.942. The target (weighted above unweighted) is **not
  met**: with a confident classifier, weighting by ``p^q`` discounts the gaps
  of the classes the query lacks, so items with extra findings rank high and
  full matches drop. Per-class AUC: macro 0.917 (nodule 0.67, fracture 0.69,
  the rest ≥ 0.99).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlim.curation.retrieval.evaluate import evaluate_pms, evaluate_single_label
from medlim.curation.retrieval.metrics import K_VALUES
from medlim.curation.retrieval.train import (
    EMBEDDING_METHODS,
    RetrievalTrainingConfig,
    embed,
    pms_outputs,
    train_embedding,
    train_pms,
)

__all__ = ["HELDOUT_SEED", "PRESET", "MODEL_NAMES", "OscarsRun", "train_oscars_family", "train_pms_recipe",
           "chest_set", "recompute_tables"]

HELDOUT_SEED = 9000
#: Input preset of the retrieval models: grey [0, 1], resized square (the ``ood-grey`` preset).
PRESET = "ood-grey"
#: Method → registered model name.
MODEL_NAMES: dict[str, str] = {
    "oscars": "oscars-radiograph",
    "triplet": "triplet-radiograph",
    "classification": "classification-radiograph",
    "pms": "pms-chest",
}
Log = Callable[[str], None]
_DEVIATION = ("ResNet-18 topology at base width 16 (128-d), trained from scratch on phantoms with Adam "
              "for a few epochs (thesis: ImageNet-pretrained 512-d ResNet-18, SGD lr 1e-3, 50 epochs).")


@dataclass(frozen=True)
class OscarsRun:
    """What :func:`train_oscars_family` produced.

    Attributes:
        entries: method → registered :class:`~medlim.core.weights.WeightsEntry`.
        metrics: method → held-out metrics.
        seconds: method → training seconds.
    """

    entries: dict[str, Any]
    metrics: dict[str, dict[str, float]]
    seconds: dict[str, float]


def _registry(registry: Any) -> Any:
    from medlim.core.weights import Registry

    return registry if registry is not None else Registry.load()


def chest_set(*, seed: int, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` chest phantoms at ``size``: ``(images [n, s, s] float32, labels [n, 8] uint8)``."""
    from medlim.phantoms.chest import generate_chest

    phantoms = [generate_chest(seed=seed, index=i, size=size) for i in range(n)]
    return np.stack([p.image for p in phantoms]), np.stack([p.vector for p in phantoms])


def _entry_fields(name: str, *, task: str, architecture: str, kwargs: dict[str, Any], config: RetrievalTrainingConfig,
                  params: dict[str, Any], metrics: dict[str, Any], command: str, seed: int, generator: str,
                  description: str) -> dict[str, Any]:
    from medlim import __version__

    return {
        "name": name, "version": "1", "task": task, "architecture": architecture, "architecture_kwargs": kwargs,
        "preset": PRESET,
        "input_contract": {"channels": 1, "size": [config.input_size, config.input_size], "dtype": "float32",
                           "range": [0.0, 1.0]},
        "output_type": "raw", "params": {"input_size": config.input_size, "training": config.to_dict(), **params},
        "metrics": metrics,
        "provenance": {"command": command, "seed": seed, "data_generator": generator,
                       "data_generator_version": __version__},
        "description": description,
    }


def train_oscars_family(
    *,
    seed: int = 1,
    per_class: int = 70,
    internal_per_class: int = 30,
    heldout_per_class: int = 25,
    methods: tuple[str, ...] = EMBEDDING_METHODS,
    config: RetrievalTrainingConfig | None = None,
    registry: Any = None,
    command: str = "",
    log: Log | None = None,
) -> OscarsRun:
    """Train OSCARS and its baselines on radiograph phantoms and register them (module docstring).

    Args:
        seed: phantom and training seed (held-out set: :data:`HELDOUT_SEED`).
        per_class: external training images per class.
        internal_per_class: internal images per class for the anomaly detectors.
        heldout_per_class: held-out external images per class.
        methods: which of ``oscars``, ``triplet``, ``classification`` to train.
        config: training settings (default :class:`RetrievalTrainingConfig` with ``seed``).
        registry: weights registry (default the settings' one).
        command: reproducing command recorded in the manifest.
        log: progress lines.
    """
    from medlim.core.weights import save_weights
    from medlim.curation.ood.data import phantom_set
    from medlim.curation.retrieval.anomaly import N_BINS, anomaly_bins, fit_class_anomaly
    from medlim.phantoms.radiograph import BODY_PARTS

    config = config or RetrievalTrainingConfig(seed=seed)
    say = log or (lambda line: None)
    registry = _registry(registry)
    internal = phantom_set(seed=seed, per_class=internal_per_class, body_parts=BODY_PARTS, size=config.input_size)
    external = phantom_set(seed=seed + 1, per_class=per_class, body_parts=BODY_PARTS, size=config.input_size,
                           site="external")
    heldout = phantom_set(seed=HELDOUT_SEED, per_class=heldout_per_class, body_parts=BODY_PARTS,
                          size=config.input_size, site="external")
    say(f"phantoms: {len(internal)} internal, {len(external)} external training, {len(heldout)} held-out")
    anomaly = fit_class_anomaly(internal.images, internal.classes, seed=seed, log=None)
    train_scores = anomaly.score(external.images, external.classes)
    bins = anomaly_bins(train_scores, external.classes, n_bins=N_BINS, seed=seed)
    held_scores = anomaly.score(heldout.images, heldout.classes)
    held_anomaly = anomaly.scaled(held_scores, heldout.classes)
    classes = np.array([BODY_PARTS.index(c) for c in external.classes])
    held_classes = np.array([BODY_PARTS.index(c) for c in heldout.classes])
    say(f"anomaly bins per class: B = {N_BINS}; held-out scaled anomaly mean {held_anomaly.mean():.3f}")
    entries: dict[str, Any] = {}
    metrics: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    for method in methods:
        start = time.perf_counter()
        model = train_embedding(external.images, classes, method=method, config=config,
                                bins=bins if method == "oscars" else None, log=say)
        seconds[method] = time.perf_counter() - start
        metrics[method] = evaluate_single_label(embed(model, heldout.images), held_classes, held_anomaly, ks=K_VALUES)
        say(f"{method}: {seconds[method]:.0f} s; held-out precision@10 {metrics[method]['precision@10']:.3f}, "
            f"S@10 {metrics[method]['sensitivity@10']:.4f}")
        kwargs = {"channels": 1, "width": config.width, "n_classes": len(BODY_PARTS) if method == "classification" else 0}
        fields = _entry_fields(
            MODEL_NAMES[method], task="image-retrieval", architecture="retrieval-resnet18", kwargs=kwargs,
            config=config,
            params={"method": method, "classes": list(BODY_PARTS), "similarity": "cosine",
                    "anomaly_bins": N_BINS, "loss": {"lambda": 0.05, "margin_intra": 1.0, "margin_inter": 2.0}
                    if method == "oscars" else {"triplet_margin": 2.0} if method == "triplet" else {"loss": "cross-entropy"},
                    "deviation": _DEVIATION},
            metrics={"heldout": {**metrics[method], "n": len(heldout), "seed": HELDOUT_SEED,
                                 "protocol": "leave-one-out on held-out external radiograph phantoms"},
                     "training_seconds": round(seconds[method], 1)},
            command=command, seed=seed, generator="medlim.phantoms.radiograph",
            description=f"{method} retrieval embedding for radiographs (thesis §6.1)")
        entries[method] = save_weights(registry, fields, model.state_dict())
    return OscarsRun(entries=entries, metrics=metrics, seconds=seconds)


def train_pms_recipe(
    *,
    seed: int = 1,
    n: int = 600,
    heldout_n: int = 300,
    config: RetrievalTrainingConfig | None = None,
    registry: Any = None,
    command: str = "",
    log: Log | None = None,
) -> tuple[Any, dict[str, dict[str, float]], float]:
    """Train PMS on chest phantoms, evaluate weighted/unweighted DS held-out, register it.

    Returns:
        ``(entry, {"weighted": metrics, "unweighted": metrics}, training seconds)``.
    """
    from medlim.core.weights import save_weights
    from medlim.phantoms.chest import FINDINGS

    config = config or RetrievalTrainingConfig(seed=seed, epochs=6, warmup_epochs=3)
    say = log or (lambda line: None)
    registry = _registry(registry)
    images, labels = chest_set(seed=seed, n=n, size=config.input_size)
    held_images, held_labels = chest_set(seed=HELDOUT_SEED, n=heldout_n, size=config.input_size)
    say(f"chest phantoms: {n} training, {heldout_n} held-out")
    start = time.perf_counter()
    model = train_pms(images, labels, config=config, log=say)
    seconds = time.perf_counter() - start
    similarity, probability = pms_outputs(model, held_images)
    results = {mode: evaluate_pms(similarity, probability, held_labels, weighted=mode == "weighted", names=FINDINGS)
               for mode in ("weighted", "unweighted")}
    for mode, values in results.items():
        say(f"pms {mode}: full precision@10 {values['full_precision@10']:.3f}, "
            f"partial precision@10 {values['partial_precision@10']:.3f}")
    kwargs = {"channels": 1, "width": config.width, "n_classes": len(FINDINGS), "branch_dim": config.branch_dim}
    fields = _entry_fields(
        MODEL_NAMES["pms"], task="multilabel-retrieval", architecture="pms-resnet18", kwargs=kwargs, config=config,
        params={"method": "pms", "classes": list(FINDINGS), "bank_size": config.bank_size,
                "lambda": config.pms_weight, "tau": labels.mean(axis=0).round(4).tolist(), "deviation": _DEVIATION},
        metrics={"heldout": {"weighted": results["weighted"], "unweighted": results["unweighted"], "n": heldout_n,
                             "seed": HELDOUT_SEED, "protocol": "leave-one-out on held-out chest phantoms"},
                 "training_seconds": round(seconds, 1)},
        command=command, seed=seed, generator="medlim.phantoms.chest",
        description="PMS multi-label retrieval for chest radiographs (thesis §6.2)")
    entry = save_weights(registry, fields, model.state_dict())
    return entry, results, seconds


def recompute_tables(*, registry: Any = None, log: Log | None = None) -> list[Any]:
    """Re-run the held-out evaluation of the shipped retrieval models with their weights.

    Regenerates the held-out phantoms (:data:`HELDOUT_SEED`), refits the
    per-class anomaly detectors from the recorded training seed (for S@K) and
    evaluates every registered model; returns the comparison tables.
    """
    from medlim.curation.ood.data import phantom_set
    from medlim.curation.retrieval.anomaly import fit_class_anomaly
    from medlim.curation.retrieval.evaluate import comparison_tables
    from medlim.curation.retrieval.service import list_retrieval_models, load_retrieval_model
    from medlim.phantoms.chest import FINDINGS
    from medlim.phantoms.radiograph import BODY_PARTS

    registry = _registry(registry)
    entries = {e.params.get("method"): e for e in list_retrieval_models(registry)}
    single: dict[str, dict[str, Any]] = {}
    embeddings = [m for m in ("triplet", "classification", "oscars") if m in entries]
    if embeddings:
        first = entries[embeddings[0]]
        size = int(first.params["input_size"])
        seed = int(first.provenance.seed or 1)
        held_n = int(first.metrics.get("heldout", {}).get("n", 175)) // len(BODY_PARTS)
        internal_n = 30
        internal = phantom_set(seed=seed, per_class=internal_n, body_parts=BODY_PARTS, size=size)
        heldout = phantom_set(seed=HELDOUT_SEED, per_class=held_n, body_parts=BODY_PARTS, size=size, site="external")
        anomaly = fit_class_anomaly(internal.images, internal.classes, seed=seed)
        held_anomaly = anomaly.scaled(anomaly.score(heldout.images, heldout.classes), heldout.classes)
        classes = np.array([BODY_PARTS.index(c) for c in heldout.classes])
        for method in embeddings:
            model = load_retrieval_model(entries[method].name, version=entries[method].version, registry=registry)
            vectors, _ = model.encode(heldout.images)
            single[method] = {**evaluate_single_label(vectors, classes, held_anomaly), "n": len(heldout)}
            if log:
                log(f"{method}: precision@10 {single[method]['precision@10']:.3f}")
    pms: dict[str, Any] = {}
    if "pms" in entries:
        entry = entries["pms"]
        n = int(entry.metrics.get("heldout", {}).get("n", 300))
        images, labels = chest_set(seed=HELDOUT_SEED, n=n, size=int(entry.params["input_size"]))
        model = load_retrieval_model(entry.name, version=entry.version, registry=registry)
        similarity, probability = model.encode(images)
        pms = {mode: evaluate_pms(similarity, probability, labels, weighted=mode == "weighted", names=FINDINGS)
               for mode in ("weighted", "unweighted")}
        pms["n"] = n
    return comparison_tables(single, pms, classes=FINDINGS)

"""Negatives and augmentation of the OSCARS family's triplet baseline, alone (issue 12, validation).

Trains the plain triplet baseline (:class:`medlim.curation.retrieval.train.EmbeddingTrainer`, no anomaly
detectors, no time budget) on an external folder for a fixed number of epochs with poly decay, once per
``--mining`` × ``--augmentation`` pair, and prints the leave-one-out precision@10 on a validation folder
every ten epochs. This is how the planned ``semihard`` / ``strong`` settings of ``medlim train oscars
--data`` were compared before the full 20-minute command was run.

On 2026-12-06 (validation only: ``medlim phantom radiograph --n 840 --seed 1 --site external --size 256``,
scored on ``--n 350 --seed 9001``; 128 px, 80 epochs, one thread) a prototype of this script gave
precision@10 0.799 random / light, 0.793 random / strong, 0.829 semi-hard / light, 0.846 semi-hard /
strong. The prototype drew its strong augmentation in another order (its own gamma draw in log scale) and
took the hinge's distances from one distance matrix; this script runs the shipped trainer, and its
figures were not measured before it was committed.

Run: ``.venv/bin/python benchmarks/eval_retrieval_sampling.py TRAIN VAL [--epochs 80] [--size 128]
[--pairs random:light,semihard:strong]`` (about 8 minutes per pair at 128 px on one CPU thread).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _folder(path: Path, size: int, classes: list[str] | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from medlim.core.datasets.layouts import open_dataset
    from medlim.curation.ood.data import read_dataset

    dataset = open_dataset(path, task="oscars")
    names = classes or sorted({item.label or "" for item in dataset.items})
    images = read_dataset(dataset, None, size=size).images.images
    return images, np.array([names.index(item.label or "") for item in dataset.items]), names


def main() -> None:
    from medlim.curation.retrieval.evaluate import evaluate_single_label
    from medlim.curation.retrieval.train import EmbeddingTrainer, RetrievalTrainingConfig, embed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("val", type=Path)
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--pairs", default="random:light,random:strong,semihard:light,semihard:strong")
    args = parser.parse_args()
    train, train_classes, names = _folder(args.train, args.size, None)
    val, val_classes, _ = _folder(args.val, args.size, names)
    results = {}
    for pair in args.pairs.split(","):
        mining, augmentation = pair.split(":")
        config = RetrievalTrainingConfig(input_size=args.size, width=16, epochs=args.epochs, anchors=32, lr=1e-3,
                                         lr_schedule="poly", seed=0, threads=1, augment=True,
                                         augmentation=augmentation, mining=mining)
        trainer = EmbeddingTrainer(train, train_classes, method="triplet", config=config, n_classes=len(names))
        for epoch in range(1, args.epochs + 1):
            trainer.train_epoch()
            if epoch % 10 == 0 or epoch == args.epochs:
                metrics = evaluate_single_label(embed(trainer.model, val), val_classes, np.zeros(len(val)), ks=(10,))
                print(f"{pair} epoch {epoch}: precision@10 {metrics['precision@10']:.3f}", flush=True)
        results[pair] = metrics["precision@10"]
    print(json.dumps(results))


if __name__ == "__main__":
    main()

"""PMS retrieval under the three DS weightings, on validation and held-out chest phantoms (issue 12).

The decision on the open PMS question: eq. 6.5 stays as ``--ds thesis``; a
``--ds symmetric`` weighting (``w_i = max(p_i^q, p_i^t)``, a deviation, see
:mod:`medlim.curation.retrieval.weighting`) also counts the candidate's
findings; ``--ds unweighted`` drops the weights. The default
(:data:`~medlim.curation.retrieval.weighting.DEFAULT_DS`) is fixed once in
code, for every model, on *validation* data only, and must not lose to the
unweighted DS at full-match P@10 on held-out data.

Protocol (the thesis's, :func:`medlim.curation.retrieval.evaluate.evaluate_pms`):
every image queries all the others (leave-one-out); P@K = share of the top K
that is relevant, full match (identical label sets) and partial match (≥ 1
shared label); every query counts, ``No Finding`` images included (their
count and their own full-match P@10 are printed too).

* ``chest8``: the shipped ``pms-chest`` model (v3), as registered.
* ``mimic14``: the 14 MIMIC-CXR-like classes; no model is shipped, so the
  recipe's network is trained here first (``medlim train pms --seed 1
  --label-set mimic14``: 1,200 phantoms, 5 + 10 epochs, one thread; about a
  minute), unless ``--mimic14-model NAME`` names a registered one.

Splits: validation = chest phantoms of seed 5000 (n = 1,200 by default),
held-out = seed 9000 (n = 600, the shipped tables' set). The default was
chosen as the weighting with the highest validation full-match P@10 averaged
over the two families (``--split validation``); ``--split held-out`` was then
run once.

Run: ``python benchmarks/eval_pms_weighting.py [--split validation|held-out|both] [--family chest8|mimic14|both]
[--n N] [--json]`` (chest8 held-out alone: about a minute on one CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medlim.curation.retrieval.evaluate import evaluate_pms  # noqa: E402
from medlim.curation.retrieval.recipe import chest_set  # noqa: E402
from medlim.curation.retrieval.weighting import DEFAULT_DS, DS_WEIGHTINGS  # noqa: E402

#: Seed and default size of each split.
SPLITS = {"validation": (5000, 1200), "held-out": (9000, 600)}
KS = (1, 5, 10)
_TRAINED: dict = {}


def _outputs(family: str, images: np.ndarray, model_name: str | None) -> tuple[np.ndarray, np.ndarray, tuple]:
    """``(s, p, class names)`` of the family's model on the images."""
    from medlim.curation.retrieval.service import load_retrieval_model
    from medlim.curation.retrieval.train import RetrievalTrainingConfig, pms_outputs, train_pms
    from medlim.phantoms.chest import label_names

    if family == "chest8" or model_name:
        model = load_retrieval_model(model_name or "pms-chest")
        s, p = model.encode(images)
        return s.astype(np.float64), p, model.classes
    if "mimic14" not in _TRAINED:  # the recipe's network, trained once per run
        start = time.perf_counter()
        train_images, train_labels = chest_set(seed=1, n=1200, size=64, label_set="mimic14")
        _TRAINED["mimic14"] = train_pms(train_images, train_labels,
                                        config=RetrievalTrainingConfig(seed=1, epochs=10, warmup_epochs=5))
        print(f"  (mimic14 network trained in {time.perf_counter() - start:.0f} s)", file=sys.stderr)
    s, p = pms_outputs(_TRAINED["mimic14"], images)
    return s, p, label_names("mimic14")


def evaluate(family: str, split: str, n: int | None, model_name: str | None) -> dict:
    """P@K of every weighting, full and partial match, over all queries and over No Finding queries."""
    seed, default_n = SPLITS[split]
    count = n or default_n
    images, labels = chest_set(seed=seed, n=count, size=64, label_set=family)
    s, p, names = _outputs(family, images, model_name)
    no_finding = [i for i, name in enumerate(names) if name.lower() == "no finding"][0]
    alone = labels[:, no_finding] == 1
    out: dict = {"family": family, "split": split, "seed": seed, "n": count, "no_finding_queries": int(alone.sum())}
    for ds in DS_WEIGHTINGS:
        metrics = evaluate_pms(s, p, labels, ds=ds, names=names, ks=KS)
        out[ds] = {key: metrics[key] for key in metrics if "precision@" in key}
        out[ds]["no_finding_full_precision@10"] = _subset_precision(s, p, labels, ds, alone)
    return out


def _subset_precision(s: np.ndarray, p: np.ndarray, labels: np.ndarray, ds: str, queries: np.ndarray) -> float:
    """Full-match P@10 of the chosen queries (each still searching every other image)."""
    from medlim.curation.retrieval.metrics import precision_at_k, relevance_multilabel
    from medlim.curation.retrieval.pms import PmsCollection

    rows = np.nonzero(queries)[0]
    found = PmsCollection(s, probability=p).search(s[rows], p[rows], 10, exclude=rows, ds=ds)
    return precision_at_k(relevance_multilabel(labels[rows], labels, found.ids, mode="full"), 10)


def _table(result: dict) -> str:
    head = (f"{result['family']} — {result['split']} (seed {result['seed']}, n = {result['n']}, "
            f"{result['no_finding_queries']} No Finding queries included)")
    lines = [head, "| DS | " + " | ".join(f"full P@{k}" for k in KS) + " | " + " | ".join(f"partial P@{k}" for k in KS)
             + " | No Finding full P@10 |", "|---" * (2 * len(KS) + 2) + "|"]
    for ds in DS_WEIGHTINGS:
        row = result[ds]
        cells = [row[f"{m}_precision@{k}"] for m in ("full", "partial") for k in KS]
        lines.append(f"| {ds}{' (default)' if ds == DEFAULT_DS else ''} | "
                     + " | ".join(f"{v:.3f}" for v in cells) + f" | {row['no_finding_full_precision@10']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("validation", "held-out", "both"), default="held-out")
    parser.add_argument("--family", choices=("chest8", "mimic14", "both"), default="chest8")
    parser.add_argument("--n", type=int, default=None, help="phantoms per split (default 1200 validation, 600 held-out)")
    parser.add_argument("--mimic14-model", default=None, help="a registered mimic14 PMS model instead of training one")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    families = ("chest8", "mimic14") if args.family == "both" else (args.family,)
    splits = ("validation", "held-out") if args.split == "both" else (args.split,)
    results = [evaluate(f, s, args.n, args.mimic14_model if f == "mimic14" else None)
               for f in families for s in splits]
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print("\n\n".join(_table(r) for r in results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

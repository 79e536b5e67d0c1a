"""The weightings of PMS's dissimilarity DS, and the default one (thesis §6.2.2 eq. 6.5, and a deviation).

``DS(q, t) = Σ_i w_i·|s_i^q − s_i^t|`` over the k classes, lower = more similar:

* ``"thesis"`` — eq. 6.5: ``w_i = p_i^q``, the query's class probabilities.
  With a confident classifier a class the query lacks weighs ≈ 0, so a
  candidate carrying the query's findings *plus others* scores the same DS
  as an exact match (thesis Table 6.2 shows the resulting tie at full-match
  P@10; :mod:`medlim.curation.retrieval.pms` has the phantom figures).
* ``"symmetric"`` — **a deviation from the thesis**: ``w_i = max(p_i^q, p_i^t)``,
  the fuzzy union of the query's and the candidate's predicted findings. A
  class either image is predicted to carry counts in full, so a candidate's
  extra findings cost it exactly what missing ones do; only classes both are
  confidently without drop out (their ``s_i`` are noise there). With perfect
  outputs (``p = s = y``) it is the Hamming distance of the label sets, so
  exact matches come first; DS stays symmetric in ``q`` and ``t``. It needs
  the candidates' probabilities, which collections keep beside ``s``. (The
  mean ``(p^q + p^t)/2`` was the other candidate; it halves the penalty and
  came out lower on the validation sets of :data:`DEFAULT_DS`: full-match
  P@10 0.415 / 0.236 against 0.419 / 0.239.)
* ``"unweighted"`` — ``w_i = 1``.

Only numpy here, so the command line can list the weightings without loading torch.
"""

from __future__ import annotations

import numpy as np

from medlim.errors import ParameterError

__all__ = ["DS_WEIGHTINGS", "DEFAULT_DS", "resolve_ds", "ds_weights"]

#: Weightings of the dissimilarity DS (module docstring).
DS_WEIGHTINGS: tuple[str, ...] = ("thesis", "symmetric", "unweighted")
#: The weighting used unless one is named: fixed once, for every model (never per model), on validation
#: data only (``benchmarks/eval_pms_weighting.py --split validation --family both``): the highest
#: full-match P@10 averaged over the two chest phantom families, leave-one-out on seed 5000, n = 1,200 each
#: (chest8 with the shipped pms-chest v3; mimic14 with the recipe's network, training seed 1):
#: symmetric 0.419 / 0.239 (mean 0.329), unweighted 0.428 / 0.228 (0.328), thesis 0.299 / 0.197 (0.248).
#: Symmetric and unweighted are level within noise on validation (paired per-query difference
#: −0.010 ± 0.004 on chest8, +0.011 ± 0.004 on mimic14). Held-out (seed 9000, n = 600), run once afterwards:
#: full-match P@10 symmetric 0.407 / 0.214, unweighted 0.398 / 0.202, thesis 0.303 / 0.177.
DEFAULT_DS = "symmetric"


def resolve_ds(ds: str | None, query_probability: object = True) -> str:
    """The weighting to use: ``ds`` checked, or (``None``) ``"thesis"`` with query probabilities, else ``"unweighted"``.

    ``None`` keeps the meaning of the older ``query_probability``-or-``None`` calls.

    Raises:
        ParameterError: an unknown weighting.
    """
    if ds is None:
        return "unweighted" if query_probability is None else "thesis"
    if ds not in DS_WEIGHTINGS:
        raise ParameterError(f"`ds` must be one of {', '.join(DS_WEIGHTINGS)}; {ds!r} is given.")
    return ds


def ds_weights(ds: str, query_probability: np.ndarray | None, item_probability_columns: np.ndarray | None
               ) -> np.ndarray | None:
    """Class weights of DS for one query: ``None`` (all 1), ``[k]`` or ``[k, N]`` (one per class and item).

    Args:
        ds: one of :data:`DS_WEIGHTINGS`.
        query_probability: ``[k]`` p^q (needed by ``"thesis"`` and ``"symmetric"``).
        item_probability_columns: ``[k, N]`` p^t of the items, class by class (needed by ``"symmetric"``).

    Returns:
        ``thesis``: ``p^q``; ``symmetric``: ``max(p_i^q, p_i^t)`` per class and item;
        ``unweighted``: ``None``.

    Raises:
        ParameterError: a probability the weighting needs is missing.
    """
    if ds == "unweighted":
        return None
    if query_probability is None:
        raise ParameterError(f"DS {ds!r} weights by the query's class probabilities; none are given.")
    query = np.asarray(query_probability, np.float64)
    if ds == "thesis":
        return query
    if item_probability_columns is None:
        raise ParameterError("DS 'symmetric' also weights by the candidates' class probabilities, which this "
                             "collection does not hold; rebuild it (`medlim retrieval build`) or choose "
                             "--ds thesis or --ds unweighted.")
    return np.maximum(query[:, None], item_probability_columns)

"""Image retrieval for curators: outlier-sensitive (OSCARS) and multi-label (PMS) search (thesis ch. 6).

What lives here: the vector index with a stable verb set over FAISS
(:mod:`.index`: exact flat search by default, IVF and HNSW for large
collections), the embedding networks (:mod:`.nets`: a ResNet-18 topology for
small grey inputs, the PMS multi-branch head), OSCARS quadruplet sampling and
its weighted intra/inter triplet loss with the plain-triplet and
classification baselines (:mod:`.oscars`), per-class anomaly scores and their
bins (:mod:`.anomaly`), the PMS memory bank, proxies, loss and exact
dissimilarity search (:mod:`.pms`) with its DS weightings (:mod:`.weighting`:
the thesis's eq. 6.5, a symmetric deviation, unweighted), training loops
(:mod:`.train`), retrieval metrics (:mod:`.metrics`), evaluation tables
(:mod:`.evaluate`), the train-and-register recipes on phantoms
(:mod:`.recipe`), training on and evaluating a user's folders
(:mod:`.folder`, planned from the data by :mod:`.plan`) and the collection
service the CLI and the page share (:mod:`.service`).

What does not: the OOD detectors (``medlim.curation.ood``), phantoms
(``medlim.phantoms``), the index metadata tables (``medlim.core.store.retrieval``)
and the page (``pages/retrieval.py``). Import submodules directly; nothing is
imported at package import time.
"""

__all__: list[str] = []

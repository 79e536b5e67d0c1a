"""MedShift: find, group and measure the shift data of an external dataset (thesis ch. 5).

What lives here: lazily read class-folder datasets and generated phantom sets
(:mod:`.data`), per-class detector training and streaming scoring
(:mod:`.detectors`), the per-class acquisition-statistics references fused
with them for mild shifts (:mod:`.acquisition`, issue 13), 1-D k-means grouping with the elbow rule
(:mod:`.grouping`), the classifier G and its TOP-k evaluation
(:mod:`.classifier`), OTDD with POT (:mod:`.otdd`), the pipeline that ties them
together (:mod:`.pipeline`), the check of what a run will use before it starts
(:mod:`.check`), and report, plot and manifest export (:mod:`.report`).

What does not: the detectors' networks, training loops and score formulas
(:mod:`medlim.curation.ood`), phantoms (:mod:`medlim.phantoms.radiograph`),
persistence (:mod:`medlim.core.store.curation`) and the page (``pages/curation.py``).
Import the submodules directly; this package imports nothing at import time.
"""

__all__: list[str] = []

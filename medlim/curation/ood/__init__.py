"""Out-of-distribution detection for single images: TEND, CVAD and an AE baseline (thesis §4.1–4.2).

What lives here: the networks (:mod:`.nets`), fake-OOD distortions and
validation transforms (:mod:`.distortions`), the input preset and data sets
(:mod:`.data`), training loops (:mod:`.train`), scoring with stored calibration
(:mod:`.scoring`), metrics and the G-mean threshold (:mod:`.calibration`),
held-out evaluation (:mod:`.evaluate`), the train-and-register recipe
(:mod:`.recipe`), training on a user's folder (:mod:`.folder`, :mod:`.plan`),
ID/OOD labels from folder names matched tolerantly to a detector's class
(:mod:`.labels`), the service the page and ``medlim ood score`` share
(:mod:`.service`: typed reports) and data for the page's plots (:mod:`.plots`).

What does not: the weights registry (``medlim.core.weights``), phantoms
(``medlim.phantoms.radiograph``), the page (``pages/ood.py``). Import the
submodules directly; this package imports nothing at import time.
"""

__all__: list[str] = []

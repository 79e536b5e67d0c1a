"""The curator's rooms: is this image like the data a model was trained on?

What lives here: out-of-distribution detection for single images
(:mod:`medlim.curation.ood` — TEND, CVAD and an autoencoder baseline, thesis
§4.1–4.2), a cheap acquisition-statistics score for the mild shifts those
detectors miss (:mod:`medlim.curation.image_statistics`, issue 13), and, in
sibling subpackages, dataset shift between sites (MedShift,
thesis ch. 5) and shift-aware retrieval (thesis ch. 6).

What does not: image reading (``medlim.core.io``), the weights registry
(``medlim.core.weights``), synthetic radiographs (``medlim.phantoms.radiograph``)
and anything Streamlit (``pages/``, ``medlim.ui``).
"""

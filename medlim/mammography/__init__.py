"""The radiologist's room: breast arterial calcification (BAC) on mammograms (thesis §3.3).

What lives here:

* ``scunet`` — the SCU-Net network only (169,711 parameters, raw output);
* ``checkpoint`` — explicit key mapping of the authors' published checkpoints;
* ``preprocess`` — the ``thesis`` and ``published`` presets (median filter, breast
  mask, contrast, patch normalisation, tiling and readout defaults);
* ``inference`` — whole-mammogram inference: tile, skip background, batch, merge
  (generic tiling in :mod:`medlim.core.tiling`);
* ``quantify`` — PM, AM, SIM, TAM_X, TSIM_X (eq. 3.8–3.9), breast area, mm²;
* exam grouping, longitudinal readout, training and evaluation in their own modules.
* ``overlay``, ``dicom_export``, ``pdf_report`` — the calcification overlay, DICOM SEG
  and TID 1500 SR, and the exam's PDF report (issue 16).

What does not: image reading and DICOM windowing (:mod:`medlim.core.io`), the
weights registry (:mod:`medlim.core.weights`), pages (``pages/``, ``medlim.ui``),
phantom generation (:mod:`medlim.phantoms`). Importing this package does no work.
"""

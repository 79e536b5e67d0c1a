"""medlim: deep-learning medical image analysis with little or no annotation.

Implements the methods of one PhD thesis (see ``../shared/reference/thesis.txt``)
as a workbench in rooms by the work people do:

* ``medlim.mammography`` – breast arterial calcification (SCU-Net, thesis §3.3);
* ``medlim.microscopy`` – clumped nuclei and liver steatosis (thesis §3.1–3.2);
* ``medlim.curation`` – out-of-distribution scoring, MedShift and retrieval
  (thesis ch. 4–6);

over a shared core (``medlim.core``: image I/O, weights registry, results store,
tiling, metrics) and synthetic data generators (``medlim.phantoms``).
The user interface lives in ``medlim.ui`` (and ``app.py``/``pages/``); nothing
else imports streamlit.

Research use only: not a medical device, not for diagnosis.
"""

from __future__ import annotations

__all__ = ["__version__", "RESEARCH_USE_NOTICE"]

__version__ = "0.1.0"

RESEARCH_USE_NOTICE = (
    "Research use only. medlim is not a medical device and must not be used for "
    "diagnosis or treatment decisions. Its models are trained on synthetic phantoms."
)

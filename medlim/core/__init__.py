"""Shared core every room stands on: image I/O (``io``), weights registry
(``weights``), results store (``store``), device choice (``device``), patch
tiling (``tiling``) and metrics (``metrics``). No streamlit, no room logic."""

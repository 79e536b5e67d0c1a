"""Streamlit user interface helpers shared by ``app.py`` and ``pages/``.

The UI is a thin skin over ``medlim``: pages call library functions and render
their typed results with these helpers. This package (with ``app.py`` and
``pages/``) is the only place that imports streamlit, and it holds no analysis
logic of its own.

Modules:

* ``errors`` – show a ``MedlimError`` as a message saying what to do (and catch
  nothing else, so real bugs surface);
* ``figures`` – plotly image (zoom/pan) and histogram figures, windowing for
  display (pure functions, no streamlit);
* ``metadata`` – the non-identifying metadata table (pure);
* ``loaders`` – cached image reading, bundled samples, weights versions;
* ``caching`` – bounded, expiring caches (``MEDLIM_CACHE_TTL_S``) and memory release;
* ``session_files`` – per-session temporary folders and the janitor that removes them;
* ``shell`` – keeps every page in the app shell and sweeps ended sessions;
* ``widgets`` – the image source picker (upload or bundled sample);
* ``navigation`` – the page list ``app.py`` routes over.
"""

from __future__ import annotations

__all__: list[str] = []

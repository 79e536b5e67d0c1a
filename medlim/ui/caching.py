"""Bounded, expiring Streamlit caches and the app server's memory housekeeping.

Issue 14 ("Budgets"): with unbounded ``st.cache_data`` the app server grew from
0.86 to 7.3 GB and kept 3.5 GB after every session closed. Every cache of the
pages therefore has a ``max_entries`` and a time to live, ``MEDLIM_CACHE_TTL_S``
(default :data:`DEFAULT_CACHE_TTL_S`). Streamlit fixes ``ttl`` when a function
is decorated, so :func:`bounded_cache_data` and :func:`bounded_cache_resource`
create the cached function on its first call and read the variable then (and
again on every call: a changed value gives a fresh cache). Per-upload data use
``scope="session"`` so that Streamlit drops them when the browser disconnects.

:func:`release_memory`, run by the janitor thread of
:mod:`medlim.ui.session_files`, collects garbage and hands freed heap pages back
to the system (``malloc_trim``), at most once per :data:`RELEASE_INTERVAL_S`:
without it glibc may keep the arenas of a decoded 8000 × 8000 image after the
image is gone. ``benchmarks/bench_app_memory.py`` measures the result.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from typing import Any

from medlim.errors import ParameterError

__all__ = [
    "CACHE_TTL_VARIABLE",
    "DEFAULT_CACHE_TTL_S",
    "RELEASE_INTERVAL_S",
    "bounded_cache_data",
    "bounded_cache_resource",
    "cache_ttl_seconds",
    "lru_put",
    "release_memory",
]

#: Environment variable holding the caches' time to live in seconds.
CACHE_TTL_VARIABLE = "MEDLIM_CACHE_TTL_S"
#: Time to live of cached entries when the variable is not set: 20 minutes.
DEFAULT_CACHE_TTL_S = 1200.0
#: Shortest time between two :func:`release_memory` passes.
RELEASE_INTERVAL_S = 10.0


def cache_ttl_seconds(environ: MutableMapping[str, str] | None = None) -> float:
    """The caches' time to live, read from ``MEDLIM_CACHE_TTL_S`` now (:attr:`Settings.cache_ttl_s`).

    Raises:
        ParameterError: the variable is set to something that is not a positive number.
    """
    from medlim.settings import Settings

    return Settings.from_env(None if environ is None else dict(environ)).cache_ttl_s


def _lazily_cached(decorator_name: str, func: Callable[..., Any], options: dict[str, Any]) -> Callable[..., Any]:
    """``func`` wrapped by ``st.<decorator_name>(ttl=<current TTL>, **options)``, built on first call."""
    lock = threading.Lock()
    held: dict[str, Any] = {}

    def cached() -> Any:
        ttl = cache_ttl_seconds()
        with lock:
            if held.get("ttl") != ttl:
                import streamlit as st

                held["func"] = getattr(st, decorator_name)(func, ttl=ttl, **options)
                held["ttl"] = ttl
            return held["func"]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return cached()(*args, **kwargs)

    def clear(*args: Any, **kwargs: Any) -> None:
        """Clear the cache (or the entry of these arguments), as Streamlit's ``.clear``."""
        cached().clear(*args, **kwargs)

    wrapper.clear = clear  # type: ignore[attr-defined]
    return wrapper


def bounded_cache_data(*, max_entries: int, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``st.cache_data`` with ``max_entries`` and the ``MEDLIM_CACHE_TTL_S`` time to live.

    Args:
        max_entries: most entries kept (least recently used dropped first).
        **options: other ``st.cache_data`` options (``show_spinner``, ``scope``).
    """
    if max_entries < 1:
        raise ParameterError(f"`max_entries` must be a positive integer, {max_entries!r} is given.")
    return lambda func: _lazily_cached("cache_data", func, {"max_entries": max_entries, **options})


def bounded_cache_resource(*, max_entries: int, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``st.cache_resource`` with ``max_entries`` and the ``MEDLIM_CACHE_TTL_S`` time to live."""
    if max_entries < 1:
        raise ParameterError(f"`max_entries` must be a positive integer, {max_entries!r} is given.")
    return lambda func: _lazily_cached("cache_resource", func, {"max_entries": max_entries, **options})


def lru_put(cache: OrderedDict, key: Any, value: Any, *, max_entries: int) -> None:
    """Put ``value`` under ``key`` in a session-state LRU, dropping the oldest beyond ``max_entries``."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > max_entries:
        cache.popitem(last=False)


_release_lock = threading.Lock()
_last_release = [float("-inf")]


def _malloc_trim() -> bool:
    """Return freed heap pages to the system (glibc only); whether it could be called."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return False
    return True


def release_memory(*, force: bool = False, now: float | None = None) -> bool:
    """Collect garbage and trim the heap, at most once per :data:`RELEASE_INTERVAL_S`.

    Args:
        force: run even if the last pass was recent.
        now: the current ``time.monotonic()`` (for tests).

    Returns:
        Whether a pass ran.
    """
    now = time.monotonic() if now is None else now
    with _release_lock:
        if not force and now - _last_release[0] < RELEASE_INTERVAL_S:
            return False
        _last_release[0] = now
    gc.collect()
    _malloc_trim()
    return True

"""Registry of phantom kinds, by lazy import string.

Adding a kind is a one-line edit of :data:`KINDS`: ``"name": "module:attribute"``,
where the attribute is a :class:`medlim.phantoms.base.PhantomKind` (or a
zero-argument callable returning one, or a bare ``generate`` function, which
then gets the generic PNG writer). Nothing is imported until a kind is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

from medlim.errors import ParameterError
from medlim.phantoms.base import PhantomKind, check_seed

__all__ = ["KINDS", "get_kind", "kind_names", "generate"]

#: Kind name → ``"module:attribute"``.
KINDS: dict[str, str] = {
    "mammogram": "medlim.phantoms.mammogram:KIND",
    "fluorescence": "medlim.phantoms.fluorescence:KIND",
    "he": "medlim.phantoms.he:KIND",
    "radiograph": "medlim.phantoms.radiograph:KIND",
    "chest": "medlim.phantoms.chest:KIND",
    # A second family, written from a description rather than from the first generator (issues 12, 13):
    # another anatomy model and acquisition chain, to measure the generalisation gap.
    "mammogram-b": "medlim.phantoms.mammogram_b:KIND",
    "radiograph-b": "medlim.phantoms.radiograph_b:KIND",
}


def kind_names() -> tuple[str, ...]:
    """Registered kind names, sorted."""
    return tuple(sorted(KINDS))


def get_kind(name: str) -> PhantomKind:
    """The :class:`PhantomKind` registered as ``name`` (imports its module now).

    Raises:
        ParameterError: unknown kind, or a registry entry that does not resolve.
    """
    if name not in KINDS:
        raise ParameterError(f"unknown phantom kind {name!r}; known kinds: {', '.join(kind_names())}.")
    target = KINDS[name]
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ParameterError(f"phantom kind {name!r} is registered but {module_name} is not installed.") from exc
        raise
    try:
        obj: Any = getattr(module, attribute or "KIND")
    except AttributeError as exc:
        raise ParameterError(f"phantom kind {name!r}: {target} does not exist.") from exc
    if isinstance(obj, PhantomKind):
        return obj
    if callable(obj):
        made = obj() if _takes_no_arguments(obj) else None
        if isinstance(made, PhantomKind):
            return made
        return PhantomKind(name=name, summary=(obj.__doc__ or name).strip().splitlines()[0], generate=obj)
    raise ParameterError(f"phantom kind {name!r}: {target} is neither a PhantomKind nor callable.")


def _takes_no_arguments(fn: Any) -> bool:
    import inspect

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return all(p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               for p in signature.parameters.values()) and not any(
        p.kind is p.KEYWORD_ONLY and p.name == "seed" for p in signature.parameters.values())


def generate(kind: str, *, seed: int, index: int = 0, **params: Any) -> Any:
    """One phantom of ``kind``: a pure function of ``(kind, params, seed, index)``."""
    return get_kind(kind).generate(seed=check_seed(seed), index=index, **params)

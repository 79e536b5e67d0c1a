"""Input widgets shared by the pages: choose images by upload or bundled sample, and
widgets whose value a page owns.

Streamlit forgets a widget's value when a run does not draw it — after the file
list is emptied, or after a visit to another page — and the widget then comes
back at its minimum or first option (issue 17: the BAC cut-off silently fell to
0). :func:`owned_slider`, :func:`owned_selectbox` and :func:`owned_toggle` keep
the value in one session-state key of its own (``<key>_value``), validated on
every run, and draw the widget (key ``<key>``) from it; only a person's change
of the widget writes it back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from medlim.ui.loaders import list_samples

__all__ = [
    "ImageSource",
    "image_source_picker",
    "owned_key",
    "owned_value",
    "owned_selectbox",
    "owned_slider",
    "owned_toggle",
    "set_owned",
]


@dataclass(frozen=True)
class ImageSource:
    """One chosen image file: its display name, its bytes and what identifies this copy.

    Attributes:
        name: the file name as uploaded (shown in this session only).
        data: the file's bytes.
        identity: a stable identity of this upload or sample (the uploader's
            ``file_id``, or a sample's path, size and modification time), so a
            page can remember the content digest instead of hashing the bytes on
            every run; ``""`` when unknown.
    """

    name: str
    data: bytes
    identity: str = ""


def owned_key(key: str) -> str:
    """The session-state key that owns the value of the widget ``key``."""
    return f"{key}_value"


def owned_value(key: str, default: Any, *, valid: Callable[[Any], bool], keep_default: bool = True) -> Any:
    """The value owned by widget ``key``: the stored one when ``valid``, else ``default``.

    Args:
        key: the widget key.
        default: the value when none is owned or the owned one is not ``valid``.
        valid: whether a value may be used.
        keep_default: store ``default`` as the owned value; when false only a
            person's change is ever stored, so a default that changes meanwhile
            (e.g. the task's default model) is followed until someone chooses.
    """
    state = st.session_state
    value = state.get(owned_key(key), default)
    if not valid(value):
        value = default
        if not keep_default:
            state.pop(owned_key(key), None)
    if keep_default:
        state[owned_key(key)] = value
    return value


def set_owned(key: str, value: Any) -> None:
    """Replace the value owned by widget ``key`` (drawn so on the next widget call of this run)."""
    st.session_state[owned_key(key)] = value


def _copy_to_owner(key: str) -> None:
    st.session_state[owned_key(key)] = st.session_state[key]


def _draw_owned(widget: Callable[..., Any], label: str, *, key: str, value: Any, **options: Any) -> Any:
    st.session_state[key] = value  # before the widget exists in this run: allowed, and wins over its default
    widget(label, key=key, on_change=_copy_to_owner, args=(key,), **options)
    return st.session_state.get(owned_key(key), value)


def _in_range(low: float, high: float, *, integer: bool) -> Callable[[Any], bool]:
    def valid(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if integer and int(value) != value:
            return False
        return low <= value <= high

    return valid


def owned_slider(
    label: str,
    *,
    key: str,
    default: float,
    min_value: float,
    max_value: float,
    step: float,
    container: Any = None,
    **options: Any,
) -> float:
    """A slider whose value the page owns (kept while the slider is not drawn, never reset by an upload).

    Args:
        label: the slider's label.
        key: the widget key (the value lives under :func:`owned_key` of it).
        default: the value when none is owned yet, or the owned one is out of range.
        min_value, max_value, step: as ``st.slider``; integers give an integer slider.
        container: where to draw it (``st`` when ``None``).
        options: more ``st.slider`` keyword arguments (``help``, ``disabled``, ...).

    Returns:
        The owned value, in ``[min_value, max_value]``.
    """
    integer = all(isinstance(v, int) and not isinstance(v, bool) for v in (min_value, max_value, step))
    cast = int if integer else float
    default = cast(min(max(default, min_value), max_value))
    value = cast(owned_value(key, default, valid=_in_range(min_value, max_value, integer=integer)))
    set_owned(key, value)
    target = st if container is None else container
    return _draw_owned(target.slider, label, key=key, value=value, min_value=min_value, max_value=max_value,
                       step=step, **options)  # fmt: skip


def owned_selectbox(
    label: str,
    options: Sequence[Any],
    *,
    key: str,
    default: Any,
    keep_default: bool = True,
    container: Any = None,
    **kwargs: Any,
) -> Any:
    """A select box whose choice the page owns (kept across pages and runs that do not draw it).

    Args:
        label: the label.
        options: the choices (non-empty).
        key: the widget key.
        default: the choice when none is owned yet or the owned one is no longer offered
            (must be one of ``options``).
        keep_default: see :func:`owned_value` (false: follow a changing default until a person chooses).
        container: where to draw it (``st`` when ``None``).
        kwargs: more ``st.selectbox`` keyword arguments (``help``, ``format_func``, ...).
    """
    choices = list(options)
    value = owned_value(key, default, valid=lambda v: v in choices, keep_default=keep_default)
    target = st if container is None else container
    return _draw_owned(target.selectbox, label, key=key, value=value, options=choices, **kwargs)


def owned_toggle(label: str, *, key: str, default: bool, container: Any = None, **kwargs: Any) -> bool:
    """A toggle whose state the page owns."""
    value = owned_value(key, bool(default), valid=lambda v: isinstance(v, bool))
    target = st if container is None else container
    return bool(_draw_owned(target.toggle, label, key=key, value=value, **kwargs))


def image_source_picker(*, key: str, samples_dir: Path, multiple: bool = True) -> list[ImageSource]:
    """Upload widget plus a bundled-sample picker; returns the chosen files.

    The uploader accepts any file type on purpose: DICOM files often have no
    suffix, and the reader decides by magic bytes.

    Args:
        key: widget key prefix, unique on the page.
        samples_dir: folder of bundled samples (may be absent).
        multiple: allow several files.

    Returns:
        Uploaded files first, then chosen samples (names relative to ``samples_dir``).
    """
    uploaded = st.file_uploader(
        "Upload images (DICOM, PNG, TIFF or JPEG)",
        accept_multiple_files=multiple,
        key=f"{key}_upload",
        help="Files are read in memory for this session; patient names and IDs are never shown.",
    )
    files = [] if uploaded is None else (uploaded if isinstance(uploaded, list) else [uploaded])
    sources = [ImageSource(name=file.name, data=file.getvalue(), identity=str(file.file_id)) for file in files]

    samples = list_samples(samples_dir)
    if samples:
        labels = {path.relative_to(samples_dir).as_posix(): path for path in samples}
        if multiple:
            chosen = st.multiselect("…or open bundled samples", list(labels), key=f"{key}_samples")
        else:
            one = st.selectbox("…or open a bundled sample", list(labels), index=None, key=f"{key}_samples")
            chosen = [] if one is None else [one]
        sources.extend(ImageSource(name=label, data=labels[label].read_bytes()) for label in chosen)
    else:
        st.caption(f"No bundled samples found in `{samples_dir}`.")
    return sources

"""Cached loaders for the pages: image reading, bundled samples, model versions, the model picker.

Data are cached with ``st.cache_data`` (keyed on the bytes, so re-running a
page after a slider move does not decode again); models, when pages load them,
with ``st.cache_resource``. Every cache is bounded and expires
(:mod:`medlim.ui.caching`); decoded uploads are kept per session, so they go
when the browser disconnects.

Models come from the shipped and the user registry together
(:class:`medlim.core.weights.Registries`). :func:`model_picker` opens on the
task's default model (the user's own choice, else the shipped entry marked
``default: true``) and keeps a person's choice for the whole session (issue 17:
"a choice must stick for the session"), also across visits to other pages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlim.core.io.files import IMAGE_SUFFIXES, image_suffix
from medlim.core.io.record import ImageRecord
from medlim.ui.caching import bounded_cache_data

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.weights import Registries, WeightsEntry

__all__ = [
    "READ_CACHE_ENTRIES",
    "SAMPLE_SUFFIXES",
    "CHOICE_SUFFIX",
    "ModelVersion",
    "PickedModel",
    "read_image_cached",
    "list_samples",
    "model_versions",
    "model_picker",
]

#: File suffixes offered as bundled samples (the reader itself goes by magic bytes).
SAMPLE_SUFFIXES: frozenset[str] = IMAGE_SUFFIXES


#: Decoded images kept per session (an 8000 × 8000 image takes about 256 MB).
READ_CACHE_ENTRIES = 8


@bounded_cache_data(max_entries=READ_CACHE_ENTRIES, scope="session", show_spinner="Reading image…")
def read_image_cached(data: bytes, name: str, frame: int | None = None) -> ImageRecord:
    """:func:`medlim.core.io.read_image` on uploaded bytes, cached on the content in this session.

    Args:
        data: the file's bytes.
        name: the file name (display only; no folders).
        frame: frame of a multi-frame file, or ``None``.

    Raises:
        MedlimError: as :func:`medlim.core.io.read_image` (not cached).
    """
    from medlim.core.io import read_image

    return read_image(data, name=name, frame=frame)


def list_samples(samples_dir: Path) -> list[Path]:
    """Image files under ``samples_dir`` (recursively, sorted); ``[]`` if it is absent."""
    if not samples_dir.is_dir():
        return []
    return sorted(
        path
        for path in samples_dir.rglob("*")
        if path.is_file() and image_suffix(path) in SAMPLE_SUFFIXES and not path.name.startswith(".")
    )


@dataclass(frozen=True)
class ModelVersion:
    """A model of the shipped or the user registry, as shown on the home page.

    Attributes:
        name, version, task, intended_use: from its manifest entry.
        source: ``"shipped"`` (with medlim) or ``"user"`` (trained or imported by a user).
        task_default: it is its task's default model now.
    """

    name: str
    version: str
    task: str
    intended_use: str
    source: str = "shipped"
    task_default: bool = False


def model_versions() -> list[ModelVersion]:
    """Models of the shipped registry (``Settings.weights_dir``) and the user registry (``Settings.models_dir``).

    Returns:
        ``[]`` when none are registered.

    Raises:
        MedlimError: a manifest exists but cannot be read.
    """
    from medlim.core.weights import list_models

    return [
        ModelVersion(
            name=str(model.entry.name),
            version=str(model.entry.version),
            task=str(model.entry.task),
            intended_use=str(model.entry.intended_use),
            source=model.source,
            task_default=model.task_default,
        )
        for model in list_models()
    ]


#: Session-state key suffix under which a picker keeps its choice (``<key>_choice``).
CHOICE_SUFFIX = "_choice"


@dataclass(frozen=True)
class PickedModel:
    """The model chosen in a :func:`model_picker`.

    Attributes:
        entry: its manifest entry.
        source: ``"shipped"`` or ``"user"``.
        directory: the folder of the registry that holds it (load it from there).
    """

    entry: WeightsEntry
    source: str
    directory: Path

    @property
    def label(self) -> str:
        """``name@version``."""
        return self.entry.label


def _opening_label(registries: Registries, task: str, options: list[str], key: str) -> str:
    """The picker's value this run: its live widget value, else the session's choice, else the task default."""
    import streamlit as st

    for remembered in (st.session_state.get(key), st.session_state.get(f"{key}{CHOICE_SUFFIX}")):
        if remembered in options:
            return str(remembered)
    default = registries.default(task)
    return default.label if default is not None and default.label in options else options[0]


def model_picker(
    task: str,
    *,
    key: str,
    label: str = "Model",
    keep: Callable[[WeightsEntry], bool] | None = None,
    container: Any = None,
    help: str | None = None,
) -> PickedModel | None:
    """A select box of the task's models from both registries; ``None`` when the task has none.

    Opens on the task's default model (:meth:`medlim.core.weights.Registries.default`);
    a choice is kept under ``st.session_state[key + "_choice"]`` and restored when
    the page is shown again (Streamlit forgets a widget's value on pages that do
    not show it). Options are ``name@version``; the user's models are marked
    "yours", the default "default".

    Args:
        task: the manifest task (``"ood-detection"``, ``"steatosis-instance-segmentation"``, …).
        key: the widget key (one per picker).
        label: the widget label.
        keep: keep only the entries for which this is true.
        container: where to draw it (default: the main area).
        help: tooltip.

    Raises:
        MedlimError: a manifest cannot be read.
    """
    import streamlit as st

    from medlim.core.weights import USER, Registries

    registries = Registries.load()
    listed = [m for m in registries.models(task) if keep is None or keep(m.entry)]
    if not listed:
        return None
    by_label = {m.entry.label: m for m in listed}
    options = list(by_label)
    st.session_state[key] = _opening_label(registries, task, options, key)

    def describe(option: str) -> str:
        from medlim.core.model_catalogue import picker_label

        return picker_label(by_label[option])  # a user's model: with its dataset, figure and date

    chosen = (container or st).selectbox(label, options, key=key, format_func=describe, help=help)
    st.session_state[f"{key}{CHOICE_SUFFIX}"] = chosen
    model = by_label[chosen]
    directory = registries.user.directory if model.source == USER else registries.shipped.directory
    return PickedModel(entry=model.entry, source=model.source, directory=Path(directory))

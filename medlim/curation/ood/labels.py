"""ID/OOD labels read from folder names, matched tolerantly to a detector's classes (issue 17).

A curator's folders rarely carry the detector's class name verbatim: MURA
names its folders ``XR_HUMERUS``, others write ``Humerus_images`` or
``humerus``. :func:`class_key` reduces a name to what identifies the class
(lower case; runs of separators, camel case and dots split words; a leading
modality word such as MURA's ``XR`` and trailing words such as ``images`` or
``data`` dropped), and a folder matches a class when their keys are equal (a
plural ``s``/``es`` allowed). An image is ID when one of its folders matches one
of the detector's ID classes, so ``XR_HUMERUS/patient01/study1/image1.png``
is a humerus image.

Labels that cannot mean anything are said so in plain words, never passed on
silently: no folder matching the class (every image OOD), every image ID, and
an AUROC below 0.5 (labels inverted or folders that do not mean the class).
One function, :func:`folder_labels`, serves the OOD page, ``medlim ood score
--labels-from-folders`` and ``medlim ood evaluate --data``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlim.errors import ParameterError

__all__ = [
    "detectors_for_classes",
    "PREFIX_WORDS",
    "SUFFIX_WORDS",
    "FolderLabels",
    "class_key",
    "folder_matches",
    "matching_class",
    "folder_labels",
    "auroc_notes",
    "no_match_note",
]

#: Leading words dropped from a folder name: modality prefixes (MURA's ``XR_``).
PREFIX_WORDS: frozenset[str] = frozenset({"xr", "dx", "cr", "rx", "xray", "ct", "mr", "mri", "us"})
#: Trailing words dropped from a folder name: what the folder holds, not which class.
SUFFIX_WORDS: frozenset[str] = frozenset({
    "image", "images", "img", "imgs", "picture", "pictures", "file", "files", "data", "dataset", "set",
    "xray", "xrays", "radiograph", "radiographs", "scan", "scans", "png", "jpg", "dicom", "dcm",
})
#: Folders named in a note at most.
_NAMED = 6


def class_key(name: str) -> str:
    """What identifies a class in a folder or class name.

    ``"XR_HUMERUS"``, ``"humerus"``, ``"Humerus_images"`` and ``"HumerusImages"``
    all give ``"humerus"``; ``"hand-wrist"`` and ``"Hand Wrist"`` give ``"hand_wrist"``.
    A name made only of dropped words keeps them (``"images"`` stays ``"images"``). Letters of every
    script count (``"Épaule droite"`` gives ``"épaule_droite"``, ``"肩 (左)"`` gives ``"肩_左"``), and a
    name is compared in Unicode's composed form (NFKC), so a folder unpacked from a Mac, whose ``É`` is
    stored as ``E`` plus an accent, names the same class as the ``É`` typed on a keyboard.

    Args:
        name: a folder or class name.

    Returns:
        Lower-case words joined by ``_`` (``""`` for a name without letters or digits).
    """
    composed = unicodedata.normalize("NFKC", str(name))
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", composed)
    words = [word for word in re.split(r"[\W_]+", spaced.casefold()) if word]
    while len(words) > 1 and words[0] in PREFIX_WORDS:
        words = words[1:]
    while len(words) > 1 and words[-1] in SUFFIX_WORDS:
        words = words[:-1]
    return "_".join(words)


def folder_matches(folder: str, class_name: str) -> bool:
    """True when ``folder`` names the class ``class_name`` (see :func:`class_key`; a plural allowed)."""
    wanted = class_key(class_name)
    if not wanted:
        return False
    return class_key(folder) in (wanted, f"{wanted}s", f"{wanted}es")


def matching_class(folders: Sequence[str], classes: Sequence[str]) -> tuple[str, str] | None:
    """The first of ``folders``, nearest the file first, that names one of ``classes``.

    Args:
        folders: an image's folders from the top down (``("XR_HUMERUS", "patient01", "study1")``).
        classes: the class names looked for.

    Returns:
        ``(folder, class)``, or ``None`` when no folder names any of the classes.
    """
    for folder in reversed(tuple(folders)):
        for class_name in classes:
            if folder_matches(folder, class_name):
                return folder, class_name
    return None


def _quoted(names: Sequence[str]) -> str:
    quoted = [repr(str(n)) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_NAMED])
    return shown + (f" and {len(names) - _NAMED} more" if len(names) > _NAMED else "")


def no_match_note(id_classes: Sequence[str], top_folders: Sequence[str] = ()) -> str:
    """The plain note for labels where no folder names an ID class (every image counted OOD)."""
    seen = f" (folders: {_listed(list(top_folders))})" if top_folders else " (the images are in no folder)"
    example = class_key(id_classes[0]) if id_classes else "class"
    return (f"no folder matched class {_quoted(id_classes)}{seen} — every image is counted as OOD; AUROC is not "
            f"meaningful. Put the in-distribution images in a folder named like the class, e.g. '{example}' or "
            f"'XR_{example.upper()}'.")


@dataclass(frozen=True)
class FolderLabels:
    """ID/OOD labels of a set of images, read from their folders.

    Attributes:
        is_ood: ``np.ndarray[N]`` bool, true for an image no folder of which names an ID class.
        id_classes: the detector's in-distribution classes.
        matched: ``(folder, class)`` pairs that made images ID, sorted.
        unmatched_classes: ID classes no folder named.
        top_folders: the distinct top folders of the images (what a person sees in the data), sorted.
        notes: plain warnings about the labels (empty when they are fine).
    """

    is_ood: np.ndarray
    id_classes: tuple[str, ...]
    matched: tuple[tuple[str, str], ...]
    unmatched_classes: tuple[str, ...]
    top_folders: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def n_id(self) -> int:
        return int((~self.is_ood).sum())

    @property
    def n_ood(self) -> int:
        return int(self.is_ood.sum())

    @property
    def usable(self) -> bool:
        """Both ID and OOD images: an AUROC can be computed."""
        return self.n_id > 0 and self.n_ood > 0

    def label_words(self) -> list[str]:
        """``"ID"`` or ``"OOD"`` per image."""
        return ["OOD" if flag else "ID" for flag in self.is_ood]


def folder_labels(
    folders: Sequence[Sequence[str]], id_classes: Sequence[str], *, show_folders: bool = True
) -> FolderLabels:
    """Label images ID or OOD by their folders (the rule of the module docstring).

    Args:
        folders: per image, its folders from the top down (``()`` for an image in no folder).
        id_classes: the detector's in-distribution classes.
        show_folders: name the folders in the notes (off when names are pseudonymised).

    Returns:
        The labels and their notes.

    Raises:
        ParameterError: no ID class is given.
    """
    id_classes = tuple(str(c) for c in id_classes)
    if not id_classes:
        raise ParameterError("the detector records no in-distribution class; folder names cannot label images.")
    found = [matching_class(path, id_classes) for path in folders]
    is_ood = np.array([match is None for match in found], dtype=bool)
    matched = tuple(sorted({match for match in found if match is not None}))
    named = {class_name for _, class_name in matched}
    unmatched = tuple(c for c in id_classes if c not in named)
    top = tuple(sorted({str(path[0]) for path in folders if len(path)})) if show_folders else ()
    notes: list[str] = []
    if len(folders) and not matched:
        notes.append(no_match_note(id_classes, top))
    elif len(folders) and not is_ood.any():
        notes.append(f"every image is in a folder of class {_quoted(sorted(named))} — every image is counted as ID; "
                     "AUROC is not meaningful (it needs OOD images too).")
    elif unmatched:
        notes.append(f"no folder matched class {_quoted(unmatched)}; the images of the other ID classes are ID.")
    return FolderLabels(is_ood=is_ood, id_classes=id_classes, matched=matched, unmatched_classes=unmatched,
                        top_folders=top, notes=tuple(notes))


def auroc_notes(auroc: float | None, labels: FolderLabels | None = None) -> tuple[str, ...]:
    """A plain hint when an AUROC is below 0.5 (worse than chance): labels inverted or mismatched.

    Args:
        auroc: the AUROC, or ``None`` when there is none.
        labels: the folder labels it was computed from (names the matched folders).
    """
    if auroc is None or not auroc < 0.5:
        return ()
    matched = ""
    if labels is not None and labels.matched:
        pairs = ", ".join(folder if folder == class_name else f"{folder} → {class_name}"
                          for folder, class_name in labels.matched[:_NAMED])
        matched = f" (counted as ID: {pairs})"
    hint = (f"AUROC {auroc:.3f} is below 0.5: the detector scores the ID images as more unusual than the OOD ones. "
            f"The labels may be inverted, or the ID folders may not hold what the detector's class means{matched}.")
    return (hint,)


def detectors_for_classes(entries: Sequence[Any], classes: Sequence[str]) -> tuple[str, ...]:
    """``name@version`` of the detectors (registry entries) one of whose in-distribution classes names one of a
    folder's ``classes`` (:func:`folder_matches`): the ones a folder can evaluate — without its class every
    image would count as OOD."""
    return tuple(
        f"{entry.name}@{entry.version}" for entry in entries
        if any(folder_matches(name, str(wanted)) for name in classes for wanted in entry.params.get("id_classes") or ())
    )

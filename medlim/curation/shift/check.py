"""What a MedShift run will use, checked before it starts: images per class and the files left out (thesis ch. 5).

:func:`check_shift_data` counts the images of the internal and the external
dataset per class, lists the folder files left out because they are no image
(from their first bytes, :func:`medlim.curation.shift.data.folder_set`; no
pixels are decoded, so a page can check on every rerun) and says what would
stop the run: fewer than two internal classes, an internal class with fewer than
:data:`MIN_CLASS_IMAGES` images, no external image of an internal class. The
Curation page shows it above "Train and score" and blocks the button on a
problem; ``medlim shift check`` prints it and ``medlim shift run`` prints it
before training and stops there on a problem. A file whose pixels do not decode
(a truncated PNG) is found only when the run reads it; it is left out then, worded
by :meth:`LeftOutImage.line` as here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from medlim.curation.shift.data import ImageSet

__all__ = [
    "MIN_CLASS_IMAGES",
    "ClassImages",
    "LeftOutImage",
    "ShiftDataCheck",
    "check_shift_data",
    "too_few_images",
]

#: Internal images a class needs: every 5th is held back to calibrate its detector
#: (:func:`medlim.curation.shift.detectors.split_internal`), and at least 2 must remain to train on.
MIN_CLASS_IMAGES = 5


def too_few_images(class_name: str, count: int, *, left_out: int = 0) -> str:
    """The message of an internal class with fewer than :data:`MIN_CLASS_IMAGES` images (the detectors' wording)."""
    unread = f" ({left_out} more left out: they cannot be read)" if left_out else ""
    return (f"class {class_name!r} has {count} internal images{unread}; a detector needs at least "
            f"{MIN_CLASS_IMAGES}.")


@dataclass(frozen=True)
class ClassImages:
    """Images of one class in each dataset (files left out not counted)."""

    class_name: str
    internal: int
    external: int

    def to_json(self) -> dict[str, Any]:
        """``class, internal images, external images`` (the page's table columns)."""
        return {"class": self.class_name, "internal images": self.internal, "external images": self.external}


@dataclass(frozen=True)
class LeftOutImage:
    """A file of a dataset folder left out of the run because it cannot be read.

    Attributes:
        dataset: ``"internal"`` or ``"external"``.
        file: its path relative to the dataset folder.
        why: the reader's message.
    """

    dataset: str
    file: str
    why: str

    def shown(self) -> LeftOutImage:
        """As outputs may show it: itself, or — while names are withheld (a job's log is read by every user of
        the app, :func:`medlim.core.io.pseudonym.names_withheld`) — its pseudonymous label and no message
        (the reader's message names the file)."""
        from medlim.core.io.pseudonym import file_label, names_withheld

        if not names_withheld():
            return self
        return LeftOutImage(dataset=self.dataset, file=file_label(self.file), why="")

    def line(self) -> str:
        """``left out of the external data, cannot be read: hand/a.png: <why>`` (names withheld in a job)."""
        shown = self.shown()
        detail = f": {shown.why}" if shown.why else ""
        return f"left out of the {shown.dataset} data, cannot be read: {shown.file}{detail}"

    def to_json(self) -> dict[str, Any]:
        """``dataset, file, why`` as shown (:meth:`shown`)."""
        shown = self.shown()
        return {"dataset": shown.dataset, "file": shown.file, "why": shown.why}


@dataclass(frozen=True)
class ShiftDataCheck:
    """What a MedShift run will use, and what would stop it.

    Attributes:
        internal_name, external_name: the datasets' names.
        classes: per class of either dataset (sorted), its images in each.
        left_out: the folder files left out (no image), internal first.
        problems: what would stop the run (empty when it can start).
        notes: what the run will do that a person should know (external classes it does not score).
    """

    internal_name: str
    external_name: str
    classes: tuple[ClassImages, ...]
    left_out: tuple[LeftOutImage, ...] = ()
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the run can start."""
        return not self.problems

    def images(self, dataset: str) -> int:
        """Images the run will use of ``dataset`` (``"internal"`` or ``"external"``; external: all its classes)."""
        return sum(getattr(row, dataset) for row in self.classes)

    def left_out_of(self, dataset: str) -> tuple[LeftOutImage, ...]:
        """The files of ``dataset`` left out."""
        return tuple(item for item in self.left_out if item.dataset == dataset)

    def lines(self) -> list[str]:
        """The text report (``medlim shift check``; ``medlim shift run`` prints it before training)."""
        width = max([len("class"), *(len(row.class_name) for row in self.classes)])
        lines = [f"internal: {self.internal_name}, {self.images('internal')} images",
                 f"external: {self.external_name}, {self.images('external')} images",
                 f"{'class':<{width}}  internal  external"]
        lines += [f"{row.class_name:<{width}}  {row.internal:>8}  {row.external:>8}" for row in self.classes]
        lines += [item.line() for item in self.left_out]
        for dataset in ("internal", "external"):
            count = len(self.left_out_of(dataset))
            if count:
                lines.append(f"{count} of the {dataset} folder's images left out; the run uses the other "
                             f"{self.images(dataset)}.")
        lines += [f"note: {note}" for note in self.notes]
        if self.ok:
            lines.append("The run can start.")
        else:
            lines.append(f"{len(self.problems)} problem(s) stop the run:")
            lines += [f"  {problem}" for problem in self.problems]
        return lines

    def to_json(self) -> dict[str, Any]:
        """``{"internal", "external", "classes", "left_out", "notes", "problems", "ok"}`` (names as :meth:`lines`)."""
        return {"internal": {"name": self.internal_name, "images": self.images("internal")},
                "external": {"name": self.external_name, "images": self.images("external")},
                "classes": [row.to_json() for row in self.classes],
                "left_out": [item.to_json() for item in self.left_out],
                "notes": list(self.notes), "problems": list(self.problems), "ok": self.ok}


def check_shift_data(internal: ImageSet, external: ImageSet) -> ShiftDataCheck:
    """Count what a run of ``internal`` against ``external`` will use and say what would stop it.

    Only the listing is used (no pixels are read): the sets of
    :func:`~medlim.curation.shift.data.parse_dataset` have left out the files
    that are no image already.

    Args:
        internal: the dataset the detectors and G are trained on.
        external: the dataset scored.

    Returns:
        :class:`ShiftDataCheck`; its problems are the errors the run would stop with.
    """
    inside, outside = Counter(internal.classes), Counter(external.classes)
    classes = tuple(ClassImages(class_name=name, internal=inside[name], external=outside[name])
                    for name in sorted(set(inside) | set(outside)))
    problems: list[str] = []
    if len(inside) < 2:
        problems.append(f"the internal dataset needs at least 2 classes, {sorted(inside)} is given.")
    problems += [too_few_images(name, count) for name, count in sorted(inside.items()) if count < MIN_CLASS_IMAGES]
    scored = sum(count for name, count in outside.items() if name in inside)
    if not scored:
        problems.append(f"no external image belongs to an internal class {sorted(inside)}; "
                        f"external classes: {sorted(outside)}.")
    unknown = sorted(name for name in outside if name not in inside)
    notes = []
    if unknown and scored:
        notes.append("external images of classes the internal data lacks are not scored: "
                     + ", ".join(f"{name} {outside[name]}" for name in unknown) + ".")
    left_out = tuple(LeftOutImage(dataset=dataset, file=file, why=why)
                     for dataset, image_set in (("internal", internal), ("external", external))
                     for file, why in image_set.left_out)
    return ShiftDataCheck(internal_name=internal.name, external_name=external.name, classes=classes,
                          left_out=left_out, problems=tuple(problems), notes=tuple(notes))

"""Show ``medlim`` errors on a page as a message a person can act on.

Only :class:`medlim.errors.MedlimError` is caught: any other exception is a bug
and must surface (in tests, and in the app's own error display), never be
hidden behind a friendly box.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from medlim import errors as E

__all__ = ["ErrorOutcome", "advice_for", "error_text", "show_medlim_errors"]

# What to do next, per error family; the most specific class wins (checked in order).
_ADVICE: tuple[tuple[type[E.MedlimError], str], ...] = (
    (E.EmptyFileError, "The file is empty: export it again from the source system."),
    (E.CorruptFileError, "The file is damaged: export it again from the source system and re-upload it."),
    (E.TruncatedFileError, "The file is incomplete: copy or export it again and re-upload it."),
    (
        E.UnsupportedTransferSyntaxError,
        "Export the image uncompressed (or as PNG/TIFF) from the PACS or viewer and upload that.",
    ),
    (
        E.NotDicomImageError,
        "This DICOM object holds no image (e.g. a report): upload the image series instead.",
    ),
    (E.NoPixelDataError, "This DICOM file holds no pixel data: upload the image itself."),
    (E.MultiFrameError, "Choose a frame number, or export the frame you need as a single image."),
    (E.ImageTooLargeError, "Reduce the image (crop or downsample) before uploading it."),
    (
        E.UnsupportedFormatError,
        "Upload a DICOM, PNG, TIFF or JPEG file.",
    ),
    (E.WrongModalityError, "Upload an image of the kind this page analyses."),
    (
        E.PathNotAllowedError,
        "Type a path inside one of the data folders named above, or ask the administrator to add a data folder.",
    ),
    (
        E.ArchiveBudgetError,
        "Split the archive, or copy a large dataset into a data folder and open it from there.",
    ),
    (E.ArchiveError, "Zip the image folders again (no passwords, no archives inside) and upload that."),
    (E.InputError, "Check the file or folder (its path, or the upload) and give it again."),
    (E.ChecksumError, "The model file is damaged: restore it from the repository (`medlim weights verify`)."),
    (E.WeightsError, "Check the weights folder with `medlim weights list`."),
    (E.StoreError, "Check the results database location (MEDLIM_HOME / MEDLIM_DATABASE_URL)."),
    (E.InvalidNameError, "Choose a name of letters A–Z (no accents), digits, spaces, '-', '_' and '.' (up to 64 "
                         "characters)."),
    (E.ParameterError, "Change the setting to a value within its range."),
)


def advice_for(error: E.MedlimError) -> str:
    """What the person should do about ``error`` (plain language, one sentence)."""
    for error_class, advice in _ADVICE:
        if isinstance(error, error_class):
            return advice
    return "Check the input and try again."


def error_text(error: E.MedlimError, *, subject: str | None = None) -> str:
    """Markdown message for ``error``: what went wrong, then what to do.

    Args:
        error: the caught error.
        subject: what was being processed (e.g. a file name), shown first.
    """
    prefix = f"**{subject}:** " if subject else ""
    return f"{prefix}{error.message}\n\n{advice_for(error)}"


@dataclass
class ErrorOutcome:
    """Set by :func:`show_medlim_errors`: ``error`` is the caught error, if any."""

    error: E.MedlimError | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


@contextmanager
def show_medlim_errors(*, subject: str | None = None) -> Iterator[ErrorOutcome]:
    """Run a block; show a ``MedlimError`` raised in it as an error box.

    Any other exception propagates. Use ``outcome.failed`` after the block to
    skip rendering that depends on it::

        with show_medlim_errors(subject=name) as outcome:
            record = read(...)
        if outcome.failed:
            continue

    Args:
        subject: what is being processed (e.g. the file name), shown in the message.
    """
    import streamlit as st

    outcome = ErrorOutcome()
    try:
        yield outcome
    except E.MedlimError as error:
        outcome.error = error
        st.error(error_text(error, subject=subject), icon=":material/error:")

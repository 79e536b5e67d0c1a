"""One exception hierarchy for every error a user can cause or act on.

The UI and the CLI catch ``MedlimError`` (and only it): a clinician gets the
``message``; anything else is a bug and must surface in tests.
"""

from __future__ import annotations

__all__ = [
    "MedlimError",
    "InputError",
    "EmptyFileError",
    "UnsupportedFormatError",
    "NotDicomImageError",
    "NoPixelDataError",
    "TruncatedFileError",
    "CorruptFileError",
    "UnsupportedTransferSyntaxError",
    "ImageTooLargeError",
    "MultiFrameError",
    "WrongModalityError",
    "WeightsError",
    "ChecksumError",
    "CheckpointMappingError",
    "StoreError",
    "ParameterError",
    "BudgetError",
    "DecodeBudgetError",
    "ArchiveError",
    "ArchiveBudgetError",
    "PathNotAllowedError",
    "InvalidNameError",
    "JobError",
    "WorkerLostError",
]


class MedlimError(Exception):
    """Base class: an error with a message a person can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class InputError(MedlimError):
    """The input file or bytes cannot be used."""


class EmptyFileError(InputError):
    """The file has no bytes at all."""


class UnsupportedFormatError(InputError):
    """Not a DICOM, PNG, TIFF, JPEG or 2-D NIfTI file."""


class NotDicomImageError(InputError):
    """A DICOM file that is not an image (report, structured document, ...)."""


class NoPixelDataError(InputError):
    """A DICOM object without pixel data."""


class TruncatedFileError(InputError):
    """The file ends before its pixel data does."""


class CorruptFileError(InputError):
    """The file is of a known format but damaged (its structure cannot be parsed)."""


class UnsupportedTransferSyntaxError(InputError):
    """The DICOM compression cannot be decoded here."""


class ImageTooLargeError(InputError):
    """The image is absurdly large (or has absurd dimensions)."""


class MultiFrameError(InputError):
    """A multi-frame image was given where a frame must be chosen (``count``: its frames, pages or slices)."""

    def __init__(self, message: str, *, count: int = 0) -> None:
        super().__init__(message)
        self.count = count


class WrongModalityError(InputError):
    """The image is not of the kind the analysis expects (e.g. not a mammogram)."""


class WeightsError(MedlimError):
    """A model's weights are missing, unknown or unusable."""


class ChecksumError(WeightsError):
    """The weights file does not match the checksum in the manifest."""


class CheckpointMappingError(WeightsError):
    """An external checkpoint's keys do not map exactly onto the architecture."""


class StoreError(MedlimError):
    """The results store cannot be opened, migrated or written."""


class ParameterError(MedlimError):
    """A parameter is out of its valid range."""


class BudgetError(MedlimError):
    """A resource budget (memory, disk, members) would be exceeded.

    Attributes:
        limit: the budget in force (a number, in the unit the message states).
        variable: the ``MEDLIM_*`` environment variable that raises it.
    """

    def __init__(self, message: str, *, limit: int | float, variable: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.variable = variable


class DecodeBudgetError(ImageTooLargeError, BudgetError):
    """Decoding the image would take more memory than ``MEDLIM_DECODE_BUDGET_MB`` allows."""

    def __init__(self, message: str, *, limit: int | float, variable: str = "MEDLIM_DECODE_BUDGET_MB") -> None:
        BudgetError.__init__(self, message, limit=limit, variable=variable)


class ArchiveError(InputError):
    """An uploaded archive cannot be opened or holds something refused (paths leaving it, nested archives)."""


class ArchiveBudgetError(ArchiveError, BudgetError):
    """An archive would expand beyond a zip limit (size, members, compression ratio)."""

    def __init__(self, message: str, *, limit: int | float, variable: str) -> None:
        BudgetError.__init__(self, message, limit=limit, variable=variable)


class PathNotAllowedError(InputError):
    """A folder typed into a page lies outside ``MEDLIM_DATA_ROOTS``."""


class InvalidNameError(ParameterError):
    """A name typed by a user (collection, run, preset) is not a safe name."""


class JobError(MedlimError):
    """A job cannot be submitted, found, run or changed (unknown id or kind, bad parameters)."""


class WorkerLostError(MedlimError):
    """A worker process stopped while it held a file (killed, out of memory, its machine lost).

    The file gets this error and the run goes on: the engine starts the worker again.
    """

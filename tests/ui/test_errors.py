"""Error display helpers (medlim.ui.errors)."""

from __future__ import annotations

from medlim import errors as E
from medlim.ui.errors import advice_for, error_text


def test_most_specific_advice_wins() -> None:
    assert advice_for(E.TruncatedFileError("x")).startswith("The file is incomplete")
    assert advice_for(E.UnsupportedFormatError("x")) == "Upload a DICOM, PNG, TIFF or JPEG file."
    assert advice_for(E.InputError("x")) == "Check the file or folder (its path, or the upload) and give it again."
    assert advice_for(E.MedlimError("x")) == "Check the input and try again."


def test_error_text_has_subject_message_and_advice() -> None:
    text = error_text(E.EmptyFileError("The file is empty."), subject="scan.dcm")
    assert text == "**scan.dcm:** The file is empty.\n\nThe file is empty: export it again from the source system."


def test_hardening_errors_get_their_own_advice() -> None:
    # issue 14: a refused folder, archive or name says what to do about it, not "upload the file again"
    assert "data folders" in advice_for(E.PathNotAllowedError("x"))
    assert advice_for(E.ArchiveBudgetError("x", limit=1, variable="MEDLIM_ZIP_MAX_MB")).startswith("Split the archive")
    assert advice_for(E.ArchiveError("x")).startswith("Zip the image folders again")
    assert advice_for(E.InvalidNameError("x")).startswith("Choose a name")

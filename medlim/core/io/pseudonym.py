"""Pseudonymous patient keys: a keyed hash of the DICOM PatientID.

Issue 2 ("Image input"): the image record carries no names, IDs or birth
dates, only a key that links images of one patient within one installation.
The key is HMAC-SHA256 of the PatientID with a secret (``Settings.pseudonym_key``,
else a random per-installation key kept in ``Settings.home / "pseudonym.key"``),
truncated to :data:`PATIENT_KEY_HEX_CHARS` hex characters. Without the secret the
ID cannot be recovered or confirmed by hashing guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from medlim.errors import InputError
from medlim.settings import Settings, get_settings

__all__ = ["FILE_LABEL_PREFIX", "PATIENT_KEY_HEX_CHARS", "file_label", "names_withheld", "patient_key",
           "pseudonym_secret", "withholding_names"]

#: Hex characters kept from the HMAC (64 bits: collisions are negligible for one site).
PATIENT_KEY_HEX_CHARS = 16

_KEY_FILE_NAME = "pseudonym.key"


def pseudonym_secret(settings: Settings | None = None) -> bytes:
    """The secret of the keyed hash, creating the per-installation key file if needed.

    Args:
        settings: settings to use; :func:`medlim.settings.get_settings` when ``None``.

    Returns:
        The secret as bytes (``MEDLIM_PSEUDONYM_KEY`` encoded as UTF-8, else the
        contents of ``home / "pseudonym.key"``).

    Raises:
        InputError: the key file cannot be created or read.
    """
    settings = settings or get_settings()
    if settings.pseudonym_key:
        return settings.pseudonym_key.encode("utf-8")
    key_path = Path(settings.home) / _KEY_FILE_NAME
    try:
        if not key_path.exists():
            key_path.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two processes creating the key at once must not overwrite each other.
            try:
                fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w", encoding="ascii") as handle:
                    handle.write(secrets.token_hex(32))
        secret = key_path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise InputError(
            f"The pseudonym key file {key_path} cannot be created or read ({exc.strerror}); "
            "set MEDLIM_PSEUDONYM_KEY or make MEDLIM_HOME writable."
        ) from exc
    if not secret:
        raise InputError(f"The pseudonym key file {key_path} is empty; delete it to create a new key.")
    return secret.encode("ascii")


def patient_key(patient_id: str | None, *, settings: Settings | None = None) -> str | None:
    """Pseudonymous key of a patient ID.

    Args:
        patient_id: the DICOM PatientID (surrounding spaces ignored), or ``None``.
        settings: settings holding the secret; current settings when ``None``.

    Returns:
        ``PATIENT_KEY_HEX_CHARS`` lowercase hex characters, or ``None`` when the
        ID is absent or blank.
    """
    if patient_id is None:
        return None
    text = str(patient_id).strip()
    if not text:
        return None
    digest = hmac.new(pseudonym_secret(settings), text.encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:PATIENT_KEY_HEX_CHARS]


#: Prefix of pseudonymous file labels (tells them apart from patient keys at a glance).
FILE_LABEL_PREFIX = "img-"


def file_label(
    name: str | os.PathLike | None,
    *,
    data: bytes | None = None,
    content_sha256: str | None = None,
    settings: Settings | None = None,
) -> str:
    """Pseudonymous label of a file: a keyed hash that stands in for its name.

    Issue 14 ("Identifying data"): archive file names often carry the patient's
    name, record number and date, so the store, page downloads and recorded
    training data keep this label instead. The label is HMAC-SHA256 (the same
    per-installation secret as :func:`patient_key`) of the SHA-256 digest of the
    file's content when the content is known (``data``, or its digest
    ``content_sha256`` — both give the same label, so a page and the results
    store agree) — the same image gets the same label whatever it is called —
    else of its name; 12 hex characters after :data:`FILE_LABEL_PREFIX`, plus
    the original suffix (``img-3fa9c2d1e0b4.dcm``) so the kind of file stays
    visible.

    Args:
        name: the file name or path (only its suffix is kept), or ``None``.
        data: the file's bytes, when at hand.
        content_sha256: the SHA-256 of the file's bytes (64 hex digits), instead of ``data``.
        settings: settings holding the secret; current settings when ``None``.

    Returns:
        The label, e.g. ``"img-3fa9c2d1e0b4.png"``.
    """
    text = "" if name is None else str(name)
    suffix = Path(text).suffix.lower() if text else ""
    if not suffix.isascii() or not suffix[1:].isalnum() or len(suffix) > 8:
        suffix = ""
    if data is not None:
        message = b"sha256:" + hashlib.sha256(data).digest()
    elif content_sha256 is not None:
        message = b"sha256:" + bytes.fromhex(content_sha256)
    else:
        message = ("name:" + text).encode("utf-8", "surrogatepass")
    digest = hmac.new(pseudonym_secret(settings), message, hashlib.sha256).hexdigest()
    return f"{FILE_LABEL_PREFIX}{digest[:12]}{suffix}"


#: True while a command's output goes where others can read it (a job's log, result and error in the shared
#: store: the app has no login), so dataset problems name files by :func:`file_label` instead.
_WITHHOLD_NAMES: ContextVar[bool] = ContextVar("medlim_withhold_names", default=False)


@contextmanager
def withholding_names() -> Iterator[None]:
    """Within: outputs that would name a user's files (dataset problems) use pseudonymous labels.

    The job runner runs every command inside it; ``medlim data check`` typed at a terminal names the
    files, which is what a person fixing their folder needs.
    """
    token = _WITHHOLD_NAMES.set(True)
    try:
        yield
    finally:
        _WITHHOLD_NAMES.reset(token)


def names_withheld() -> bool:
    """Whether outputs now withhold file names (:func:`withholding_names`)."""
    return _WITHHOLD_NAMES.get()

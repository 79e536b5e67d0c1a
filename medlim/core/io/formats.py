"""Which image format a file is, from its first bytes (the suffix is only a hint).

Issue 2 ("Image input"): one reader entry point for DICOM, PNG, TIFF and JPEG,
chosen by magic bytes. DICOM files normally carry the ``DICM`` marker after a
128-byte preamble (PS3.10 §7.1); older files start directly with a data element,
which :func:`looks_like_bare_dicom` recognises by the shape of that first element.
"""

from __future__ import annotations

import struct

__all__ = ["FORMATS", "DICOM_SUFFIXES", "sniff_format", "looks_like_bare_dicom", "has_dicom_preamble"]

#: Formats the reader understands.
FORMATS: tuple[str, ...] = ("dicom", "png", "tiff", "jpeg", "nifti")

#: Suffixes that make the reader try a file without magic bytes as DICOM.
DICOM_SUFFIXES: frozenset[str] = frozenset({".dcm", ".dicom", ".dic", ".ima"})

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_JPEG_SIGNATURE = b"\xff\xd8\xff"
_GZIP_SIGNATURE = b"\x1f\x8b"


def _looks_like_nifti(head: bytes) -> bool:
    """An uncompressed NIfTI-1 (``n+1``/``ni1`` at byte 344) or NIfTI-2 (``n+2``/``ni2`` at byte 4) header."""
    for order in ("<", ">"):
        if len(head) >= 4 and struct.unpack(f"{order}i", head[:4])[0] == 348:
            return len(head) >= 348 and head[344:347] in (b"n+1", b"ni1")
        if len(head) >= 8 and struct.unpack(f"{order}i", head[:4])[0] == 540:
            return head[4:7] in (b"n+2", b"ni2")
    return False

# Value representations of PS3.5 §6.2, for spotting an explicit-VR first element.
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
# Groups a preamble-less file plausibly starts with: file meta, identification,
# patient, acquisition, relationship, image pixel description.
_FIRST_GROUPS = frozenset({0x0002, 0x0008, 0x0010, 0x0018, 0x0020, 0x0028})


def has_dicom_preamble(head: bytes) -> bool:
    """True when ``head`` has the ``DICM`` marker at byte 128 (PS3.10 §7.1)."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def looks_like_bare_dicom(head: bytes) -> bool:
    """True when ``head`` starts like a DICOM data set without preamble.

    The first element must have a plausible group (0002, 0008, 0010, 0018, 0020
    or 0028, little or big endian) and either an explicit VR or an implicit
    length that fits in the file head's order of magnitude (< 1 MiB).
    """
    if len(head) < 8:
        return False
    for order in ("<", ">"):
        group, _element = struct.unpack(f"{order}HH", head[:4])
        if group not in _FIRST_GROUPS:
            continue
        if head[4:6] in _VRS:
            return True
        (length,) = struct.unpack(f"{order}I", head[4:8])
        if order == "<" and length < (1 << 20):
            return True
    return False


def sniff_format(head: bytes, *, suffix: str = "") -> str | None:
    """The format of a file from its first bytes.

    Args:
        head: the first bytes of the file (at least 132 to see the DICOM marker).
        suffix: the file name's suffix with the dot (``".dcm"``); only a hint: it
            never overrides magic bytes, but a file without any magic bytes named
            like DICOM is tried as DICOM (the DICOM reader then checks it).

    Returns:
        ``"dicom"``, ``"png"``, ``"tiff"``, ``"jpeg"``, ``"nifti"`` (a NIfTI header, or any gzip stream) or
        ``None`` when unknown. NIfTI-1's magic lies at byte 344: give at least 348 bytes.
    """
    if has_dicom_preamble(head):
        return "dicom"
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head.startswith(_TIFF_SIGNATURES):
        return "tiff"
    if head.startswith(_JPEG_SIGNATURE):
        return "jpeg"
    if head.startswith(_GZIP_SIGNATURE) or _looks_like_nifti(head):
        return "nifti"  # gzip: a .nii.gz (the NIfTI decoder refuses any other gzip file)
    if looks_like_bare_dicom(head):
        return "dicom"
    if suffix.lower() in DICOM_SUFFIXES:
        return "dicom"
    return None

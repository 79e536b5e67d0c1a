"""The memory one decode may take, estimated from the file's header before decoding.

Issue 14 ("Hardening"): a 140 KB PNG can declare 12000×12000 pixels and a
small compressed TIFF or DICOM far more; counting pixels (``MEDLIM_MAX_PIXELS``)
does not say how much memory the decode takes, bytes do. Each reader computes
a :class:`DecodeCost` from what the header declares (size, samples, bytes per
sample, what the decoder holds on the way) and calls :func:`check_decode_budget`
before it decodes anything; over ``MEDLIM_DECODE_BUDGET_MB`` the file is refused
with a :class:`~medlim.errors.DecodeBudgetError` that names the limit.

The reader keeps at most one float32 image beyond the decoded array
(``ImageRecord`` renders ``pixels`` and ``raw`` lazily), so the peak is
``max(decoding, decoded + one float32 image)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from medlim.errors import DecodeBudgetError
from medlim.settings import Settings

__all__ = ["FLOAT32_BYTES", "DecodeCost", "check_decode_budget", "check_held_bytes", "mib"]

#: Bytes per value of the float32 images the reader renders.
FLOAT32_BYTES = 4

_MIB = 1 << 20


def mib(size_bytes: int) -> int:
    """``size_bytes`` in MiB, rounded up (so a refusal never reads "1024 MiB > 1024 MiB")."""
    return -(-int(size_bytes) // _MIB)


@dataclass(frozen=True)
class DecodeCost:
    """What decoding one image costs in memory.

    Attributes:
        height: rows of the image, as declared.
        width: columns, as declared.
        decoded_bytes: the decoded array the record keeps (0 when it is a view
            on bytes already held, such as uncompressed DICOM pixel data).
        transient_bytes: what the decoder holds beside the decoded array while
            decoding (its own image buffer, a conversion, the file's pixel data).
        float_values: values of the float32 image rendered from it
            (height × width × channels shown).
        held_bytes: what stays in memory for the whole decode (the file's
            pixel data read by pydicom).
    """

    height: int
    width: int
    decoded_bytes: int
    transient_bytes: int = 0
    float_values: int = 0
    held_bytes: int = 0

    @property
    def peak_bytes(self) -> int:
        """The larger of the decoding phase and the decoded array plus one float32 image."""
        decoding = self.decoded_bytes + self.transient_bytes
        rendering = self.decoded_bytes + self.float_values * FLOAT32_BYTES
        return self.held_bytes + max(decoding, rendering)


def check_decode_budget(cost: DecodeCost, *, name: str, settings: Settings, hint: str = "") -> None:
    """Refuse an image whose decode would take more than ``MEDLIM_DECODE_BUDGET_MB``.

    Args:
        cost: the estimate made from the header.
        name: file name for the message.
        settings: ``decode_budget_mb`` is the limit.
        hint: a sentence ending the message (e.g. where a whole slide is read instead).

    Raises:
        DecodeBudgetError: the estimate exceeds the budget; the message gives the
            image size, the estimate in MiB, the limit and the variable to change.
    """
    if cost.peak_bytes <= settings.decode_budget_bytes:
        return
    raise DecodeBudgetError(
        f"{name} is {cost.height}×{cost.width} pixels; decoding it would take about "
        f"{mib(cost.peak_bytes):,} MiB of memory, more than the limit of {settings.decode_budget_mb:,} MiB "
        "(MEDLIM_DECODE_BUDGET_MB). Crop or downsample it first, or raise MEDLIM_DECODE_BUDGET_MB "
        "if this computer has the memory." + (f" {hint}" if hint else ""),
        limit=settings.decode_budget_mb,
    )


def check_held_bytes(size_bytes: int, *, name: str, settings: Settings) -> None:
    """Refuse a file whose bytes alone, read into memory, exceed the budget.

    Raises:
        DecodeBudgetError: ``size_bytes`` is over ``MEDLIM_DECODE_BUDGET_MB``.
    """
    if size_bytes <= settings.decode_budget_bytes:
        return
    raise DecodeBudgetError(
        f"{name} is {mib(size_bytes):,} MiB; reading it into memory to decode it would exceed the limit of "
        f"{settings.decode_budget_mb:,} MiB (MEDLIM_DECODE_BUDGET_MB). Raise MEDLIM_DECODE_BUDGET_MB "
        "if this computer has the memory.",
        limit=settings.decode_budget_mb,
    )

"""The ``--stats on|off`` switch of the commands that can fuse a score with acquisition statistics (shift, ood)."""

from __future__ import annotations

import argparse

__all__ = ["on_off"]


def on_off(value: str) -> bool:
    """``"on"`` → True, ``"off"`` → False (argparse ``type``)."""
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"--stats must be 'on' or 'off', {value!r} is given")
    return value == "on"

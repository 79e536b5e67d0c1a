"""Colours every chart and overlay of medlim shares: the Okabe–Ito palette.

Okabe & Ito (2008), "Color Universal Design": eight colours that stay apart
for readers with protanopia, deuteranopia and tritanopia. Charts take their
series colours from here so that no page pairs red with green (USERS.md:
"colour choices work for colour-blind readers").
"""

from __future__ import annotations

__all__ = ["OKABE_ITO", "SERIES"]

#: The palette by name, as hex strings.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

#: Series colours in the order charts use them (blue first, then orange: the pair most readers tell apart).
SERIES: tuple[str, ...] = tuple(
    OKABE_ITO[name] for name in ("blue", "orange", "bluish_green", "vermillion", "sky_blue", "reddish_purple", "yellow")
)

"""The 2x2 Bayer layouts and where their red pixel sits (one home for the CFA rule)."""

from __future__ import annotations

BAYER_PATTERNS = ("RGGB", "GRBG", "GBRG", "BGGR")  # top-left 2x2 cell, row-major


def red_position(pattern: str) -> tuple[int, int]:
    """(row, col) of the red pixel of a 2x2 cell: (0, 0) for RGGB, (0, 1) for GRBG, ...

    It is also the number of rows and columns to prepend so the mosaic starts with R.
    """
    if pattern not in BAYER_PATTERNS:
        raise ValueError(f"unsupported Bayer pattern {pattern!r}; expected one of {BAYER_PATTERNS}")
    i = pattern.index("R")
    return i // 2, i % 2

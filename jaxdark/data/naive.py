"""Naive brightening: a dark RGGB mosaic multiplied by its amplification and developed
like SID's ground truth, with no denoising. The baseline a restoration must beat.

The development is `jaxdark.data.synthetic.develop` (rawpy's ``postprocess`` with SID's
arguments: white balance, LibRaw's camera-to-sRGB matrix, rawpy's output curve) of a
bilinear demosaic, so a naive image and a synthetic pair's target differ only by the
noise and the demosaicking. NumPy and OpenCV only (core install).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxdark.constants import SID_BLACK_LEVEL, SID_WHITE_LEVEL
from jaxdark.data.synthetic import develop

# Bilinear interpolation of the RGGB colour planes: red and blue are known on one pixel
# in four, green on one in two.
_RB_KERNEL = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4
_G_KERNEL = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4


def bilinear_demosaic(mosaic: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 RGB of an (H, W) RGGB mosaic (H, W even) by bilinear interpolation.

    Borders mirror about the edge pixel (OpenCV's ``BORDER_REFLECT_101``), which keeps the
    colour filter layout, so every border pixel is interpolated from its own colour.
    """
    import cv2

    x = np.asarray(mosaic, np.float32)
    if x.ndim != 2 or x.shape[0] % 2 or x.shape[1] % 2 or min(x.shape) < 2:
        raise ValueError(f"expected an (H, W) RGGB mosaic with even sides, got {x.shape}")
    planes = np.zeros((3, *x.shape), np.float32)
    planes[0, 0::2, 0::2] = x[0::2, 0::2]
    planes[1, 0::2, 1::2] = x[0::2, 1::2]
    planes[1, 1::2, 0::2] = x[1::2, 0::2]
    planes[2, 1::2, 1::2] = x[1::2, 1::2]
    out = np.empty((*x.shape, 3), np.float32)
    for c, kernel in enumerate((_RB_KERNEL, _G_KERNEL, _RB_KERNEL)):
        out[..., c] = cv2.filter2D(planes[c], -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    return out


def naive_brighten(
    mosaic: np.ndarray,
    amplification: float,
    gains: Sequence[float],
    *,
    data_maximum: float | None = None,
    black_level: float = SID_BLACK_LEVEL,
    white_level: float = SID_WHITE_LEVEL,
) -> np.ndarray:
    """(H, W, 3) float32 sRGB in [0, 1]: a normalised RGGB mosaic (white level 1, as
    `jaxdark.imaging.raw.read_raw` gives) times ``amplification``, bilinearly demosaicked and
    developed with white balance ``gains`` (camera multipliers) like SID's ground truth.

    ``data_maximum`` (DN above black) is passed on to `develop` (LibRaw's white-point
    stretch); give the clean exposure's maximum to develop exactly like a pair's target.
    """
    span = float(white_level - black_level)
    rgb = bilinear_demosaic(np.asarray(mosaic, np.float32) * np.float32(amplification * span))
    np.maximum(rgb, 0.0, out=rgb)
    developed = develop(
        rgb,
        gains,
        data_maximum=data_maximum,
        white_level=white_level,
        black_level=black_level,
    )
    return (developed / np.float32(65535.0)).astype(np.float32)

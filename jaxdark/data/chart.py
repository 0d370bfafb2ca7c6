"""A synthetic colour-chart scene and a simple dark-sensor simulation (NumPy only).

`synthetic_scene` renders a linear-light test scene (sky gradient, a 2 x 6 colour chart,
saturated discs, fine bars); `simulate_raw` photographs it with a 14-bit RGGB sensor with
the Sony a7S's colour response at a small fraction of a normal exposure (photon shot
noise, Gaussian read noise, black level 512). This was `jaxdark demo`'s scene before the
demo showed a real photo; tests and `benchmarks.bf16_error` still use it as a fixed,
colourful dark input. For realistic training pairs see `jaxdark.data.synthetic`.
"""

from __future__ import annotations

import numpy as np

from jaxdark.constants import SID_BLACK_LEVEL as BLACK_LEVEL
from jaxdark.constants import SID_WHITE_LEVEL as WHITE_LEVEL
from jaxdark.data.synthetic import SRGB_TO_XYZ, XYZ_TO_CAMERA

__all__ = [
    "BLACK_LEVEL", "NEUTRAL", "WHITE_LEVEL", "simulate_raw", "srgb_to_camera_matrix",
    "synthetic_scene",
]  # fmt: skip

# Camera RGB of a white surface: the white balance the official network handles best
# (found by searching the raw colour it renders as neutral grey).
NEUTRAL = (0.5, 1.0, 0.5)


def srgb_to_camera_matrix() -> np.ndarray:
    """3x3 matrix from linear sRGB to this sensor's raw RGB, white mapping to `NEUTRAL`."""
    m = XYZ_TO_CAMERA @ SRGB_TO_XYZ
    return m / (m @ np.ones(3))[:, None] * np.asarray(NEUTRAL)[:, None]


def synthetic_scene(height: int, width: int) -> np.ndarray:
    """A linear-light RGB test scene in [0, 1]: gradient sky, colour chart, discs, bars."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    v, u = yy / max(height - 1, 1), xx / max(width - 1, 1)
    scene = np.empty((height, width, 3), np.float32)
    # sky: blue to warm horizon
    scene[..., 0] = 0.15 + 0.55 * v
    scene[..., 1] = 0.25 + 0.35 * v
    scene[..., 2] = 0.75 - 0.35 * v
    # ground: green with a soft brightness ramp
    ground = v > 0.62
    scene[ground] = np.stack([0.12 + 0.2 * u, 0.35 + 0.2 * u, 0.1 + 0.05 * u], -1)[ground]
    # a colour chart: 2 x 6 patches
    chart = [
        (0.45, 0.30, 0.25), (0.75, 0.55, 0.45), (0.35, 0.45, 0.65), (0.30, 0.40, 0.20),
        (0.50, 0.50, 0.75), (0.40, 0.75, 0.65), (0.85, 0.45, 0.10), (0.25, 0.30, 0.65),
        (0.75, 0.30, 0.35), (0.35, 0.20, 0.40), (0.60, 0.75, 0.20), (0.90, 0.65, 0.10),
    ]  # fmt: skip
    ph, pw = height // 8, width // 10
    top, left = height // 10, width // 2 - 3 * pw
    for k, rgb in enumerate(chart):
        r0, c0 = top + (k // 6) * (ph + 4), left + (k % 6) * (pw + 4)
        scene[r0 : r0 + ph, c0 : c0 + pw] = rgb
    # discs of pure-ish colours
    for cx, cy, rgb in ((0.15, 0.75, (0.9, 0.1, 0.1)), (0.5, 0.8, (0.1, 0.8, 0.2)),
                        (0.85, 0.75, (0.15, 0.2, 0.95))):  # fmt: skip
        disc = (u - cx) ** 2 * (width / height) ** 2 + (v - cy) ** 2 < 0.012
        scene[disc] = rgb
    # fine black-and-white bars (detail the noise hides)
    bars = (v > 0.45) & (v < 0.58) & (u > 0.05) & (u < 0.3)
    scene[bars] = ((xx[bars] // 3) % 2)[:, None] * 0.9 + 0.05
    return np.clip(scene, 0.0, 1.0)


def simulate_raw(
    scene: np.ndarray, exposure: float = 1 / 200, seed: int = 0, full_well: float = 20000.0
) -> np.ndarray:
    """RGGB 14-bit raw counts of a linear sRGB ``scene`` at a fraction ``exposure`` of a
    normal exposure: camera colour response, photon shot noise, read noise, black level."""
    rng = np.random.default_rng(seed)
    h, w = scene.shape[:2]
    h, w = h - h % 2, w - w % 2
    cam = np.einsum("ij,hwj->hwi", srgb_to_camera_matrix(), scene[:h, :w])
    cam = np.clip(cam, 0.0, None).astype(np.float32)
    mosaic = np.empty((h, w), np.float32)
    mosaic[0::2, 0::2] = cam[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = cam[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = cam[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = cam[1::2, 1::2, 2]
    electrons = rng.poisson(mosaic * exposure * full_well).astype(np.float32)
    signal = electrons * (WHITE_LEVEL - BLACK_LEVEL) / full_well
    noisy = signal + rng.normal(0.0, 2.5, signal.shape) + BLACK_LEVEL
    return np.clip(np.rint(noisy), 0, WHITE_LEVEL).astype(np.uint16)

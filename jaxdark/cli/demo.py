"""``jaxdark demo``: restore a synthetic, extremely dark scene, end to end.

    jaxdark demo --weights PATH [--out-dir DIR] [--m M]

It renders a colourful test scene, simulates a 14-bit RGGB sensor with the colour
response of the Sony a7S the network was trained on photographing it at about 1/200
of a normal exposure (photon shot noise, read noise, black level 512),
writes that as a real DNG raw file, and restores the file through exactly the code
``jaxdark restore`` runs. It saves, in DIR (default ``demo_out``):

* ``dark_scene.dng``: the raw file;
* ``naive.png``: the raw data brightened by the same factor, plainly demosaicked and
  gamma-encoded: what brightening alone gives;
* ``restored.png``: the network's restoration;
* ``side_by_side.png``: the two next to each other.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from jaxdark.constants import SID_BLACK_LEVEL as BLACK_LEVEL
from jaxdark.constants import SID_WHITE_LEVEL as WHITE_LEVEL
from jaxdark.data.synthetic import SRGB_TO_XYZ, XYZ_TO_CAMERA
from jaxdark.dng import write_dng

# Camera RGB of a white surface: the white balance the official network handles best
# (found by searching the raw colour it renders as neutral grey).
NEUTRAL = (0.5, 1.0, 0.5)


def srgb_to_camera_matrix() -> np.ndarray:
    """3x3 matrix from linear sRGB to this sensor's raw RGB, white mapping to `NEUTRAL`."""
    m = XYZ_TO_CAMERA @ SRGB_TO_XYZ
    return m / (m @ np.ones(3))[:, None] * np.asarray(NEUTRAL)[:, None]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``jaxdark demo``."""
    parser.add_argument(
        "--weights",
        default="official",
        help="'official' (default: the official checkpoint, downloaded once into the cache), "
        "a .pth, a directory written by 'jaxdark convert', or a training run",
    )
    parser.add_argument("--out-dir", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument(
        "--m", type=float, default=5.0, help="brightness of the estimated amplification"
    )
    parser.add_argument("--height", type=int, default=512, help="scene height in pixels")
    parser.add_argument("--width", type=int, default=768, help="scene width in pixels")
    parser.add_argument("--seed", type=int, default=0, help="noise seed")


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


def naive_brighten(mosaic: np.ndarray, amplification: float) -> np.ndarray:
    """Brighten an RGGB mosaic, demosaic (2x2 cells, bilinear up), convert the camera's
    colours to sRGB and gamma-encode: the same colour pipeline, no denoising."""
    import cv2

    x = mosaic * np.float32(amplification)
    h, w = x.shape[0] - x.shape[0] % 2, x.shape[1] - x.shape[1] % 2
    x = x[:h, :w]
    half = np.stack([x[0::2, 0::2], 0.5 * (x[0::2, 1::2] + x[1::2, 0::2]), x[1::2, 1::2]], axis=-1)
    to_srgb = np.linalg.inv(srgb_to_camera_matrix()).astype(np.float32)
    half = np.einsum("ij,hwj->hwi", to_srgb, half)
    rgb = cv2.resize(half, (mosaic.shape[1], mosaic.shape[0]), interpolation=cv2.INTER_LINEAR)
    rgb = np.clip(rgb, 0.0, 1.0)
    return np.where(rgb <= 0.0031308, 12.92 * rgb, 1.055 * rgb ** (1 / 2.4) - 0.055)


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 8) -> np.ndarray:
    """Two (H, W, 3) images next to each other with a white gap."""
    spacer = np.ones((left.shape[0], gap, 3), left.dtype)
    return np.concatenate([left, spacer, right], axis=1)


def run(args: argparse.Namespace) -> int:
    """Write the DNG, restore it like ``jaxdark restore``, save the three PNGs."""
    import cv2

    from jaxdark.amplifier import check_m
    from jaxdark.cli.restore import restore_one
    from jaxdark.fileio import write_image
    from jaxdark.raw import read_raw
    from jaxdark.restorer import Restorer

    if args.height < 32 or args.width < 32:
        raise ValueError(f"--height and --width must be >= 32, got {args.height}x{args.width}")
    check_m(args.m)
    out_dir = Path(args.out_dir)
    start = time.perf_counter()
    restorer = Restorer(args.weights)  # bad weights fail before anything is written
    loaded = f"loaded {args.weights} in {time.perf_counter() - start:.2f}s"
    out_dir.mkdir(parents=True, exist_ok=True)

    scene = synthetic_scene(args.height, args.width)
    raw = simulate_raw(scene, seed=args.seed)
    dng = write_dng(
        out_dir / "dark_scene.dng",
        raw,
        pattern="RGGB",
        black_levels=BLACK_LEVEL,
        white_level=WHITE_LEVEL,
        model="Synthetic dark scene",
        as_shot_neutral=NEUTRAL,
        color_matrix=XYZ_TO_CAMERA,
    )
    level = raw.mean() - BLACK_LEVEL
    print(
        f"wrote {dng} ({raw.shape[1]}x{raw.shape[0]}, 14-bit RGGB, mean level "
        f"{level:.1f} of {WHITE_LEVEL - BLACK_LEVEL} above black)"
    )

    print(loaded)
    target = (args.m, out_dir / "restored.png")
    result = restore_one(restorer, dng, [target], None, "png", overwrite=True)
    if result.error:
        raise ValueError(result.error)
    print(result.report)

    frame = read_raw(dng)
    amplification = restorer.amplification(frame.mosaic, args.m)
    naive = naive_brighten(frame.mosaic, amplification)
    restored = cv2.imread(str(result.outputs[0]), cv2.IMREAD_COLOR)[..., ::-1] / 255.0
    write_image(out_dir / "naive.png", naive, "png")
    write_image(out_dir / "side_by_side.png", side_by_side(naive, restored), "png")
    for name in ("naive.png", "restored.png", "side_by_side.png"):
        print(f"saved {out_dir / name}")
    return 0

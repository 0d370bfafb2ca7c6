"""Dark RAW training pairs synthesised from ordinary sRGB photos (NumPy only).

A photo becomes one pair in the SID Sony convention (`jaxdark.data.sid`): a dark, noisy
14-bit RGGB mosaic of a Sony a7S II (black level 512, white level 16383) with its exposure
ratio, and the 16-bit sRGB target that rawpy would develop from the clean long exposure.

1. **Unprocessing** (Brooks et al., "Unprocessing Images for Learned Raw Denoising",
   CVPR 2019): invert the photo's tone curve (Brooks's smoothstep) and the sRGB transfer
   function, map linear sRGB to the camera's raw RGB with the a7S II's colour matrix
   (slightly varied per image), divide by a white balance drawn per image, clip at the
   sensor's saturation and keep one colour per pixel (RGGB). That is the clean long
   exposure.
2. **Target**: the clean exposure developed exactly as SID's ground truth is,
   ``rawpy.postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True,
   output_bps=16)``, re-implemented from LibRaw's documented steps: black subtraction
   and white balance to 16 bits (with LibRaw's ``adjust_maximum_thr=0.75``), the
   camera-to-sRGB matrix LibRaw derives from the camera's colour matrix, and LibRaw's
   BT.709-style curve (power 1/2.222, toe slope 4.5), not the sRGB curve. Demosaicking
   is the one step not imitated: the target uses the true colour at every pixel.
3. **Noise** (Wei et al., "A Physics-based Noise Formation Model for Extreme Low-light
   Raw Denoising", CVPR 2020, the "ELD" model): the clean exposure divided by the
   exposure ratio, then photon shot noise through the system gain K (Poisson in
   electrons), read noise (Tukey lambda, or Gaussian), row noise (one Gaussian offset
   per sensor row) and quantisation to integer DN; parameters are drawn per image from
   ELD's published Sony a7S II calibration (`SONY_A7S2_ELD`).

Everything draws from one ``numpy.random.Generator``, in a fixed order: a seed gives
the same pair. `synthesize_pair(...).record()` is a record like
`jaxdark.data.sid.SIDPairs` yields, so `jaxdark.data.pipeline.CropAmplify` crops, flips
and amplifies it exactly like a SID pair.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxdark.constants import SID_BLACK_LEVEL as BLACK_LEVEL
from jaxdark.constants import SID_RATIOS
from jaxdark.constants import SID_WHITE_LEVEL as WHITE_LEVEL
from jaxdark.data.noise import (  # noqa: F401  (re-exported: part of this module's API)
    READ_MODELS,
    SONY_A7S2_ELD,
    LogLinear,
    NoiseCalibration,
    NoiseParams,
    add_noise,
    tukey_lambda,
)

# XYZ (D65) -> camera RGB of the Sony ILCE-7SM2 (a7S II): Adobe's matrix as LibRaw's colour
# table lists it (shared with the ILCE-7S), divided by 10000. LibRaw uses it for SID's ARW
# files, and reads the same numbers from a DNG's ColorMatrix1.
XYZ_TO_CAMERA = np.array(
    [[0.5838, -0.1430, -0.0246], [-0.3497, 1.1477, 0.2297], [-0.0748, 0.1885, 0.5778]]
)
# Linear sRGB -> XYZ (D65), the matrix LibRaw (dcraw) uses.
SRGB_TO_XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
# XYZ of the white of CIE illuminants D65 and A (Y = 1).
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_A_WHITE = np.array([1.09850, 1.0, 0.35585])

# rawpy's default output curve: gamma=(2.222, 4.5) -> LibRaw gamm = (1/2.222, 4.5).
RAWPY_GAMMA = (1 / 2.222, 4.5)
ADJUST_MAXIMUM_THR = 0.75  # rawpy's (and LibRaw's) default


def camera_to_srgb_matrix(xyz_to_camera: np.ndarray = XYZ_TO_CAMERA) -> np.ndarray:
    """The 3x3 matrix LibRaw applies to white-balanced camera RGB to get linear sRGB.

    LibRaw forms ``xyz_to_camera @ SRGB_TO_XYZ``, scales each row to sum to 1 (so a
    white-balanced neutral stays neutral) and inverts it.
    """
    cam_rgb = np.asarray(xyz_to_camera, np.float64) @ SRGB_TO_XYZ
    cam_rgb = cam_rgb / cam_rgb.sum(axis=1, keepdims=True)
    return np.linalg.inv(cam_rgb)


def white_balance_under(xyz_white: np.ndarray, xyz_to_camera: np.ndarray = XYZ_TO_CAMERA):
    """Camera white-balance gains (green = 1) that make a white under ``xyz_white`` neutral."""
    cam = np.asarray(xyz_to_camera, np.float64) @ np.asarray(xyz_white, np.float64)
    return cam[1] / cam


@functools.lru_cache(maxsize=4)
def libraw_gamma_curve(power: float = RAWPY_GAMMA[0], slope: float = RAWPY_GAMMA[1]) -> np.ndarray:
    """LibRaw's 16-bit output curve with ``no_auto_bright`` (65536 entries, uint16).

    Linear ``r = i / 65536`` maps to ``slope * r`` below a knee ``r0`` and to
    ``(1 + a) r^power - a`` above it, with ``r0`` and ``a`` chosen so that value and slope
    are continuous; the entry is ``floor(65536 * curve(r))``.
    """
    p, ts = float(power), float(slope)

    def f(x0: float) -> float:  # value continuity, with the offset from slope continuity
        return 1 + ts * x0 * (1 / p - 1) - ts * x0 ** (1 - p) / p

    lo, hi = 1e-9, 1.0  # f(lo) > 0 > f(hi)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    r0 = 0.5 * (lo + hi)
    a = ts * r0 * (1 / p - 1)
    r = np.arange(65536, dtype=np.float64) / 65536.0
    y = np.where(r < r0, r * ts, (1 + a) * r**p - a)
    return np.floor(65536.0 * y).astype(np.uint16)


@functools.lru_cache(maxsize=8)
def photo_to_linear_lut(levels: int, tone_curve: bool = True) -> np.ndarray:
    """Linear sRGB (float32) of each code value of a photo with ``levels`` levels.

    Inverts Brooks et al.'s smoothstep tone curve ``3x^2 - 2x^3`` (when ``tone_curve``)
    and then the sRGB transfer function.
    """
    x = np.arange(levels, dtype=np.float64) / (levels - 1)
    if tone_curve:
        x = 0.5 - np.sin(np.arcsin(np.clip(1.0 - 2.0 * x, -1.0, 1.0)) / 3.0)
    lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    return lin.astype(np.float32)


def _photo_codes(photo: np.ndarray) -> np.ndarray:
    """(H, W, 1 or 3) uint8/uint16 codes of a photo (float in [0, 1] -> 16 bits)."""
    photo = np.asarray(photo)
    if photo.ndim == 2:
        photo = photo[..., None]
    if photo.ndim != 3 or photo.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"photo must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {photo.shape}"
        )
    photo = photo[..., :3]
    if photo.dtype == np.uint8 or photo.dtype == np.uint16:
        return photo
    if np.issubdtype(photo.dtype, np.floating):
        return np.rint(np.clip(photo, 0.0, 1.0) * 65535.0).astype(np.uint16)
    raise ValueError(f"photo must be uint8, uint16 or float, got {photo.dtype}")


def _linear_planes(photo: np.ndarray, tone_curve: bool) -> np.ndarray:
    """(3, H, W) float32 linear sRGB of a photo (see `photo_to_linear`)."""
    codes = _photo_codes(photo)
    lut = photo_to_linear_lut(256 if codes.dtype == np.uint8 else 65536, tone_curve)
    planes = np.empty((3, *codes.shape[:2]), np.float32)
    for c in range(3):
        np.take(lut, codes[..., min(c, codes.shape[2] - 1)], out=planes[c])
    return planes


def photo_to_linear(photo: np.ndarray, tone_curve: bool = True) -> np.ndarray:
    """(H, W, 3) linear sRGB in [0, 1] of an sRGB photo: uint8, uint16 or float in [0, 1];
    a grey (H, W) or (H, W, 1) photo is repeated on three channels, alpha is dropped."""
    return np.moveaxis(_linear_planes(photo, tone_curve), 0, -1)


def _apply_matrix(m: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """``m @ pixel`` for every pixel of (3, H, W) float32 planes.

    Nine scaled plane additions: several times faster than a (N, 3) @ (3, 3) matrix
    product, and free of BLAS threads (which cost far more than they save here).
    """
    m = np.asarray(m, np.float32)
    out = np.empty_like(planes)
    tmp = np.empty_like(planes[0])
    for i in range(3):
        np.multiply(planes[0], m[i, 0], out=out[i])
        for j in (1, 2):
            np.multiply(planes[j], m[i, j], out=tmp)
            out[i] += tmp
    return out


def _mosaic(planes: np.ndarray) -> np.ndarray:
    """(H, W) RGGB mosaic of (3, H, W) planes."""
    out = np.empty(planes.shape[1:], planes.dtype)
    out[0::2, 0::2] = planes[0, 0::2, 0::2]
    out[0::2, 1::2] = planes[1, 0::2, 1::2]
    out[1::2, 0::2] = planes[1, 1::2, 0::2]
    out[1::2, 1::2] = planes[2, 1::2, 1::2]
    return out


def mosaic_rggb(rgb: np.ndarray) -> np.ndarray:
    """(H, W) RGGB mosaic of an (H, W, 3) image (H, W even): R at (0, 0), B at (1, 1)."""
    return _mosaic(np.moveaxis(np.asarray(rgb), -1, 0))


def develop(
    clean_dn: np.ndarray,
    gains: Sequence[float],
    *,
    data_maximum: float | None = None,
    xyz_to_camera: np.ndarray = XYZ_TO_CAMERA,
    white_level: float = WHITE_LEVEL,
    black_level: float = BLACK_LEVEL,
    adjust_maximum_thr: float = ADJUST_MAXIMUM_THR,
) -> np.ndarray:
    """What rawpy's ``postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True,
    output_bps=16)`` makes of a raw file, given its true colour at every pixel.

    ``clean_dn`` is (H, W, 3) camera RGB in DN above black (not white-balanced), ``gains``
    the file's white balance (camera multipliers, any scale), ``data_maximum`` the largest
    value above black in the mosaic (LibRaw uses it as the white point when it lies
    between ``adjust_maximum_thr`` and 1 of the nominal one). Returns (H, W, 3) uint16.
    """
    planes = np.ascontiguousarray(np.moveaxis(np.asarray(clean_dn, np.float32), -1, 0))
    return _develop_planes(
        planes, gains, data_maximum, xyz_to_camera, white_level, black_level, adjust_maximum_thr
    )


def _develop_planes(planes: np.ndarray, gains: Sequence[float], *levels: Any) -> np.ndarray:
    """`develop` on (3, H, W) float32 planes (not modified) -> (H, W, 3) uint16; ``levels``:
    data maximum, XYZ-to-camera matrix, white level, black level, adjust-maximum threshold."""
    data_maximum, xyz_to_camera, white_level, black_level, adjust_maximum_thr = levels
    gains = np.asarray(gains, np.float64)
    maximum = float(white_level - black_level)
    if (
        data_maximum is not None
        and adjust_maximum_thr > 0
        and adjust_maximum_thr * maximum < data_maximum < maximum
    ):
        maximum = float(data_maximum)
    scale = (gains / gains.min() * 65535.0 / maximum).astype(np.float32)
    scaled = np.empty_like(planes)
    for c in range(3):
        np.multiply(planes[c], scale[c], out=scaled[c])
    np.floor(scaled, out=scaled)  # values >= 0: floor is LibRaw's truncation
    np.minimum(scaled, np.float32(65535.0), out=scaled)
    rgb = _apply_matrix(camera_to_srgb_matrix(xyz_to_camera), scaled)
    np.clip(rgb, 0.0, 65535.0, out=rgb)  # LibRaw truncates, then clips
    coded = np.take(libraw_gamma_curve(), rgb.astype(np.uint16))
    return np.stack(tuple(coded), axis=-1)  # (H, W, 3); faster than a transposed copy


# ---------------------------------------------------------------------------- pairs


@dataclasses.dataclass(frozen=True)
class SynthesisConfig:
    """How pairs are drawn. Defaults: SID's ratios, white balance between daylight and
    tungsten light for the a7S II, 2% colour-matrix spread, ELD's a7S II noise."""

    ratios: tuple[float, ...] = SID_RATIOS  # one is drawn per pair ...
    ratio_range: tuple[float, float] | None = None  # ... or uniform in this range
    tone_curve: bool = True  # invert Brooks's smoothstep tone curve
    white_balance_spread: float = 0.05  # log-normal spread of each gain around the locus
    color_matrix_spread: float = 0.02  # sigma of the per-image change of the colour matrix
    read_model: str = "tukey-lambda"  # or "gaussian"
    read_noise_scale: float = 1.0  # multiplies read and row noise
    calibration: NoiseCalibration = SONY_A7S2_ELD

    def __post_init__(self):
        if self.ratio_range is not None:
            lo, hi = self.ratio_range
            if not 1 <= lo <= hi:
                raise ValueError(
                    f"ratio_range must be (lo, hi) with 1 <= lo <= hi, got {self.ratio_range}"
                )
        elif not self.ratios or min(self.ratios) < 1:
            raise ValueError(f"ratios must be values >= 1, got {self.ratios}")
        if self.read_model not in READ_MODELS:
            raise ValueError(f"read_model must be one of {READ_MODELS}, got {self.read_model!r}")
        if self.read_noise_scale < 0:
            raise ValueError(f"read_noise_scale must be >= 0, got {self.read_noise_scale}")


# White-balance gains of a white under daylight (D65) and tungsten light (illuminant A),
# computed from the a7S II's colour matrix: R 2.77 / B 1.43 and R 1.73 / B 2.71.
DAYLIGHT_GAINS = white_balance_under(_D65_WHITE)
TUNGSTEN_GAINS = white_balance_under(_A_WHITE)


def sample_white_balance(rng: np.random.Generator, spread: float = 0.05) -> np.ndarray:
    """Camera gains (R, G, B), G = 1: a point between daylight and tungsten light drawn
    uniformly (geometric interpolation), each of R and B then varied log-normally."""
    t = rng.random()
    gains = DAYLIGHT_GAINS ** (1 - t) * TUNGSTEN_GAINS**t
    gains = gains * np.exp(spread * rng.standard_normal(3))
    gains[1] = 1.0
    return np.maximum(gains, 1.0)  # green stays the smallest multiplier, as in LibRaw


def sample_srgb_to_camera(rng: np.random.Generator, spread: float = 0.02) -> np.ndarray:
    """Linear sRGB -> white-balanced camera RGB: the inverse of LibRaw's camera-to-sRGB
    matrix, each entry changed by ``N(0, spread)`` relative, rows rescaled to sum to 1
    (neutrals stay neutral)."""
    m = np.linalg.inv(camera_to_srgb_matrix())
    m = m * (1.0 + spread * rng.standard_normal((3, 3)))
    return m / m.sum(axis=1, keepdims=True)


def sample_ratio(rng: np.random.Generator, config: SynthesisConfig) -> float:
    """An exposure ratio: one of ``config.ratios`` or uniform in ``config.ratio_range``."""
    if config.ratio_range is not None:
        return float(rng.uniform(*config.ratio_range))
    return float(config.ratios[int(rng.integers(len(config.ratios)))])


@dataclasses.dataclass
class SyntheticPair:
    """A synthesised pair and how it was made."""

    mosaic: np.ndarray  # (H, W) uint16 dark noisy RGGB raw, black 512, white 16383
    target: np.ndarray  # (H, W, 3) uint16 sRGB, as rawpy develops the clean exposure
    clean: np.ndarray  # (H, W) uint16 clean long-exposure RGGB raw
    ratio: float  # exposure ratio (long / short)
    gains: np.ndarray  # camera white balance (R, G, B), G = 1; as-shot neutral = 1 / gains
    noise: NoiseParams
    name: str = "synthetic"

    def record(self) -> dict:
        """The pair as a SID-style record (`jaxdark.data.sid.SIDPairs` keys used by
        `jaxdark.data.pipeline.CropAmplify`)."""
        return {
            "mosaic": self.mosaic,
            "target": self.target,
            "black_levels": np.full((2, 2), BLACK_LEVEL, np.float32),
            "white_level": np.float32(WHITE_LEVEL),
            "pattern": "RGGB",
            "ratio": np.float32(self.ratio),
            "short_file": self.name,
        }


def synthesize_pair(
    photo: np.ndarray,
    rng: np.random.Generator,
    config: SynthesisConfig = SynthesisConfig(),
    *,
    noise: NoiseParams | None = None,
    ratio: float | None = None,
    gains: Sequence[float] | None = None,
    name: str = "synthetic",
) -> SyntheticPair:
    """One dark/target pair from an sRGB ``photo`` (see the module docstring).

    Odd sides lose their last row/column. ``noise``, ``ratio`` and ``gains`` fix what is
    otherwise drawn from ``rng`` (the draws are made all the same, so the rest of the
    pair does not change).
    """
    photo = np.asarray(photo)
    h, w = photo.shape[0] - photo.shape[0] % 2, photo.shape[1] - photo.shape[1] % 2
    if h < 2 or w < 2:
        raise ValueError(f"photo of {photo.shape[:2]} is too small")
    lin = _linear_planes(photo[:h, :w], config.tone_curve)
    drawn_gains = sample_white_balance(rng, config.white_balance_spread)
    to_camera = sample_srgb_to_camera(rng, config.color_matrix_spread)
    drawn_ratio = sample_ratio(rng, config)
    drawn_noise = config.calibration.sample(rng, config.read_model, config.read_noise_scale)
    gains = drawn_gains if gains is None else np.asarray(gains, np.float64)
    ratio = drawn_ratio if ratio is None else float(ratio)
    noise = drawn_noise if noise is None else noise

    span = float(WHITE_LEVEL - BLACK_LEVEL)
    # linear sRGB -> camera RGB before white balance, in DN above black, clipped at saturation
    camera = _apply_matrix(to_camera / gains[:, None] * span, lin)
    np.maximum(camera, 0.0, out=camera)
    np.minimum(camera, np.float32(span), out=camera)
    clean_dn = np.rint(camera)
    clean_mosaic = _mosaic(clean_dn)
    levels = (
        float(clean_mosaic.max()),
        XYZ_TO_CAMERA,
        WHITE_LEVEL,
        BLACK_LEVEL,
        ADJUST_MAXIMUM_THR,
    )
    target = _develop_planes(clean_dn, gains, *levels)
    signal = _mosaic(camera)
    signal *= np.float32(1.0 / ratio)
    dark = add_noise(signal, noise, rng)
    dark += np.float32(BLACK_LEVEL)
    np.maximum(dark, 0.0, out=dark)
    np.minimum(dark, np.float32(WHITE_LEVEL), out=dark)
    mosaic = dark.astype(np.uint16)
    clean_mosaic += np.float32(BLACK_LEVEL)
    clean = clean_mosaic.astype(np.uint16)
    return SyntheticPair(mosaic, target, clean, ratio, gains, noise, name)

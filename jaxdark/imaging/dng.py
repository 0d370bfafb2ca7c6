"""Write real DNG raw files (tifffile + the DNG/CFA tags) that rawpy/LibRaw can read.

Used by ``jaxdark demo`` and by the tests, which need raw files of known content:
any 2x2 Bayer layout, any black levels (one per CFA position) and white level, and,
for error paths, X-Trans (6x6 CFA), three-channel linear (Foveon-like) and
monochrome files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile

# CFA colour codes of the TIFF/EP CFAPattern tag.
_CFA_CODES = {"R": 0, "G": 1, "B": 2}

# A fixed 6x6 X-Trans layout (Fujifilm's), for files the reader must refuse.
XTRANS_PATTERN = (
    "GGRGGB",
    "GGBGGR",
    "BRGRBG",
    "GGBGGR",
    "GGRGGB",
    "RBGBRG",
)

# sRGB (D65) to XYZ inverse: a plausible camera matrix for a synthetic sensor whose
# native primaries are sRGB's. DNG's ColorMatrix1 maps XYZ to camera RGB.
_XYZ_TO_CAMERA = (
    (3.2406, -1.5372, -0.4986),
    (-0.9689, 1.8758, 0.0415),
    (0.0557, -0.2040, 1.0570),
)

_PHOTOMETRIC_CFA = 32803
_PHOTOMETRIC_LINEAR_RAW = 34892


def _srational(values: Sequence[float], denominator: int = 10000) -> list[int]:
    out: list[int] = []
    for v in values:
        out += [int(round(v * denominator)), denominator]
    return out


def _rational(values: Sequence[float], denominator: int = 10000) -> list[int]:
    return _srational(values, denominator)


def write_dng(
    path: str | os.PathLike,
    raw: np.ndarray,
    *,
    pattern: str | Sequence[str] = "RGGB",
    black_levels: int | Sequence[int] = 512,
    white_level: int = 16383,
    make: str = "jaxdark",
    model: str = "Synthetic Bayer",
    as_shot_neutral: Sequence[float] = (0.5, 1.0, 0.7),
    color_matrix: Sequence[Sequence[float]] = _XYZ_TO_CAMERA,
) -> Path:
    """Write ``raw`` as an uncompressed DNG and return its path.

    Args:
      path: file to write (any extension; rawpy recognises DNG by content).
      raw: the sensor data, uint16. (H, W) for a CFA or monochrome sensor, (H, W, 3)
        for a linear three-channel (Foveon-like) sensor.
      pattern: for (H, W) data, a 2x2 Bayer layout such as ``"GRBG"``, or a
        sequence of equal-length rows for larger CFAs (see `XTRANS_PATTERN`), or
        ``"mono"`` for a monochrome sensor. Ignored for (H, W, 3) data.
      black_levels: one value, or one per CFA position in row-major order (4 for a
        2x2 Bayer layout).
      white_level: saturation value of the sensor data.
      make: what rawpy reports as the camera's maker.
      model: what rawpy reports as the camera's model.
      as_shot_neutral: white balance of the shot (camera RGB of a neutral).
      color_matrix: DNG ColorMatrix1, XYZ (D65) to camera RGB, 3x3.
    """
    raw = np.asarray(raw)
    if raw.dtype != np.uint16:
        if raw.size and (raw.min() < 0 or raw.max() > 65535):
            raise ValueError("write_dng: raw values must fit in uint16")
        raw = raw.astype(np.uint16)
    if raw.ndim == 3 and raw.shape[2] == 3:
        photometric, samples, rows = _PHOTOMETRIC_LINEAR_RAW, 3, None
    elif raw.ndim == 2 and pattern == "mono":
        # tifffile only writes LinearRaw with 3 samples: write BlackIsZero, then
        # patch the tag to LinearRaw (a monochrome DNG) below.
        photometric, samples, rows = "minisblack", 1, None
    elif raw.ndim == 2:
        photometric, samples = _PHOTOMETRIC_CFA, 1
        rows = [pattern[:2], pattern[2:]] if isinstance(pattern, str) else list(pattern)
        if len(set(map(len, rows))) != 1 or any(c not in _CFA_CODES for r in rows for c in r):
            raise ValueError(f"write_dng: bad CFA pattern {pattern!r}")
    else:
        raise ValueError(f"write_dng: raw must be (H, W) or (H, W, 3), got {raw.shape}")

    levels = [int(black_levels)] if np.isscalar(black_levels) else [int(b) for b in black_levels]
    tags: list[tuple] = [
        (271, "s", 0, make, True),  # Make
        (272, "s", 0, model, True),  # Model
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, f"{make} {model}", True),  # UniqueCameraModel
        (50717, "I", 1, int(white_level), True),  # WhiteLevel
        (50721, "2i", 9, _srational([v for r in color_matrix for v in r]), True),
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, "2I", 3, _rational(as_shot_neutral), True),  # AsShotNeutral
    ]
    if rows is not None:
        dim = (len(rows), len(rows[0]))
        codes = bytes(_CFA_CODES[c] for r in rows for c in r)
        tags += [
            (33421, "H", 2, dim, True),  # CFARepeatPatternDim
            (33422, "B", len(codes), codes, True),  # CFAPattern
            (50710, "B", 3, (0, 1, 2), True),  # CFAPlaneColor
            (50711, "H", 1, 1, True),  # CFALayout: rectangular
        ]
        if len(levels) not in (1, dim[0] * dim[1]):
            raise ValueError(
                f"write_dng: give 1 or {dim[0] * dim[1]} black levels, got {len(levels)}"
            )
        if len(levels) > 1:
            tags.append((50713, "H", 2, dim, True))  # BlackLevelRepeatDim
    tags.append((50714, "I", len(levels), levels, True))  # BlackLevel

    path = Path(path)
    tifffile.imwrite(
        path,
        raw,
        photometric=photometric,
        planarconfig="contig" if samples > 1 else None,
        metadata=None,
        subfiletype=0,
        extratags=tags,
        software="jaxdark",
        description=None,
    )
    if photometric == "minisblack":
        with tifffile.TiffFile(path, mode="r+b") as tif:
            tif.pages[0].tags["PhotometricInterpretation"].overwrite(_PHOTOMETRIC_LINEAR_RAW)
    return path

"""Read camera RAW files into the normalised RGGB mosaic the network expects.

The reference reads the visible mosaic with rawpy, crops it to multiples of 32 and
normalises with the Sony a7S II levels hard-coded. Here the levels come from the
file itself (one black level per CFA position, the white level), any 2x2 Bayer
layout is brought to the RGGB phase the network was trained on, and the sides are
padded instead of cropped, so a restoration is pixel-aligned with its input and has
exactly its resolution.

Bayer phase and padding both use reflect padding (mirror about the edge pixel, which
is not repeated). It keeps the colour filter layout intact: the mirrored copy of a
pixel lies an even number of rows/columns away, so it has the same colour. A GRBG
mosaic gains one mirrored column on the left and is RGGB; the restoration is
cropped back (`from_rggb`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxdark.errors import RawFileError

MULTIPLE = 32  # the network needs sides that are multiples of this
BAYER_PATTERNS = ("RGGB", "GRBG", "GBRG", "BGGR")


@dataclass(frozen=True)
class RawFrame:
    """A raw file's visible mosaic, normalised, with what was read about it.

    Attributes:
      path: the file.
      mosaic: (H, W) float32, ``max(raw - black, 0) / (white - black)`` per CFA
        position, in the file's own Bayer phase. Not clipped above (as in the
        reference): saturated pixels are 1 or a little over.
      pattern: Bayer layout of the mosaic's top-left 2x2 cell, e.g. ``"GRBG"``.
      camera: make and model from the file's metadata, or ``"unknown camera"``.
      black_levels: black level of each 2x2 position, row-major.
      white_level: the file's white (saturation) level.
    """

    path: str
    mosaic: np.ndarray
    pattern: str
    camera: str
    black_levels: tuple[float, float, float, float]
    white_level: float

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.mosaic.shape[0]), int(self.mosaic.shape[1])


def bayer_offset(pattern: str) -> tuple[int, int]:
    """(rows, cols) to prepend so that ``pattern`` starts with R: (0, 0) for RGGB."""
    if pattern not in BAYER_PATTERNS:
        raise ValueError(f"unsupported Bayer pattern {pattern!r}; expected one of {BAYER_PATTERNS}")
    i = pattern.index("R")
    return i // 2, i % 2


def to_rggb(mosaic: np.ndarray, pattern: str) -> tuple[np.ndarray, tuple[int, int]]:
    """Bring a mosaic to the RGGB phase by reflect-padding one row and/or column.

    Returns the RGGB mosaic and the ``(dy, dx)`` offset of the original inside it
    (pass it to `from_rggb`).
    """
    dy, dx = bayer_offset(pattern)
    if dy or dx:
        mosaic = np.pad(mosaic, ((dy, 0), (dx, 0)), mode="reflect")
    return mosaic, (dy, dx)


def from_rggb(image: np.ndarray, offset: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Crop an output of an RGGB-phase mosaic back onto the original pixel grid."""
    dy, dx = offset
    return image[dy : dy + shape[0], dx : dx + shape[1]]


def padded_shape(shape: tuple[int, int], multiple: int = MULTIPLE) -> tuple[int, int]:
    """``shape`` rounded up to multiples of ``multiple``."""
    return tuple(-(-int(s) // multiple) * multiple for s in shape)  # type: ignore[return-value]


def pad_to_multiple(x: np.ndarray, multiple: int = MULTIPLE) -> np.ndarray:
    """Reflect-pad the bottom and right of a (H, W) mosaic to multiples of ``multiple``.

    The CFA layout is preserved (see the module docstring). Sides must be at least
    ``multiple`` pixels so the mirror never runs past the frame's far edge.
    """
    h, w = x.shape[:2]
    if h < multiple or w < multiple:
        raise ValueError(f"mosaic of {h}x{w} pixels is too small: each side must be >= {multiple}")
    ph, pw = padded_shape((h, w), multiple)
    if (ph, pw) == (h, w):
        return x
    pad = [(0, ph - h), (0, pw - w)] + [(0, 0)] * (x.ndim - 2)
    return np.pad(x, pad, mode="reflect")


def _camera_name(path: Path) -> str:
    """Make and model from the TIFF IFD0 tags most raw formats carry, else a placeholder."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            tags = tif.pages[0].tags
            parts = [str(tags[k].value).strip() for k in ("Make", "Model") if k in tags]
    except Exception:  # not TIFF-based (CR3, RAF, ...) or unreadable: the name is cosmetic
        return "unknown camera"
    name = " ".join(p for p in parts if p)
    make = parts[0] if parts else ""
    if make and len(parts) == 2 and parts[1].lower().startswith(make.lower()):
        name = parts[1]  # models often repeat the make
    return name or "unknown camera"


def _pattern_of(colors: np.ndarray, color_desc: str) -> str:
    """Letters of a 2x2 cell of colour indices (both greens are ``G``)."""
    return "".join(color_desc[int(c)] for c in colors.reshape(-1)).replace("g", "G")


def read_raw(path: str | os.PathLike) -> RawFrame:
    """Read a Bayer RAW file (any format LibRaw reads) into a normalised `RawFrame`.

    Raises:
      RawFileError: one line naming the file and the reason, for a missing,
        truncated, corrupt or non-raw file; a sensor that is not a 2x2 Bayer mosaic
        (X-Trans, Foveon/linear, monochrome); a frame under 32 pixels a side; bad
        levels or non-finite values.
    """
    import rawpy

    p = Path(path)
    if not p.exists():
        raise RawFileError(f"{p}: no such file")
    if not p.is_file():
        raise RawFileError(f"{p}: not a file")
    try:
        with _quiet_stderr(), rawpy.imread(str(p)) as raw:
            if raw.raw_type != rawpy.RawType.Flat:
                raise RawFileError(
                    f"{p}: not a Bayer mosaic (a linear/Foveon-type sensor with several "
                    "values per pixel); only 2x2 Bayer sensors are supported"
                )
            pattern_shape = None if raw.raw_pattern is None else raw.raw_pattern.shape
            if raw.num_colors < 3 or pattern_shape in (None, (1, 1)):
                raise RawFileError(f"{p}: monochrome sensor; only 2x2 Bayer sensors are supported")
            if pattern_shape == (6, 6):
                raise RawFileError(f"{p}: X-Trans sensor; only 2x2 Bayer sensors are supported")
            if pattern_shape != (2, 2):
                raise RawFileError(
                    f"{p}: {pattern_shape[0]}x{pattern_shape[1]} colour filter array; only "
                    "2x2 Bayer sensors are supported"
                )
            data = np.array(raw.raw_image_visible, dtype=np.float32, copy=True)
            h, w = data.shape[:2]
            if data.ndim != 2 or h < 2 or w < 2:
                raise RawFileError(f"{p}: unexpected raw data of shape {data.shape}")
            colors = np.array(raw.raw_colors_visible[:2, :2])
            color_desc = raw.color_desc.decode("ascii", "replace")
            per_channel = list(raw.black_level_per_channel)
            white = float(raw.white_level)
    except RawFileError:
        raise
    except rawpy.LibRawFileUnsupportedError:
        raise RawFileError(f"{p}: not a RAW file LibRaw can read") from None
    except (rawpy.LibRawIOError, rawpy.LibRawDataError) as e:
        raise RawFileError(
            f"{p}: truncated, corrupt or not a RAW file (LibRaw: {_reason(e)})"
        ) from None
    except rawpy.LibRawError as e:
        raise RawFileError(f"{p}: cannot read RAW file ({_reason(e)})") from None
    except (OSError, ValueError, MemoryError) as e:
        raise RawFileError(f"{p}: cannot read RAW file ({_reason(e)})") from None

    pattern = _pattern_of(colors, color_desc)
    if pattern not in BAYER_PATTERNS:
        raise RawFileError(
            f"{p}: colour filter layout {pattern!r} is not a Bayer pattern "
            f"({', '.join(BAYER_PATTERNS)})"
        )
    if h < MULTIPLE or w < MULTIPLE:
        raise RawFileError(f"{p}: frame of {h}x{w} pixels is too small (sides must be >= 32)")
    blacks = tuple(float(per_channel[int(c)]) for c in colors.reshape(-1))
    if not all(np.isfinite(blacks)) or not np.isfinite(white) or white <= max(blacks):
        raise RawFileError(
            f"{p}: white level {white:g} is not above the black levels {list(blacks)}"
        )
    if not np.isfinite(data).all():
        raise RawFileError(f"{p}: raw data contains NaN or infinite values")

    black = np.array(blacks, np.float32).reshape(2, 2)
    black_map = np.tile(black, (-(-h // 2), -(-w // 2)))[:h, :w]
    mosaic = np.maximum(data - black_map, 0.0) / (np.float32(white) - black_map)
    return RawFrame(
        path=str(p),
        mosaic=mosaic.astype(np.float32, copy=False),
        pattern=pattern,
        camera=_camera_name(p),
        black_levels=blacks,  # type: ignore[arg-type]
        white_level=white,
    )


@contextlib.contextmanager
def _quiet_stderr():
    """Silence LibRaw's own C-level messages (we report errors ourselves, in one line)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreters): nothing to hide
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def read_mosaic(path: str | os.PathLike) -> np.ndarray:
    """The normalised (H, W) float32 mosaic of a RAW file, in the file's own Bayer phase.

    Shorthand for ``read_raw(path).mosaic``; pass ``read_raw(path).pattern`` to
    `jaxdark.Restorer.restore` when the sensor is not RGGB.
    """
    return read_raw(path).mosaic


def _reason(e: BaseException) -> str:
    text = str(e).strip()
    if text.startswith(("b'", 'b"')):
        text = text[2:-1]
    return text.splitlines()[0] if text else type(e).__name__

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxdark.constants import INPUT_MULTIPLE
from jaxdark.errors import RawFileError, one_line, printable_path
from jaxdark.imaging.bayer import BAYER_PATTERNS, red_position


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


def _xp(x):
    """The array namespace of ``x``: NumPy for host arrays, jax.numpy for device arrays
    and tracers, so the same code pads and normalises on the host and inside jit."""
    return x.__array_namespace__() if not isinstance(x, np.ndarray) else np


def check_sides(shape: Sequence[int], multiple: int = INPUT_MULTIPLE) -> None:
    """One-line ValueError unless both sides of ``shape`` are at least ``multiple`` pixels
    (the one home of the rule: the mirror used for padding must not run past the frame's
    far edge). Callers pass the model's ``input_multiple``."""
    h, w = int(shape[0]), int(shape[1])
    if h < multiple or w < multiple:
        raise ValueError(f"mosaic of {h}x{w} pixels is too small: sides must be >= {multiple}")


def to_rggb(mosaic, pattern: str) -> tuple[np.ndarray, tuple[int, int]]:
    """Bring a mosaic to the RGGB phase by reflect-padding one row and/or column.

    Returns the RGGB mosaic and the ``(dy, dx)`` offset of the original inside it
    (pass it to `from_rggb`). Works on NumPy and JAX arrays (inside jit too).
    """
    dy, dx = red_position(pattern)
    if dy or dx:
        mosaic = _xp(mosaic).pad(mosaic, ((dy, 0), (dx, 0)), mode="reflect")
    return mosaic, (dy, dx)


def from_rggb(image: np.ndarray, offset: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Crop an output of an RGGB-phase mosaic back onto the original pixel grid."""
    dy, dx = offset
    return image[dy : dy + shape[0], dx : dx + shape[1]]


def padded_shape(shape: tuple[int, int], multiple: int = INPUT_MULTIPLE) -> tuple[int, int]:
    """``shape`` rounded up to multiples of ``multiple``."""
    return tuple(-(-int(s) // multiple) * multiple for s in shape)  # type: ignore[return-value]


def reflect_pad(x, rows: tuple[int, int], cols: tuple[int, int]):
    """Reflect-pad the first two axes of ``x`` by ``rows`` and ``cols`` (before, after),
    also when a pad is larger than the side (mirrored repeatedly, every step's pads even
    so the Bayer phase survives every mirror). NumPy or JAX arrays (inside jit too)."""
    xp = _xp(x)
    rest = [(0, 0)] * (x.ndim - 2)
    while rows[0] or rows[1] or cols[0] or cols[1]:
        h, w = x.shape[:2]
        r = (min(rows[0], h - 1), min(rows[1], h - 1))
        c = (min(cols[0], w - 1), min(cols[1], w - 1))
        r = tuple(v - v % 2 if v != rows[k] else v for k, v in enumerate(r))
        c = tuple(v - v % 2 if v != cols[k] else v for k, v in enumerate(c))
        x = xp.pad(x, [r, c, *rest], mode="reflect")
        rows = (rows[0] - r[0], rows[1] - r[1])
        cols = (cols[0] - c[0], cols[1] - c[1])
    return x


def pad_to_multiple(x, multiple: int = INPUT_MULTIPLE):
    """Reflect-pad the bottom and right of a (H, W, ...) mosaic to multiples of ``multiple``.

    The CFA layout is preserved (see the module docstring). Sides must be at least
    ``multiple`` pixels (`check_sides`) so one mirror never runs past the frame's far
    edge. NumPy or JAX arrays (inside jit too).
    """
    h, w = x.shape[:2]
    check_sides((h, w), multiple)
    ph, pw = padded_shape((h, w), multiple)
    if (ph, pw) == (h, w):
        return x
    return reflect_pad(x, (0, ph - h), (0, pw - w))


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


def normalise(mosaic, black_levels: Sequence[float] | np.ndarray, white_level: float):
    """``max(raw - black, 0) / (white - black)`` as float32, with ``black_levels`` given
    per position of the 2x2 cell (row-major, 4 values or a (2, 2) array). Not clipped
    above, as in the reference: saturated pixels are 1 or a little over. NumPy or JAX
    arrays (inside jit too, where the levels may be traced): the same operations in the
    same order, so the host and the device give the same bits."""
    xp = _xp(mosaic)
    h, w = mosaic.shape
    black = xp.asarray(black_levels, dtype=xp.float32).reshape(2, 2)
    black_map = xp.tile(black, (-(-h // 2), -(-w // 2)))[:h, :w]
    x = xp.maximum(mosaic.astype(xp.float32) - black_map, xp.float32(0.0))
    return x / (xp.asarray(white_level, dtype=xp.float32) - black_map)


@contextlib.contextmanager
def open_raw(path: str | os.PathLike) -> Iterator:
    """``rawpy.imread`` with LibRaw's messages silenced and its errors turned into one-line
    `RawFileError`s naming the file (the one place that maps them)."""
    import rawpy

    p = Path(path)
    if not p.exists():
        raise RawFileError(f"{printable_path(p)}: no such file")
    if not p.is_file():
        raise RawFileError(f"{printable_path(p)}: not a file")
    try:
        with _quiet_stderr(), rawpy.imread(str(p)) as raw:
            yield raw
    except RawFileError:
        raise
    except rawpy.LibRawFileUnsupportedError:
        raise RawFileError(f"{printable_path(p)}: not a RAW file LibRaw can read") from None
    except (rawpy.LibRawIOError, rawpy.LibRawDataError) as e:
        raise RawFileError(
            f"{printable_path(p)}: truncated, corrupt or not a RAW file (LibRaw: {one_line(e)})"
        ) from None
    except (rawpy.LibRawError, OSError, ValueError, MemoryError) as e:
        raise RawFileError(f"{printable_path(p)}: cannot read RAW file ({one_line(e)})") from None


def bayer_cell(raw, path: str | os.PathLike) -> tuple[str, tuple[float, float, float, float]]:
    """The Bayer pattern of an open rawpy image's top-left 2x2 cell (e.g. ``"GRBG"``) and
    the black level of each of its positions (row-major); a one-line `RawFileError`
    naming ``path`` for X-Trans, Foveon/linear, monochrome and other non-Bayer sensors."""
    import rawpy

    p = printable_path(path)
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
    colors = np.array(raw.raw_colors_visible[:2, :2])
    color_desc = raw.color_desc.decode("ascii", "replace")
    pattern = "".join(color_desc[int(c)] for c in colors.reshape(-1)).replace("g", "G")
    if pattern not in BAYER_PATTERNS:
        raise RawFileError(
            f"{p}: colour filter layout {pattern!r} is not a Bayer pattern "
            f"({', '.join(BAYER_PATTERNS)})"
        )
    per_channel = list(raw.black_level_per_channel)
    blacks = tuple(float(per_channel[int(c)]) for c in colors.reshape(-1))
    return pattern, blacks  # type: ignore[return-value]


@dataclass(frozen=True)
class RawCounts:
    """A raw file's visible mosaic as the sensor's integers, with its levels: what the
    device path (`jaxdark.Restorer.restore_counts`) uploads and normalises itself.

    Attributes are those of `RawFrame`, with ``counts`` (H, W) as stored (uint16 for
    nearly every camera) in place of the normalised ``mosaic``.
    """

    path: str
    counts: np.ndarray
    pattern: str
    camera: str
    black_levels: tuple[float, float, float, float]
    white_level: float

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.counts.shape[0]), int(self.counts.shape[1])

    def normalised(self) -> RawFrame:
        """The `RawFrame` of these counts (normalised on the host, `normalise`)."""
        return RawFrame(
            path=self.path,
            mosaic=normalise(self.counts, self.black_levels, self.white_level),
            pattern=self.pattern,
            camera=self.camera,
            black_levels=self.black_levels,
            white_level=self.white_level,
        )


def read_raw_counts(path: str | os.PathLike) -> RawCounts:
    """Read a Bayer RAW file (any format LibRaw reads) into `RawCounts`, unnormalised.

    Raises:
      RawFileError: as `read_raw`.
    """
    p = Path(path)
    name = printable_path(p)
    with open_raw(p) as raw:
        pattern, blacks = bayer_cell(raw, p)
        shape = tuple(raw.raw_image_visible.shape)
        try:
            if len(shape) != 2:
                raise ValueError(f"expected a 2-D mosaic, got shape {shape}")
            check_sides(shape)
        except ValueError as e:
            raise RawFileError(f"{name}: {e}") from None
        data = np.array(raw.raw_image_visible, copy=True)
        white = float(raw.white_level)
    if not all(np.isfinite(blacks)) or not np.isfinite(white) or white <= max(blacks):
        raise RawFileError(
            f"{name}: white level {white:g} is not above the black levels {list(blacks)}"
        )
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise RawFileError(f"{name}: raw data contains NaN or infinite values")
    return RawCounts(
        path=str(p),
        counts=data,
        pattern=pattern,
        camera=_camera_name(p),
        black_levels=blacks,
        white_level=white,
    )


def read_raw(path: str | os.PathLike) -> RawFrame:
    """Read a Bayer RAW file (any format LibRaw reads) into a normalised `RawFrame`.

    Raises:
      RawFileError: one line naming the file and the reason, for a missing,
        truncated, corrupt or non-raw file; a sensor that is not a 2x2 Bayer mosaic
        (X-Trans, Foveon/linear, monochrome); a frame under 32 pixels a side; bad
        levels or non-finite values.
    """
    return read_raw_counts(path).normalised()


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

"""Reading ordinary photos (PNG, JPEG, TIFF) with bounded memory.

A photo's declared size is read from its header and checked against a pixel limit
before anything is decoded, so a "decompression bomb" (a small file that declares
30000 x 30000 pixels) is refused in one line instead of filling the memory:

* the limit is `DEFAULT_MAX_PIXELS` (100 million pixels, e.g. 12000 x 8333), or
  ``$JAXDARK_MAX_PHOTO_PIXELS``, or the ``max_pixels`` argument (``jaxdark demo
  --max-pixels``);
* a centre crop and a downscale to a longest side are applied while decoding where the
  format allows: JPEGs are decoded at 1/2, 1/4 or 1/8 scale by the decoder itself (DCT
  scaling) when a downscale asks for it; other formats are decoded once, then cropped
  or shrunk, and the colour conversion runs on the crop only. The working set is the
  decoded frame plus the (smaller) result.

Decoder messages (libpng's "libpng error: ..." lines) are kept off the terminal; the
first one is given in the error.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from jaxdark.errors import JaxdarkError, printable_path

DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "JAXDARK_MAX_PHOTO_PIXELS"
JPEG_SUFFIXES = (".jpg", ".jpeg")
_STDERR_LOCK = threading.Lock()


class PhotoError(JaxdarkError):
    """A photo that cannot be read or used."""


def max_photo_pixels(value: int | None = None) -> int:
    """The pixel limit: ``value``, else ``$JAXDARK_MAX_PHOTO_PIXELS``, else the default."""
    source = "max_pixels"
    if value is None:
        text = os.environ.get(MAX_PIXELS_ENV)
        if not text:
            return DEFAULT_MAX_PIXELS
        source = MAX_PIXELS_ENV
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise PhotoError(f"{MAX_PIXELS_ENV}={text!r} is not a whole number") from None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PhotoError(f"{source} must be a positive whole number of pixels, got {value!r}")
    return value


@contextlib.contextmanager
def _pil_limit(limit: int) -> Iterator[None]:
    """Pillow's own bomb check set to ``limit`` (it refuses at twice it, and warns at it;
    the warning is silenced, the check here is exact)."""
    from PIL import Image

    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max(limit, previous or 0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _too_big(path: str | Path, h: int, w: int, limit: int) -> PhotoError:
    return PhotoError(
        f"{printable_path(path)}: declares {w}x{h} = {w * h:,} pixels, over the limit of "
        f"{limit:,} (raise it with --max-pixels or {MAX_PIXELS_ENV}, or use a smaller photo)"
    )


def photo_size(path: str | Path, max_pixels: int | None = None) -> tuple[int, int]:
    """(height, width) a photo declares in its header, without decoding it.

    `PhotoError` if the header cannot be read or declares more than the pixel limit
    (`max_photo_pixels`).
    """
    from PIL import Image

    limit = max_photo_pixels(max_pixels)
    try:
        with _pil_limit(limit), Image.open(path) as im:
            width, height = im.size
    except Image.DecompressionBombError:
        raise PhotoError(
            f"{printable_path(path)}: declares far more than {limit:,} pixels, the limit "
            f"(raise it with --max-pixels or {MAX_PIXELS_ENV}, or use a smaller photo)"
        ) from None
    except (OSError, ValueError, SyntaxError) as pil_error:
        height, width = _tiff_size(path, pil_error)
    if height <= 0 or width <= 0:
        raise PhotoError(f"{printable_path(path)}: declares an empty image ({width}x{height})")
    if height * width > limit:
        raise _too_big(path, height, width, limit)
    return int(height), int(width)


def _tiff_size(path: str | Path, pil_error: BaseException) -> tuple[int, int]:
    """(height, width) of a TIFF Pillow cannot open (e.g. float samples), from tifffile."""
    reason = str(pil_error).splitlines()[0] if str(pil_error).strip() else "unreadable"
    if Path(path).suffix.lower() not in (".tif", ".tiff"):
        raise PhotoError(f"{printable_path(path)}: cannot read the photo ({reason})")
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            shape = tif.pages.first.shape
            axes = tif.pages.first.axes
    except Exception as e:  # noqa: BLE001 - any failure: the file is not a usable TIFF
        reason = type(e).__name__
        raise PhotoError(f"{printable_path(path)}: cannot read the photo ({reason})") from None
    if "Y" not in axes or "X" not in axes:
        raise PhotoError(f"{printable_path(path)}: not a 2-D image (axes {axes})")
    return int(shape[axes.index("Y")]), int(shape[axes.index("X")])


def centre_box(h: int, w: int, crop: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the centre ``crop`` x ``crop`` square of an h x w image."""
    top, left = (h - crop) // 2, (w - crop) // 2
    return top, left, top + crop, left + crop


def read_photo(
    path: str | Path, *, max_pixels: int | None = None, crop: int = 0, max_side: int = 0
) -> np.ndarray:
    """An (H, W, 3) RGB photo, uint8 or uint16 (grey is repeated, alpha dropped, EXIF
    orientation applied of JPEGs); `PhotoError` if it cannot be decoded or declares more
    than the pixel limit (checked before decoding, see the module docstring).

    ``crop`` > 0 keeps the centre ``crop`` x ``crop`` pixels (of the full-resolution
    photo); ``max_side`` > 0 then shrinks (area average) so the longer side is at most
    ``max_side``. JPEGs are decoded by Pillow, which refuses a truncated file (OpenCV
    would fill the missing part with grey); PNG and TIFF by OpenCV, which keeps 16 bits.
    """
    h, w = photo_size(path, max_pixels)
    if crop and crop > min(h, w):
        raise PhotoError(f"{printable_path(path)}: crop {crop} is larger than the photo ({w}x{h})")
    if Path(path).suffix.lower() in JPEG_SUFFIXES:
        image = _read_jpeg(path, max_pixels, crop, max_side)
    else:
        image = _read_with_opencv(path, crop)
    return _shrink(image, max_side)


def _read_jpeg(path: str | Path, max_pixels: int | None, crop: int, max_side: int) -> np.ndarray:
    from PIL import Image, ImageOps

    try:
        with _pil_limit(max_photo_pixels(max_pixels)), Image.open(path) as im:
            if max_side and not crop and max(im.size) > 2 * max_side:
                # DCT scaling: the decoder itself gives 1/2, 1/4 or 1/8 of the size, no smaller
                # than asked; the area average below does the rest
                scale = max(im.size) / max_side
                im.draft("RGB", (int(im.size[0] / scale) + 1, int(im.size[1] / scale) + 1))
            im = ImageOps.exif_transpose(im)
            if crop:
                top, left, bottom, right = centre_box(im.size[1], im.size[0], crop)
                im = im.crop((left, top, right, bottom))
            return np.asarray(im.convert("RGB")).copy()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        reason = str(e).splitlines()[0] if str(e).strip() else type(e).__name__
        raise PhotoError(f"{printable_path(path)}: cannot read the photo ({reason})") from None


def _read_with_opencv(path: str | Path, crop: int) -> np.ndarray:
    import cv2

    with _quiet_stderr() as said:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None or image.size == 0:
        detail = f": {said[0]}" if said else ""
        raise PhotoError(
            f"{printable_path(path)}: cannot read the photo (not a PNG/JPEG/TIFF or damaged"
            f"{detail})"
        )
    if crop:
        top, left, bottom, right = centre_box(image.shape[0], image.shape[1], crop)
        image = image[top:bottom, left:right]
    if image.dtype not in (np.uint8, np.uint16):
        if not np.issubdtype(image.dtype, np.floating):
            raise PhotoError(f"{printable_path(path)}: unsupported sample type {image.dtype}")
        image = np.rint(np.clip(np.nan_to_num(image), 0.0, 1.0) * 65535).astype(np.uint16)
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2RGB)  # a copy of the crop


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` shrunk by area averaging so its longer side is at most ``max_side``."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image
    import cv2

    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[list[str]]:
    """Capture what C code writes to file descriptor 2 (libpng's messages) meanwhile;
    the non-empty lines are in the yielded list afterwards."""
    said: list[str] = []
    try:
        fd = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep quiet
        yield said
        return
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 2)
            yield said
        finally:
            os.dup2(fd, 2)
            os.close(fd)
            sink.seek(0)
            text = sink.read(4096).decode(errors="replace")
            said += [ln.strip() for ln in text.splitlines() if ln.strip()]

"""Writing files so that none is ever left half-written (one home for the rule)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

IMAGE_FORMATS = {"png": ".png", "png16": ".png", "jpg": ".jpg", "tiff": ".tiff"}


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    The temporary file gets the usual permissions (mkstemp makes it private) and is
    removed if ``write`` fails or the process is interrupted before the rename.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable_dir(path: str | os.PathLike, what: str) -> None:
    """One-line ValueError unless ``path`` is, or can be created as, a folder we can write:
    its nearest existing ancestor must be a writable folder (not a file, not read-only)."""
    p = Path(path).absolute()
    existing = p
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what} {p}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {p}: {existing} is not writable (read-only or no permission)")


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def to_uint(image, bits: int):
    """[0, 1] float image -> rounded uint8 (bits=8) or uint16 (bits=16); an image already
    of that integer type passes. NumPy or JAX arrays (inside jit too: the device path
    quantises with this same rule, round half to even)."""
    target = np.uint8 if bits == 8 else np.uint16
    if image.dtype == target:
        return image
    xp = np if isinstance(image, np.ndarray) else image.__array_namespace__()
    top = (1 << bits) - 1
    q = xp.rint(xp.clip(image, 0.0, 1.0) * top)
    return q.astype(target)


def encode_image(path: Path, image: np.ndarray, fmt: str) -> None:
    """Write an (H, W, 3) RGB image ([0, 1] floats or uint8) to ``path`` as ``fmt``
    (png, png16, jpg at quality 95, tiff 16-bit); not atomic."""
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; expected one of {sorted(IMAGE_FORMATS)}")
    if fmt == "tiff":
        import tifffile

        tifffile.imwrite(path, to_uint(image, 16), photometric="rgb", compression="zlib")
        return
    import cv2

    data = to_uint(image, 16 if fmt == "png16" else 8)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == "jpg" else []
    ok, buf = cv2.imencode(IMAGE_FORMATS[fmt], np.ascontiguousarray(data[..., ::-1]), params)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the image as {fmt}")
    path.write_bytes(buf.tobytes())


def write_image(path: str | os.PathLike, image: np.ndarray, fmt: str) -> None:
    """`encode_image` atomically: a temporary file beside ``path``, then a rename."""
    write_atomic(path, lambda tmp: encode_image(tmp, image, fmt))

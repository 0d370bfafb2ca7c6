"""Writing files so that none is ever left half-written (one home for the rule)."""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import re
import socket
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from jaxdark.errors import printable_path

IMAGE_FORMATS = {"png": ".png", "png16": ".png", "jpg": ".jpg", "tiff": ".tiff"}
# tags this host in temporary names (a pid means nothing on another machine)
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def temporary_prefix(path: str | os.PathLike) -> str:
    """Name prefix of this process's temporary files beside ``path``:
    ``.STEM.jd<pid>-<host>.`` (the owner's pid and host let a later run find and remove
    the leftovers of a killed one, `clean_stale_temporaries`)."""
    return f".{Path(path).stem}.jd{os.getpid()}-{_HOST}."


def clean_stale_temporaries(path: str | os.PathLike, suffix: str = ".tmp") -> list[Path]:
    """Remove the temporary files that a killed jaxdark process left beside ``path``
    (named by `temporary_prefix` with ``suffix``, written on this host by a process that
    no longer runs); returns what was removed. Files of live processes, of other hosts
    and of other programs are never touched."""
    path = Path(path)
    pattern = re.compile(
        rf"^\.{re.escape(path.stem)}\.jd(\d+)-{_HOST}\.[A-Za-z0-9_]+{re.escape(suffix)}$"
    )
    removed: list[Path] = []
    try:
        candidates = list(path.parent.glob(f".{glob.escape(path.stem)}.jd*{suffix}"))
    except OSError:
        return removed
    for tmp in candidates:
        m = pattern.match(tmp.name)
        if m is None or _alive(int(m.group(1))):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True


def write_atomic(
    path: str | os.PathLike, write: Callable[[Path], None], *, replace: bool = True
) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    The temporary file gets the usual permissions (mkstemp makes it private) and is
    removed if ``write`` fails or the process is interrupted before the rename; the
    leftovers of a killed earlier run are removed first (`clean_stale_temporaries`).

    With ``replace=False`` the file is created exclusively: if ``path`` exists, or
    another process creates it meanwhile, nothing is replaced and `FileExistsError`
    says so in one line (the temporary is hard-linked onto the final name, which
    fails atomically when the name is taken).
    """
    path = Path(path)
    clean_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        if replace:
            os.replace(tmp, path)
        else:
            _link_exclusive(Path(tmp), path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _link_exclusive(tmp: Path, path: Path) -> None:
    """Give ``tmp``'s content the name ``path`` unless that name exists (atomic)."""
    taken = FileExistsError(
        f"{printable_path(path)} exists (written meanwhile by another run?); not replaced"
    )
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise taken from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
    # no hard links on this file system: claim the name with O_EXCL, then fill it
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:
        raise taken from None
    os.replace(tmp, path)


def refuse_input_as_output(
    outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike], hint: str
) -> None:
    """One-line ValueError if an output path is, or resolves to, one of the inputs (the
    same file through ``..``, links or another spelling), or lies inside an input folder
    (a checkpoint directory); ``hint`` says what to change."""
    resolved = [Path(i).resolve() for i in inputs if os.path.lexists(i)]
    for out in outputs:
        o = Path(out).resolve()
        for i in resolved:
            same = o == i or (o.exists() and i.exists() and os.path.samefile(o, i))
            if same or i in o.parents:
                where = "is" if same else "is inside"
                raise ValueError(
                    f"{printable_path(out)} {where} the input {printable_path(i)}; "
                    f"it would be replaced: {hint}"
                )


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
    # OpenCV wants BGR; its own swap is 5x cheaper than NumPy's reversed-view copy
    bgr = cv2.cvtColor(np.ascontiguousarray(data), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(IMAGE_FORMATS[fmt], bgr, params)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the image as {fmt}")
    path.write_bytes(buf.tobytes())


def write_image(
    path: str | os.PathLike, image: np.ndarray, fmt: str, *, replace: bool = True
) -> None:
    """`encode_image` atomically: a temporary file beside ``path``, then a rename
    (``replace=False``: created exclusively, see `write_atomic`)."""
    write_atomic(path, lambda tmp: encode_image(tmp, image, fmt), replace=replace)

"""``--weights official``: a cached copy of the official checkpoint, downloaded once.

`resolve_weights("official")` returns the cached file, downloading it on first use from
the official release (file ``demo_imgs/weights`` of the GitHub repository
MohitLamba94/Restoring-Extremely-Dark-Images-In-Real-Time), checking its SHA-256 and
saying once that its licence allows non-commercial use only. Any other value is a path
and is returned as it is.

* Cache folder: ``$JAXDARK_CACHE`` if set, else the user cache folder
  (``$XDG_CACHE_HOME/jaxdark`` or ``~/.cache/jaxdark`` on Linux,
  ``~/Library/Caches/jaxdark`` on macOS, ``%LOCALAPPDATA%\\jaxdark\\Cache`` on Windows).
* URL: the ``url`` argument, else ``$JAXDARK_WEIGHTS_URL``, else `OFFICIAL_URL`; any URL
  urllib opens (``https://``, ``http://``, ``file://``).
* The file is written to a temporary name beside its destination and renamed when
  complete and verified: a cached copy is never partial.
* No network, an HTTP error or a wrong checksum: one line (`WeightsDownloadError`) that
  says where to put the file by hand.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from jaxdark.errors import JaxdarkError
from jaxdark.fileio import sha256_of

log = logging.getLogger(__name__)

OFFICIAL = "official"
OFFICIAL_URL = (
    "https://github.com/MohitLamba94/Restoring-Extremely-Dark-Images-In-Real-Time"
    "/raw/main/demo_imgs/weights"
)
OFFICIAL_SHA256 = "e7a4f76cf12b9f69ae35b2c2bab3356a36669660ab3128a0e65d6f4c82517163"
OFFICIAL_FILENAME = "official_weights.pth"
CACHE_ENV = "JAXDARK_CACHE"
URL_ENV = "JAXDARK_WEIGHTS_URL"
LICENCE_NOTE = (
    "note: the official weights of Lamba & Mitra (CVPR 2021) are licensed for "
    "non-commercial use only (research, teaching, personal use); see their repository"
)
_CHUNK = 1 << 20
_licence_said = False


class WeightsDownloadError(JaxdarkError):
    """The official weights could not be fetched or verified."""


def cache_dir() -> Path:
    """Where jaxdark keeps downloaded files: ``$JAXDARK_CACHE`` or the user cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "jaxdark"
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "jaxdark" / "Cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jaxdark"


def official_weights_path() -> Path:
    """Where the cached official checkpoint is (or will be) stored."""
    return cache_dir() / OFFICIAL_FILENAME


def _say_licence() -> None:
    global _licence_said
    if not _licence_said:
        log.warning("%s", LICENCE_NOTE)
        _licence_said = True


def _by_hand(url: str, dest: Path) -> str:
    return f"download {url} by hand and save it as {dest}, or pass --weights PATH"


def download_official(
    dest: Path, url: str, sha256: str = OFFICIAL_SHA256, timeout: float = 60.0
) -> Path:
    """Fetch ``url`` to ``dest`` through a temporary file, check its SHA-256, rename."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        raise WeightsDownloadError(
            f"cannot write to the cache folder {dest.parent} ({e.strerror or e}); set "
            f"{CACHE_ENV} to a writable folder, or pass --weights PATH"
        ) from None
    log.warning("downloading the official weights from %s to %s (once) ...", url, dest)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as src:
                while chunk := src.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise WeightsDownloadError(
                f"cannot download the official weights ({reason}); {_by_hand(url, dest)}"
            ) from None
        got = h.hexdigest()
        if got != sha256:
            raise WeightsDownloadError(
                f"the file downloaded from {url} has SHA-256 {got}, expected {sha256}; "
                + _by_hand(url, dest)
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def resolve_weights(
    spec: str | os.PathLike,
    *,
    url: str | None = None,
    sha256: str = OFFICIAL_SHA256,
    timeout: float = 60.0,
) -> Path:
    """The file behind a ``--weights`` value: ``"official"`` gives the cached official
    checkpoint (downloaded and verified on first use, see the module docstring); any
    other value is returned as a `Path`."""
    if str(spec) != OFFICIAL:
        return Path(spec).expanduser()
    dest = official_weights_path()
    url = url or os.environ.get(URL_ENV) or OFFICIAL_URL
    if dest.is_file():
        if sha256_of(dest) == sha256:
            return dest
        log.warning("%s: checksum differs from the official file; downloading again", dest)
    download_official(dest, url, sha256, timeout)
    _say_licence()
    return dest

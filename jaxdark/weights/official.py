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
  complete and verified: a cached copy is never partial. It gets the usual permissions
  (0644 under the common umask), so a shared cache folder serves every user.
* Bounded: a server announcing another length than the official file's
  (`OFFICIAL_SIZE`, 3,153,787 bytes) is refused before anything is written, the download
  stops as soon as it passes that size, and the whole download has a deadline
  (`DEFAULT_DEADLINE` seconds; ``$JAXDARK_DOWNLOAD_DEADLINE``). SIGTERM and SIGHUP remove
  the temporary ``.part`` file (as SIGINT does); one left by a killed process is removed
  by the next download.
* No network, an HTTP error or a wrong checksum: one line (`WeightsDownloadError`) that
  says where to put the file by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from jaxdark.errors import JaxdarkError
from jaxdark.fileio import clean_stale_temporaries, sha256_of, temporary_prefix

log = logging.getLogger(__name__)

OFFICIAL = "official"
OFFICIAL_URL = (
    "https://github.com/MohitLamba94/Restoring-Extremely-Dark-Images-In-Real-Time"
    "/raw/main/demo_imgs/weights"
)
OFFICIAL_SHA256 = "e7a4f76cf12b9f69ae35b2c2bab3356a36669660ab3128a0e65d6f4c82517163"
OFFICIAL_SIZE = 3_153_787  # bytes of the official file
OFFICIAL_FILENAME = "official_weights.pth"
DEFAULT_DEADLINE = 300.0  # seconds for the whole download
DEADLINE_ENV = "JAXDARK_DOWNLOAD_DEADLINE"
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


class _Stopped(BaseException):
    """Raised by the SIGTERM/SIGHUP handler so the temporary file is removed."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _removed_on_termination() -> Iterator[None]:
    """SIGTERM and SIGHUP raise `_Stopped` meanwhile (main thread only), so ``finally``
    blocks run; the process then exits with status 128 + the signal number."""
    signals = [getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise _Stopped(signum)

    previous = {sig: signal.signal(sig, stop) for sig in signals}
    try:
        yield
    except _Stopped as e:
        log.warning(
            "download stopped by %s; its temporary file was removed", signal.Signals(e.signum).name
        )
        raise SystemExit(128 + e.signum) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def download_deadline() -> float:
    """Seconds the whole download may take: ``$JAXDARK_DOWNLOAD_DEADLINE`` or the default."""
    text = os.environ.get(DEADLINE_ENV)
    if not text:
        return DEFAULT_DEADLINE
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < float("inf")):
        raise WeightsDownloadError(f"{DEADLINE_ENV}={text!r} is not a positive number of seconds")
    return value


def download_official(
    dest: Path,
    url: str,
    sha256: str = OFFICIAL_SHA256,
    timeout: float = 60.0,
    size: int | None = None,
    deadline: float | None = None,
) -> Path:
    """Fetch ``url`` to ``dest`` through a temporary file, check its length and SHA-256,
    rename. At most ``size`` bytes (default `OFFICIAL_SIZE`) are accepted and the whole
    transfer must end within ``deadline`` seconds (default `download_deadline`);
    ``timeout`` bounds each wait."""
    deadline = download_deadline() if deadline is None else float(deadline)
    size = OFFICIAL_SIZE if size is None else int(size)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(dest, ".part")
        fd, tmp_name = tempfile.mkstemp(
            prefix=temporary_prefix(dest), suffix=".part", dir=dest.parent
        )
    except OSError as e:
        raise WeightsDownloadError(
            f"cannot write to the cache folder {dest.parent} ({e.strerror or e}); set "
            f"{CACHE_ENV} to a writable folder, or pass --weights PATH"
        ) from None
    log.warning("downloading the official weights from %s to %s (once) ...", url, dest)
    tmp = Path(tmp_name)
    end = time.monotonic() + deadline
    try:
        with _removed_on_termination():
            h = hashlib.sha256()
            try:
                with (
                    os.fdopen(fd, "wb") as out,
                    urllib.request.urlopen(url, timeout=min(timeout, deadline)) as src,
                ):
                    announced = src.headers.get("Content-Length") if src.headers else None
                    if announced is not None and announced.strip() != str(size):
                        raise WeightsDownloadError(
                            f"{url} announces {announced.strip()[:40]} bytes, the official "
                            f"weights are {size}; {_by_hand(url, dest)}"
                        )
                    got = 0
                    read = getattr(src, "read1", src.read)
                    while chunk := read(_CHUNK):
                        got += len(chunk)
                        if got > size:
                            raise WeightsDownloadError(
                                f"{url} sends more than the {size} bytes of the official "
                                f"weights; stopped. {_by_hand(url, dest)}"
                            )
                        if time.monotonic() > end:
                            raise WeightsDownloadError(
                                f"downloading from {url} took over {deadline:g} s ({got} of "
                                f"{size} bytes; {DEADLINE_ENV} sets the limit); "
                                + _by_hand(url, dest)
                            )
                        h.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", None) or e
                raise WeightsDownloadError(
                    f"cannot download the official weights ({reason}); {_by_hand(url, dest)}"
                ) from None
            digest = h.hexdigest()
            if digest != sha256:
                raise WeightsDownloadError(
                    f"the file downloaded from {url} has SHA-256 {digest}, expected {sha256}; "
                    + _by_hand(url, dest)
                )
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide a shared cache
            os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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

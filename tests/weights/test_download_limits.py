"""The ``--weights official`` download is bounded: announced length, size, deadline, signals,
leftovers of killed runs, and the cached file's permissions (local servers only)."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from jaxdark.fileio import temporary_prefix
from jaxdark.weights import official as wc
from tests.support.hostile import REPO_ROOT, _env

SIZE = 4096  # the stand-in official size of these tests


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(wc.CACHE_ENV, str(folder))
    monkeypatch.delenv(wc.URL_ENV, raising=False)
    monkeypatch.setattr(wc, "OFFICIAL_SIZE", SIZE)
    return folder


def _serve(body) -> tuple[str, http.server.HTTPServer]:
    """A local server whose GET calls ``body(handler)``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            try:
                body(self)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}/weights", httpd


def _endless(handler, length: str | None = None, pause: float = 0.0):
    handler.send_response(200)
    if length is not None:
        handler.send_header("Content-Length", length)
    handler.end_headers()
    chunk = b"\0" * (1 if pause else 65536)
    for _ in range(10**7):
        handler.wfile.write(chunk)
        handler.wfile.flush()
        if pause:
            time.sleep(pause)


@pytest.mark.parametrize(
    "case, reason",
    [
        ("announced 50 GB", "announces 50000000000 bytes, the official weights are 4096"),
        ("endless body", "sends more than the 4096 bytes"),
        ("slow body", "took over 1.5 s"),
    ],
)
def test_download_is_bounded(cache, monkeypatch, case, reason):
    monkeypatch.setenv(wc.DEADLINE_ENV, "1.5")
    if case == "announced 50 GB":
        url, httpd = _serve(lambda h: _endless(h, "50000000000"))
    elif case == "endless body":
        url, httpd = _serve(_endless)
    else:
        url, httpd = _serve(lambda h: _endless(h, str(SIZE), pause=0.05))
    start = time.monotonic()
    try:
        with pytest.raises(wc.WeightsDownloadError) as info:
            wc.resolve_weights("official", url=url, timeout=5)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert reason in str(info.value) and "\n" not in str(info.value)
    assert time.monotonic() - start < 10
    assert sorted(os.listdir(cache)) == []  # nothing cached, no .part left


def test_dev_zero_is_refused(cache):
    with pytest.raises(wc.WeightsDownloadError, match="announces 0 bytes"):
        wc.resolve_weights("official", url="file:///dev/zero")
    assert sorted(os.listdir(cache)) == []


def test_cached_file_is_readable_by_others_and_stale_parts_go(cache, tmp_path):
    data = b"w" * SIZE
    (tmp_path / "weights").write_bytes(data)
    cache.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dest = cache / wc.OFFICIAL_FILENAME
    mine = temporary_prefix(dest)  # .official_weights.jd<pid>-<host>.
    stale = cache / (mine.replace(f"jd{os.getpid()}-", f"jd{dead.stdout.strip()}-") + "x1.part")
    stale.write_bytes(b"left by a killed download")
    other = cache / ".official_weights.someone-else.part"  # not ours: kept
    other.write_bytes(b"?")
    old = os.umask(0o022)
    try:
        import hashlib

        path = wc.resolve_weights(
            "official", url=(tmp_path / "weights").as_uri(), sha256=hashlib.sha256(data).hexdigest()
        )
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert not stale.exists() and other.exists()


_DOWNLOAD = """
import sys
from jaxdark.weights import official as wc
wc.OFFICIAL_SIZE = 4096
wc.resolve_weights("official", url=sys.argv[1])
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_termination_removes_the_part_file(cache, sig):
    url, httpd = _serve(lambda h: _endless(h, str(SIZE), pause=0.2))
    env = dict(_env(), **{wc.CACHE_ENV: str(cache)})
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _DOWNLOAD, url],
            cwd=REPO_ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(300):  # wait for the download to start
            if cache.exists() and any(p.suffix == ".part" for p in cache.iterdir()):
                break
            time.sleep(0.1)
        assert any(p.suffix == ".part" for p in cache.iterdir())
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    assert sorted(os.listdir(cache)) == []

"""jaxdark.weights.official: ``--weights official`` from a local server or file:// URL (no
internet): download once, verify, write atomically, one-line errors."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from jaxdark.weights import official as wc

FAKE = b"not really weights, but bytes with a known hash\n" * 1000
FAKE_SHA = hashlib.sha256(FAKE).hexdigest()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(wc.CACHE_ENV, str(folder))
    monkeypatch.delenv(wc.URL_ENV, raising=False)
    monkeypatch.setattr(wc, "_licence_said", False)
    monkeypatch.setattr(wc, "OFFICIAL_SIZE", len(FAKE))  # the stand-in's size
    return folder


@pytest.fixture()
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www; counts GET requests."""
    root = tmp_path / "www"
    (root / "demo_imgs").mkdir(parents=True)
    (root / "demo_imgs" / "weights").write_bytes(FAKE)
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield base, hits, root
    finally:
        httpd.shutdown()
        httpd.server_close()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_downloads_once_from_a_local_server(cache, server, caplog):
    base, hits, _ = server
    url = f"{base}/demo_imgs/weights"
    path = wc.resolve_weights("official", url=url, sha256=FAKE_SHA)
    assert path == cache / wc.OFFICIAL_FILENAME and path.read_bytes() == FAKE
    err = caplog.text
    caplog.clear()
    assert "downloading the official weights" in err and "non-commercial" in err
    again = wc.resolve_weights("official", url=url, sha256=FAKE_SHA)
    assert again == path and len(hits) == 1  # cached: no second request
    assert "non-commercial" not in caplog.text  # said once
    assert _leftovers(cache) == [wc.OFFICIAL_FILENAME]


def test_url_from_environment_and_file_url(cache, server, monkeypatch):
    _, hits, root = server
    monkeypatch.setenv(wc.URL_ENV, (root / "demo_imgs" / "weights").as_uri())
    path = wc.resolve_weights("official", sha256=FAKE_SHA)
    assert path.read_bytes() == FAKE and not hits


def test_damaged_cached_copy_is_fetched_again(cache, server, caplog):
    base, hits, _ = server
    cache.mkdir()
    (cache / wc.OFFICIAL_FILENAME).write_bytes(b"half a file")
    path = wc.resolve_weights("official", url=f"{base}/demo_imgs/weights", sha256=FAKE_SHA)
    assert path.read_bytes() == FAKE and len(hits) == 1
    assert "downloading again" in caplog.text


def test_wrong_hash_is_one_line_and_leaves_nothing(cache, server):
    base, _, _ = server
    url = f"{base}/demo_imgs/weights"
    with pytest.raises(wc.WeightsDownloadError) as info:
        wc.resolve_weights("official", url=url)  # the real checksum: this file fails it
    msg = str(info.value)
    assert "\n" not in msg and FAKE_SHA in msg and wc.OFFICIAL_SHA256 in msg
    assert f"save it as {cache / wc.OFFICIAL_FILENAME}" in msg and url in msg
    assert _leftovers(cache) == []  # no partial or temporary file


@pytest.mark.parametrize("kind", ["closed port", "not found", "missing file"])
def test_offline_or_missing_is_one_line(cache, server, tmp_path, kind):
    base, _, _ = server
    if kind == "closed port":
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"http://127.0.0.1:{port}/weights"
    elif kind == "not found":
        url = f"{base}/no/such/file"
    else:
        url = (tmp_path / "nowhere" / "weights").as_uri()
    with pytest.raises(wc.WeightsDownloadError) as info:
        wc.resolve_weights("official", url=url, sha256=FAKE_SHA, timeout=5)
    msg = str(info.value)
    assert msg.startswith("cannot download the official weights (") and "\n" not in msg
    assert f"save it as {cache / wc.OFFICIAL_FILENAME}" in msg
    assert _leftovers(cache) == []


def test_paths_pass_through(tmp_path):
    assert wc.resolve_weights(tmp_path / "w.pth") == tmp_path / "w.pth"
    assert wc.resolve_weights("~/x.pth") == Path.home() / "x.pth"


def test_cache_dir_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv(wc.CACHE_ENV, raising=False)
    monkeypatch.setattr(wc.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert wc.cache_dir() == tmp_path / "xdg" / "jaxdark"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert wc.cache_dir() == Path.home() / ".cache" / "jaxdark"
    monkeypatch.setattr(wc.sys, "platform", "darwin")
    assert wc.cache_dir() == Path.home() / "Library" / "Caches" / "jaxdark"


def test_the_official_file_verifies(cache, official_weights, monkeypatch):
    """The real checkpoint, served as a file:// URL, passes the built-in checksum."""
    monkeypatch.setattr(wc, "OFFICIAL_SIZE", 3_153_787)
    path = wc.resolve_weights("official", url=official_weights.resolve().as_uri())
    assert wc.sha256_of(path) == wc.OFFICIAL_SHA256
    assert path.stat().st_size == official_weights.stat().st_size


def test_unwritable_cache_is_one_line(tmp_path, monkeypatch, server):
    base, _, _ = server
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(wc.CACHE_ENV, str(blocker / "cache"))
    with pytest.raises(
        wc.WeightsDownloadError, match="cannot write to the cache folder .*JAXDARK_CACHE"
    ):
        wc.resolve_weights("official", url=f"{base}/demo_imgs/weights", sha256=FAKE_SHA)

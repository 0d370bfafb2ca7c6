"""Photos that declare huge sizes ("decompression bombs"), big real photos, damaged files:
refused from the header before decoding, cropped or shrunk with bounded memory, skipped in
training with one line, and no decoder chatter on stderr.

The demo cases run in one worker process under the harness's address-space limit
(3 GiB: an undefended 30000 x 30000 PNG needs 2.7 GB to decode and peaked at 5.4 GiB).
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.support.hostile import Case, Expect, check_command, run_cases


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A small PNG whose header declares ``width`` x ``height`` RGB pixels (rows of zeros
    for the first 1000 lines, as a real bomb's highly compressible data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = zlib.compress(b"\0" * ((3 * width + 1) * min(height, 1000)), 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def bomb_jpeg(path: Path, width: int, height: int) -> Path:
    """A tiny JPEG whose frame header (SOF0) is patched to declare ``width`` x ``height``."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 120, 150)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def gradient_png(path: Path, width: int, height: int) -> Path:
    """A real (fully decodable) smooth photo-like PNG of the given size."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    bgr = np.stack([x + 0 * y, 0 * x + y, (x + y) / 2], axis=-1).astype(np.uint8)
    cv2.imwrite(str(path), bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return path


def photo_shape(path: str, crop: int, max_side: int) -> str:
    """(worker call) the shape `load_photo` gives for ``path`` (a string, for the harness)."""
    from jaxdark.cli.demo import load_photo

    image, what = load_photo(path, crop, None, max_side)
    return f"{image.shape} {image.dtype} {what}"


def skipped_lines(folder: str) -> str:
    """(worker call) the photos a training source leaves out of ``folder``."""
    from jaxdark.data.synthetic_source import SyntheticPairs

    source = SyntheticPairs(folder, window=64, val_fraction=0.0)
    return " | ".join(source.skipped) + f" || usable {len(source.photos)}"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("photos")
    found = {
        "png30k": bomb_png(tmp / "bomb30k.png", 30000, 30000),
        "png50k": bomb_png(tmp / "bomb50k.png", 50000, 50000),
        "jpg14k": bomb_jpeg(tmp / "bomb14k.jpg", 14000, 14000),
        "big": gradient_png(tmp / "big.png", 6000, 4000),
    }
    damaged = tmp / "damaged.png"
    cv2.imwrite(str(damaged), np.full((200, 200, 3), 128, np.uint8))
    damaged.write_bytes(damaged.read_bytes()[:300])
    found["damaged"] = damaged
    train = tmp / "train"
    train.mkdir()
    bomb_png(train / "bomb.png", 30000, 30000)
    gradient_png(train / "ok.png", 300, 200)
    found["train"] = train
    return found


def test_photo_bombs_and_big_photos(photos, tmp_path):
    out = tmp_path / "o"
    d = tmp_path / "d"
    d.mkdir()
    original = d / "original.png"
    gradient_png(original, 128, 128)

    def demo(photo, *extra: str, out_dir: Path = out) -> dict:
        return {"cli": ["demo", "--photo", str(photo), "--out-dir", str(out_dir), *extra]}

    refused = Expect(reason="over the limit|far more than", absent=(out / "original.png",))
    cases = [
        Case("png 30000^2 --crop 256", demo(photos["png30k"], "--crop", "256"), refused),
        Case("png 30000^2", demo(photos["png30k"]), refused),
        Case("png 50000^2", demo(photos["png50k"]), refused),
        Case(
            "jpeg 14000^2",
            demo(photos["jpg14k"]),
            Expect(reason=r"declares 14000x14000 = 196,000,000 pixels, over the limit"),
        ),
        Case(
            "--max-pixels",
            demo("astronaut", "--max-pixels", "1000"),
            Expect(reason=r"512x512 = 262,144 pixels, over the limit of 1,000"),
        ),
        Case(
            "photo is an output",
            demo(original, out_dir=d),
            Expect(names=("original.png",), reason="is the input", unchanged=(original,)),
        ),
        Case(
            "big photo cropped",
            {"call": f"{__name__}:photo_shape", "args": [str(photos["big"]), 256, 0]},
            Expect(exit_code=0, stderr_lines=0),
        ),
        Case(
            "big photo shrunk",
            {"call": f"{__name__}:photo_shape", "args": [str(photos["big"]), 0, 512]},
            Expect(exit_code=0, stderr_lines=0),
        ),
        Case(
            "training skips a bomb",
            {"call": f"{__name__}:skipped_lines", "args": [str(photos["train"])]},
            Expect(exit_code=0, stderr_lines=None),
        ),
    ]
    results = run_cases(cases, case_timeout=120, timeout=600, trace_memory=False)
    failed = {name: r.problems for name, r in results.items() if r.problems}
    assert not failed, failed
    assert results["big photo cropped"].outcome.result.startswith("(256, 256, 3) uint8")
    shrunk = results["big photo shrunk"].outcome.result
    assert shrunk.startswith("(340, 512, 3) uint8") and "shrunk from 6000x4000" in shrunk
    skipped = results["training skips a bomb"].outcome.result
    assert "bomb.png: declares far more than" in skipped and skipped.endswith("usable 1")


def test_damaged_png_is_one_line_without_libpng_chatter(photos, tmp_path):
    checked = check_command(
        [sys.executable, "-m", "jaxdark", "demo", "--photo", str(photos["damaged"]),
         "--out-dir", str(tmp_path / "o")],
        Expect(names=("damaged.png",), reason="cannot read the photo"),
        timeout=300,
    )  # fmt: skip
    assert not checked.problems, (checked.problems, checked.outcome.stderr[-800:])
    assert "libpng" not in checked.outcome.stderr.split("cannot read the photo")[0]


def test_read_photo_crops_while_decoding_jpeg(tmp_path):
    from jaxdark.imaging.photo import read_photo

    path = tmp_path / "p.jpg"
    rgb = np.zeros((400, 600, 3), np.uint8)
    rgb[:, :, 0] = np.arange(600)[None, :] % 256
    Image.fromarray(rgb).save(path, quality=95)
    crop = read_photo(path, crop=100)
    assert crop.shape == (100, 100, 3)
    assert abs(int(crop[50, 0, 0]) - 250) <= 3  # the centre: columns 250..349
    small = read_photo(path, max_side=60)
    assert small.shape == (40, 60, 3)

"""Restore a dark camera RAW file with an exported ONNX model: rawpy + NumPy + onnxruntime only.

    jaxdark export weights.pth jaxdark.onnx          # once, where jaxdark is installed
    python examples/onnx_restore.py jaxdark.onnx IMG_0042.ARW restored.png [--m 5]

No JAX and no jaxdark import: this file carries the whole pre- and post-processing that
``jaxdark restore`` does around the network, in NumPy:

1. read the visible mosaic and normalise it with the file's own levels,
   ``max(raw - black, 0) / (white - black)`` per colour-filter position;
2. the amplification: the reference's histogram-weighted estimate (127 log-spaced bins, the
   darkest bin weighted 1, the brightest 1e-5; ``a = sum(w) * 0.01 * m / sum(x * w)``, sums
   in float64, clipped to [1, 300]) or a given factor;
3. bring any 2x2 Bayer layout to RGGB by mirroring one row and/or column, and mirror-pad the
   bottom and right sides to multiples of 32 (mirroring keeps the colour filter layout);
4. run the network on ``a * mosaic``, crop back to the input's pixels, write a PNG
   (8-bit, rounded, or 16-bit) with the standard library's zlib.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np

MULTIPLE = 32
BAYER_PATTERNS = ("RGGB", "GRBG", "GBRG", "BGGR")
NUM_BINS = 127
BIN_EDGES = ((2.0 ** np.linspace(0.0, 8.0, NUM_BINS + 1) - 1.0) / 255.0).astype(np.float32)
_w = 10.0 ** np.linspace(0.0, 5.0, NUM_BINS)
BIN_WEIGHTS = (_w / _w.max())[::-1].astype(np.float32)


def read_mosaic(path: str | Path) -> tuple[np.ndarray, str]:
    """The normalised (H, W) float32 mosaic of a Bayer RAW file and its 2x2 layout."""
    import rawpy

    if not Path(path).is_file():
        raise SystemExit(f"{path}: no such file")
    try:
        with rawpy.imread(str(path)) as raw:
            if raw.raw_pattern is None or raw.raw_pattern.shape != (2, 2):
                raise SystemExit(f"{path}: not a 2x2 Bayer mosaic")
            data = np.array(raw.raw_image_visible, np.float32)
            colors = np.array(raw.raw_colors_visible[:2, :2])
            desc = raw.color_desc.decode("ascii", "replace")
            per_channel = list(raw.black_level_per_channel)
            white = float(raw.white_level)
    except (OSError, rawpy.LibRawError) as e:
        reason = (
            e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else e
        )
        raise SystemExit(f"{path}: cannot read RAW file ({type(e).__name__}: {reason})") from None
    pattern = "".join(desc[int(c)] for c in colors.reshape(-1)).replace("g", "G")
    if pattern not in BAYER_PATTERNS:
        raise SystemExit(f"{path}: colour filter layout {pattern!r} is not a Bayer pattern")
    h, w = data.shape
    if h < MULTIPLE or w < MULTIPLE:
        raise SystemExit(f"{path}: frame of {h}x{w} pixels is too small (sides must be >= 32)")
    black = np.array([per_channel[int(c)] for c in colors.reshape(-1)], np.float32).reshape(2, 2)
    black_map = np.tile(black, (-(-h // 2), -(-w // 2)))[:h, :w]
    mosaic = np.maximum(data - black_map, 0.0) / (np.float32(white) - black_map)
    return mosaic.astype(np.float32), pattern


def estimate_amplification(x: np.ndarray, m: float = 5.0) -> float:
    """The reference's brightening factor of a normalised mosaic, in [1, 300]."""
    x = np.asarray(x, np.float32).reshape(-1)
    bins = np.searchsorted(BIN_EDGES, x, side="right") - 1  # edges[b] <= x < edges[b + 1]
    valid = (x >= 0) & (x < 1)
    w = np.where(valid, BIN_WEIGHTS[np.clip(bins, 0, NUM_BINS - 1)], np.float32(0))
    sum_w = w.sum(dtype=np.float64)
    sum_xw = np.dot(x.astype(np.float64), w.astype(np.float64))
    if sum_w == 0:  # nothing below the white level: no brightening needed
        return 1.0
    if sum_xw == 0:  # an all-black frame
        return 300.0
    return float(np.clip(np.float32(sum_w * 0.01 * m / sum_xw), 1.0, 300.0))


def to_network_input(mosaic: np.ndarray, pattern: str) -> tuple[np.ndarray, tuple[int, int]]:
    """RGGB phase and sides padded to multiples of 32 (mirroring); the offset of the original."""
    i = pattern.index("R")
    dy, dx = i // 2, i % 2
    x = np.pad(mosaic, ((dy, 0), (dx, 0)), mode="reflect") if dy or dx else mosaic
    h, w = x.shape
    ph, pw = -(-h // MULTIPLE) * MULTIPLE, -(-w // MULTIPLE) * MULTIPLE
    if (ph, pw) != (h, w):
        x = np.pad(x, ((0, ph - h), (0, pw - w)), mode="reflect")
    return x, (dy, dx)


def write_png(path: str | Path, image: np.ndarray, bits: int = 8) -> None:
    """An (H, W, 3) image in [0, 1] as an RGB PNG, rounded to 8 or 16 bits."""
    top = (1 << bits) - 1
    q = np.rint(np.clip(image, 0.0, 1.0) * top).astype(">u2" if bits == 16 else np.uint8)
    h, w = q.shape[:2]
    rows = np.concatenate([np.zeros((h, 1), np.uint8), q.reshape(h, -1).view(np.uint8)], axis=1)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", w, h, bits, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    png += chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b"")
    Path(path).write_bytes(png)


def restore(session, mosaic: np.ndarray, pattern: str, amplification: float) -> np.ndarray:
    """(H, W) normalised mosaic -> (H, W, 3) float32 sRGB in [0, 1] with the ONNX network."""
    x, (dy, dx) = to_network_input(mosaic, pattern)
    inp = session.get_inputs()[0]
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    batch = (np.float32(amplification) * x)[None, :, :, None].astype(dtype)
    y = session.run(None, {inp.name: batch})[0][0].astype(np.float32)
    return y[dy : dy + mosaic.shape[0], dx : dx + mosaic.shape[1]]


def main(argv: list[str] | None = None) -> int:
    """Command line: MODEL.onnx RAW OUT.png [--m M | --amplification A] [--bits 8|16]."""
    import onnxruntime as ort

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="ONNX file written by 'jaxdark export'")
    p.add_argument("raw", help="camera RAW file (any Bayer format LibRaw reads)")
    p.add_argument("out", help="PNG to write")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--m", type=float, default=5.0, help="brightness of the estimate (5)")
    group.add_argument("--amplification", type=float, default=None, help="fixed factor")
    p.add_argument("--bits", type=int, choices=(8, 16), default=8, help="PNG bit depth")
    args = p.parse_args(argv)

    start = time.perf_counter()
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    if props.get("producer") != "jaxdark":
        print(f"warning: {args.model} was not written by 'jaxdark export'", file=sys.stderr)
    multiple = json.loads(props.get("size_multiple", str(MULTIPLE)))
    if multiple != MULTIPLE:
        raise SystemExit(f"{args.model}: expects sides in multiples of {multiple}, not {MULTIPLE}")
    mosaic, pattern = read_mosaic(args.raw)
    if args.amplification is not None and not args.amplification > 0:
        raise SystemExit(f"--amplification must be positive, got {args.amplification}")
    if not args.m > 0:
        raise SystemExit(f"--m must be positive, got {args.m}")
    a = args.amplification or estimate_amplification(mosaic, args.m)
    image = restore(session, mosaic, pattern, a)
    write_png(args.out, image, args.bits)
    h, w = mosaic.shape
    seconds = time.perf_counter() - start
    print(f"{args.raw}: {w}x{h} {pattern}, x{a:.4g} -> {args.out} ({seconds:.2f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``jaxdark restore``: restore dark RAW files (or folders of them) to images.

    jaxdark restore INPUT... --weights PATH --out-dir DIR [--m M ...]
                    [--amplification A] [--format png|png16|jpg|tiff]

Each input file gives one image per brightness value ``m`` (default 5, the value the
reference trained with), named after the file's stem (``IMG_1.ARW`` -> ``IMG_1.png``,
or ``IMG_1_m1.png``, ``IMG_1_m8.png`` ... for several ``--m`` values). A folder stands
for the RAW files directly in it (``--recursive`` for its subfolders too). Every file
is reported (size, camera, amplification, time); a file that fails is reported by name
and the batch goes on; the summary lists the failures and the exit status is 1 if any.
Images are written to a temporary file and renamed, so an output is never half-written.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxdark.errors import JaxdarkError

FORMATS = {"png": ".png", "png16": ".png", "jpg": ".jpg", "tiff": ".tiff"}
DEFAULT_M = 5.0

# Extensions of the RAW formats LibRaw reads (matched case-insensitively in folders;
# files named explicitly are tried whatever their extension).
RAW_EXTENSIONS = frozenset(
    ".3fr .ari .arw .bay .braw .cap .cr2 .cr3 .crw .cs1 .dcr .dcs .dng .drf .eip .erf .fff "
    ".gpr .iiq .k25 .kdc .mdc .mef .mos .mrw .nef .nrw .orf .pef .ptx .pxn .r3d .raf .raw "
    ".rw2 .rwl .rwz .sr2 .srf .srw .x3f".split()
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``jaxdark restore``."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="RAW files or folders")
    parser.add_argument(
        "--weights",
        required=True,
        help="official .pth checkpoint or a directory written by 'jaxdark convert'",
    )
    parser.add_argument("--out-dir", required=True, help="folder for the restored images")
    parser.add_argument(
        "--m",
        type=float,
        nargs="+",
        default=None,
        metavar="M",
        help=f"brightness of the estimated amplification; several give several outputs "
        f"(default {DEFAULT_M:g})",
    )
    parser.add_argument(
        "--amplification",
        type=float,
        default=None,
        metavar="A",
        help="use this fixed factor instead of estimating one (excludes --m)",
    )
    parser.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default="png",
        help="png (8-bit, default), png16, jpg (8-bit) or tiff (16-bit)",
    )
    parser.add_argument(
        "--recursive", action="store_true", help="also look for RAW files in subfolders"
    )
    parser.add_argument(
        "--tile-size",
        type=int,
        default=None,
        metavar="N",
        help="restore in N x N tiles (multiple of 32) to bound memory on huge frames",
    )
    parser.add_argument(
        "--tile-overlap",
        type=int,
        default=128,
        metavar="N",
        help="context around each tile, a multiple of 32 (default 128)",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="float32 (default) or bfloat16 multiplies (meant for GPUs and TPUs; "
        "accumulation and output stay float32)",
    )


# --------------------------------------------------------------------------- inputs


def find_inputs(inputs: Sequence[str | os.PathLike], recursive: bool = False) -> list[Path]:
    """Files named directly, plus RAW files found in named folders (sorted, no repeats).

    An input that does not exist is kept as a file: reading it then fails with a
    one-line error and the batch goes on past it (its summary lists it). Raises
    ValueError if folders hold no RAW file and no file was named.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            walker = p.rglob("*") if recursive else p.iterdir()
            files = sorted(f for f in walker if f.is_file() and f.suffix.lower() in RAW_EXTENSIONS)
        else:
            files = [p]
        for f in files:
            key = f.absolute() if not f.exists() else f.resolve()
            if key not in seen:
                seen.add(key)
                found.append(f)
    if not found:
        where = ", ".join(str(i) for i in inputs)
        raise ValueError(f"no RAW files found in {where} (extensions: .dng, .arw, .nef, ...)")
    return found


def output_stems(paths: Sequence[Path]) -> list[str]:
    """A distinct output stem per input: its stem, then stem_ext, then stem-2, ... on clashes."""
    stems = [p.stem for p in paths]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s.lower()] = counts.get(s.lower(), 0) + 1
    out: list[str] = []
    used: set[str] = set()
    for p, s in zip(paths, stems, strict=True):
        name = s if counts[s.lower()] == 1 else f"{s}_{p.suffix.lstrip('.')}" if p.suffix else s
        base, k = name, 2
        while name.lower() in used:
            name = f"{base}-{k}"
            k += 1
        used.add(name.lower())
        out.append(name)
    return out


def output_name(stem: str, m: float | None, several: bool, fmt: str) -> str:
    """File name of one output: ``stem.png`` or, for several m values, ``stem_m5.png``."""
    suffix = f"_m{m:g}" if several and m is not None else ""
    return f"{stem}{suffix}{FORMATS[fmt]}"


# --------------------------------------------------------------------------- writing


def to_uint(image: np.ndarray, bits: int) -> np.ndarray:
    """[0, 1] float image -> rounded uint8 (bits=8) or uint16 (bits=16)."""
    top = (1 << bits) - 1
    q = np.rint(np.clip(image, 0.0, 1.0) * top)
    return q.astype(np.uint8 if bits == 8 else np.uint16)


def encode(path: Path, image: np.ndarray, fmt: str) -> None:
    """Write an (H, W, 3) [0, 1] RGB image to ``path`` in ``fmt`` (not atomic)."""
    if fmt == "tiff":
        import tifffile

        tifffile.imwrite(path, to_uint(image, 16), photometric="rgb", compression="zlib")
        return
    import cv2

    data = to_uint(image, 16 if fmt == "png16" else 8)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == "jpg" else []
    ok, buf = cv2.imencode(FORMATS[fmt], np.ascontiguousarray(data[..., ::-1]), params)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the image as {fmt}")
    path.write_bytes(buf.tobytes())


def write_atomic(path: Path, image: np.ndarray, fmt: str) -> None:
    """`encode` into a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        encode(Path(tmp), image, fmt)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------- restoring


@dataclass
class FileResult:
    """What happened to one input."""

    path: Path
    outputs: list[Path]
    error: str | None = None
    report: str = ""


def restore_one(
    restorer,
    path: Path,
    stem: str,
    out_dir: Path,
    ms: Sequence[float],
    amplification: float | None,
    fmt: str,
) -> FileResult:
    """Read, restore and write one file; errors a user can fix become ``FileResult.error``."""
    from jaxdark.raw import read_raw

    start = time.perf_counter()
    outputs: list[Path] = []
    try:
        frame = read_raw(path)
        h, w = frame.shape
        parts = []
        values: Iterable[float | None] = [None] if amplification is not None else ms
        for m in values:
            compiled = len(restorer.compiled_shapes)
            r = restorer.restore_frame(frame, amplification, DEFAULT_M if m is None else m)
            out = out_dir / output_name(stem, m, len(ms) > 1 and amplification is None, fmt)
            write_atomic(out, r.image, fmt)
            outputs.append(out)
            note = " incl. compile" if len(restorer.compiled_shapes) > compiled else ""
            what = f"x{r.amplification:.4g}" + ("" if m is None else f" (m={m:g})")
            parts.append(f"{what} {r.seconds:.3g}s{note} -> {out.name}")
        total = time.perf_counter() - start
        report = (
            f"{path}: {w}x{h} {frame.pattern}, {frame.camera}; "
            + "; ".join(parts)
            + f"; {total:.3g}s in all"
        )
        return FileResult(path, outputs, None, report)
    except (JaxdarkError, ValueError, OSError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if not msg.startswith(str(path)):
            msg = f"{path}: {msg}"
        return FileResult(path, outputs, msg, msg)
    except Exception as e:  # e.g. out of memory in XLA: report it, keep the batch going
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        msg = f"{type(e).__name__}: {first}" if first else type(e).__name__
        if not msg.startswith(str(path)):
            msg = f"{path}: {msg}"
        return FileResult(path, outputs, msg, msg)


def _validate(args: argparse.Namespace) -> list[float]:
    if args.amplification is not None and args.m is not None:
        raise ValueError("give --m or --amplification, not both")
    if args.amplification is not None and not (
        np.isfinite(args.amplification) and args.amplification > 0
    ):
        raise ValueError(f"--amplification must be a positive number, got {args.amplification}")
    ms = [DEFAULT_M] if args.m is None else list(dict.fromkeys(args.m))
    for m in ms:
        if not (np.isfinite(m) and m > 0):
            raise ValueError(f"--m values must be positive numbers, got {m}")
    return ms


def run(args: argparse.Namespace) -> int:
    """Restore every input; 0 if all succeeded, 1 if any failed."""
    from tqdm import tqdm

    from jaxdark.restorer import Restorer

    ms = _validate(args)
    paths = find_inputs(args.inputs, args.recursive)
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out-dir {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    restorer = Restorer(
        args.weights,
        tile_size=args.tile_size,
        tile_overlap=args.tile_overlap,
        dtype=getattr(args, "dtype", "float32"),
    )

    stems = output_stems(paths)
    results: list[FileResult] = []
    bar = tqdm(
        total=len(paths), unit="file", desc="restore", disable=len(paths) < 2, file=sys.stderr
    )
    for path, stem in zip(paths, stems, strict=True):
        result = restore_one(restorer, path, stem, out_dir, ms, args.amplification, args.format)
        results.append(result)
        tqdm.write(
            ("FAILED " if result.error else "") + result.report,
            file=sys.stderr if result.error else sys.stdout,
        )
        bar.update(1)
    bar.close()

    failed = [r for r in results if r.error]
    written = sum(len(r.outputs) for r in results)
    print(
        f"restored {len(results) - len(failed)} of {len(results)} file(s), "
        f"{written} image(s) in {out_dir}"
    )
    if failed:
        print(f"{len(failed)} file(s) failed:", file=sys.stderr)
        for r in failed:
            print(f"  {r.error}", file=sys.stderr)
        return 1
    return 0

"""``jaxdark video``: a sequence of dark RAW frames restored into an H.264 MP4.

    jaxdark video SRC... --weights PATH --out OUT.mp4 [--fps F] [--m M] [--crf Q]
                  [--jobs N] [--in-flight K] [--io-nice N] [--overwrite]

SRC is a folder of RAW frames (CinemaDNG or any files LibRaw reads, taken in name
order) or the frame files themselves, in the order given. The amplification is the
reference's estimate smoothed over time (`jaxdark.video`: a log-domain moving average
with weight 0.2 that jumps at once to changes of light over 20%), so a steady scene does
not flicker. Frames are read by ``--jobs`` threads, restored with ``--in-flight`` frames
outstanding on the device, and encoded by PyAV (libx264, yuv420p, ``--crf``) as they
come back; the MP4 is written to a temporary file and renamed. A frame that cannot be
read, or whose size differs from the first frame's, is reported and left out; the exit
status is then 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from jaxdark.cli.restore import add_io_nice_argument
from jaxdark.errors import printable_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``jaxdark video``."""
    parser.add_argument("inputs", nargs="+", metavar="SRC", help="a folder of RAW frames, or files")
    parser.add_argument(
        "--weights", required=True, help="official .pth, a 'jaxdark convert' directory or a run"
    )
    parser.add_argument("--out", required=True, help="the MP4 file to write")
    parser.add_argument("--model", default=None, metavar="NAME", help="as 'jaxdark restore'")
    parser.add_argument("--fps", type=float, default=24.0, help="frame rate (default 24)")
    parser.add_argument(
        "--m", type=float, default=5.0, help="brightness of the estimated amplification (5)"
    )
    parser.add_argument(
        "--crf", type=int, default=18, help="x264 quality, 0 (lossless) to 51 (default 18)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="threads reading frames (default 2)")
    parser.add_argument(
        "--in-flight", type=int, default=2, help="frames outstanding on the device (default 2)"
    )
    parser.add_argument(
        "--dtype", choices=("float32", "bfloat16"), default="float32", help="as 'jaxdark restore'"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_io_nice_argument(parser)


def _check(args: argparse.Namespace, paths: list[Path]) -> Path:
    from jaxdark.extras import require_extra
    from jaxdark.fileio import check_writable_dir
    from jaxdark.imaging.amplifier import check_m
    from jaxdark.streaming import io_nice

    require_extra("video", "jaxdark video")
    check_m(args.m)
    if not (0 < args.fps <= 1000):
        raise ValueError(f"--fps must be in (0, 1000], got {args.fps:g}")
    if not 0 <= args.crf <= 51:
        raise ValueError(f"--crf must be in [0, 51], got {args.crf}")
    if args.jobs < 1 or args.in_flight < 1:
        raise ValueError("--jobs and --in-flight must be >= 1")
    args.io_nice = io_nice(args.io_nice, "--io-nice")  # resolved once, for every stage
    out = Path(args.out)
    check_writable_dir(out.parent, "--out")
    if out.is_dir():
        raise ValueError(f"--out {printable_path(out)} is a folder; give a file name")
    if out.exists() and out.resolve() in {p.resolve() for p in paths if p.exists()}:
        raise ValueError(f"--out {printable_path(out)} is one of the input frames")
    if out.exists() and not args.overwrite:
        raise ValueError(f"{printable_path(out)} exists; pass --overwrite to replace it")
    return out


def run(args: argparse.Namespace) -> int:
    """Restore the frames into the MP4; 0 if every frame went in, 1 if some were left out."""
    from jaxdark.cli.restore import find_inputs, load_weights
    from jaxdark.imaging.raw import read_raw_counts
    from jaxdark.restorer import Restorer
    from jaxdark.streaming import read_ahead
    from jaxdark.video import restore_video

    paths, problems = find_inputs(args.inputs)
    out = _check(args, paths)
    failed = list(problems)
    for line in problems:
        print(f"FAILED {line}", file=sys.stderr)
    restorer = Restorer(load_weights(args.weights, args.model), dtype=args.dtype)
    nice = args.io_nice
    first_shape: list[tuple[int, int]] = []

    def frames():
        for path, future in read_ahead(paths, read_raw_counts, args.jobs, args.jobs + 1, nice):
            try:
                raw = future.result()
            except Exception as e:  # noqa: BLE001 - a bad frame is reported and left out
                from jaxdark.errors import one_line

                failed.append(one_line(e, path))
                print(f"FAILED {failed[-1]}", file=sys.stderr)
                continue
            if first_shape and raw.shape != first_shape[0]:
                h, w = first_shape[0]
                failed.append(
                    f"{printable_path(path)}: {raw.shape[1]}x{raw.shape[0]} frame in a "
                    f"{w}x{h} clip; left out"
                )
                print(f"FAILED {failed[-1]}", file=sys.stderr)
                continue
            first_shape[:] = [raw.shape]
            yield raw

    start = time.perf_counter()
    stats = restore_video(
        restorer,
        frames(),
        out,
        fps=args.fps,
        m=args.m,
        in_flight=args.in_flight,
        crf=args.crf,
        nice=nice,
    )
    a = stats.amplifications
    print(
        f"wrote {printable_path(out)}: {stats.frames} frame(s) of {first_shape[0][1]}x"
        f"{first_shape[0][0]} at {args.fps:g} fps; amplification x{min(a):.4g}..x{max(a):.4g}; "
        f"{time.perf_counter() - start:.3g}s ({stats.steady_fps:.3g} frames/s after the first)"
    )
    if failed:
        print(f"{len(failed)} frame(s) left out:", file=sys.stderr)
        for line in failed:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0

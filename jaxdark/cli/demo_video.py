"""``jaxdark demo --video``: a dark RAW clip made from a photo, restored into an MP4.

    jaxdark demo --video [--weights official|PATH] [--out-dir DIR] [--photo NAME|FILE]
                 [--frames N] [--ratio R] [--seed S] [--m M]

The photo becomes a clip of ``--frames`` frames panning slowly across it (2 pixels a
frame), each shot ``--ratio`` times too dark on the synthetic Sony a7S II with its own
draw of the sensor noise (`jaxdark.data.synthetic_clip`). The frames are written as DNGs
in DIR/dark_clip/ (so ``jaxdark video DIR/dark_clip`` can restore them again), restored
from memory with the smoothed amplification (`jaxdark.video`) into DIR/restored.mp4,
and the frame rate is printed (after the first frame, which compiles).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DEFAULT_FRAMES = 48
PAN_STEP = 2
CLIP_DIR = "dark_clip"  # the clip's DNGs, under --out-dir
FRAME_NAME = "frame_{:05d}.dng"
VIDEO_NAME = "restored.mp4"


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags ``jaxdark demo`` gains for ``--video``."""
    parser.add_argument(
        "--video",
        action="store_true",
        help="make a dark RAW clip (a slow pan over the photo, fresh noise every frame), "
        "restore it into restored.mp4 and print frames/s",
    )
    parser.add_argument(
        "--frames", type=int, default=DEFAULT_FRAMES, help="frames of the --video clip (48)"
    )


def video_outputs(args: argparse.Namespace) -> list[Path]:
    """Every file ``jaxdark demo --video`` writes under ``--out-dir``."""
    out_dir = Path(args.out_dir)
    clip = [out_dir / CLIP_DIR / FRAME_NAME.format(i) for i in range(max(args.frames, 0))]
    return [*clip, out_dir / VIDEO_NAME]


def run_video(
    args: argparse.Namespace, photo: np.ndarray, what: str, gains: Sequence[float]
) -> int:
    """Make the clip of ``photo`` (described by ``what``; camera white balance ``gains``),
    write its DNGs, restore it into an MP4 and print the rate."""
    from jaxdark.constants import SID_BLACK_LEVEL, SID_WHITE_LEVEL
    from jaxdark.data.synthetic_clip import ClipSpec, dark_clip
    from jaxdark.extras import require_extra
    from jaxdark.imaging.dng import write_dng
    from jaxdark.imaging.raw import RawCounts
    from jaxdark.restorer import Restorer
    from jaxdark.video import restore_video

    require_extra("video", "jaxdark demo --video")
    if not 2 <= args.frames <= 10000:
        raise ValueError(f"--frames must be in [2, 10000], got {args.frames}")
    h = photo.shape[0] // 2 * 2
    w = (photo.shape[1] - PAN_STEP * (args.frames - 1)) // 2 * 2
    if min(h, w) < 32:
        raise ValueError(
            f"{what} is too small for a {args.frames}-frame pan ({PAN_STEP} pixels a frame)"
        )
    restorer = Restorer(args.weights)
    out_dir = Path(args.out_dir)
    frames_dir = out_dir / CLIP_DIR
    frames_dir.mkdir(parents=True, exist_ok=True)
    spec = ClipSpec((h, w), args.frames, PAN_STEP, args.ratio, args.seed)
    frames = []
    for i, counts in enumerate(dark_clip(photo, spec, gains)):
        write_dng(
            frames_dir / FRAME_NAME.format(i),
            counts,
            pattern="RGGB",
            black_levels=SID_BLACK_LEVEL,
            white_level=SID_WHITE_LEVEL,
            model="Synthetic dark clip",
        )
        frames.append(
            RawCounts(
                f"frame {i}",
                counts,
                "RGGB",
                "synthetic",
                (float(SID_BLACK_LEVEL),) * 4,
                float(SID_WHITE_LEVEL),
            )  # fmt: skip
        )
    print(
        f"clip: {args.frames} frames of {w}x{h} panning over {what}, {args.ratio:g}x too dark, "
        f"fresh sensor noise each frame; DNGs in {frames_dir}"
    )
    start = time.perf_counter()
    stats = restore_video(restorer, frames, out_dir / VIDEO_NAME, m=args.m or 5.0)
    a = stats.amplifications
    print(
        f"restored {stats.frames} frames into {out_dir / VIDEO_NAME} in "
        f"{time.perf_counter() - start:.2f}s: {stats.steady_fps:.2f} frames/s after the first "
        f"({stats.first_seconds:.2f}s, compiling); amplification x{min(a):.4g}..x{max(a):.4g}"
    )
    return 0

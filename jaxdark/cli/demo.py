"""``jaxdark demo``: a real photograph made extremely dark, then restored, end to end.

    jaxdark demo [--weights official|PATH] [--out-dir DIR] [--photo NAME|FILE]
                 [--ratio R] [--seed S] [--m M] [--crop N] [--max-side N] [--max-pixels N]

A photo (by default scikit-image's ``astronaut``) is turned into the clean long exposure
of a Sony a7S II, the camera of SID, and into a dark exposure ``--ratio`` times shorter
with the camera's calibrated noise (`jaxdark.data.synthetic`: unprocessing, ELD's noise
model). The dark exposure is written as a real DNG and restored through exactly the code
``jaxdark restore`` runs. The reference image ("original") is the clean exposure
developed the way SID's ground truth is developed. In DIR (default ``demo_out``):

* ``dark_scene.dng``: the dark raw file (readable by rawpy, darktable, ...);
* ``original.png``: the clean long exposure, developed like SID's ground truth;
* ``naive.png``: the dark raw brightened by the same factor and developed the same way,
  without denoising (`jaxdark.data.naive`);
* ``restored.png``: the network's restoration, as ``jaxdark restore`` writes it;
* ``side_by_side.png``: original | naive | restored, captioned with PSNR / SSIM.

It prints PSNR and SSIM (`jaxdark.imaging.metrics`) of the naive and restored images against
the original. A photo declaring more pixels than ``--max-pixels`` is refused before it is
decoded; larger photos are shrunk to ``--max-side`` (`jaxdark.imaging.photo`). The photo
and the weights are never among the files written.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from jaxdark.constants import MAX_AMPLIFICATION, SID_BLACK_LEVEL, SID_WHITE_LEVEL
from jaxdark.errors import JaxdarkError

DEFAULT_PHOTO = "astronaut"
DEFAULT_RATIO = 250.0
# Camera white balance of the demo shot (R, G, B multipliers; as-shot neutral = 1/gains):
# the raw colour the official network renders as neutral grey (found by search).
DEMO_GAINS = (2.0, 1.0, 2.0)
DEFAULT_MAX_SIDE = 2048  # the demo's working frame: ~200 bytes a pixel end to end
OUTPUTS = ("dark_scene.dng", "original.png", "naive.png", "restored.png", "side_by_side.png")
CAPTION_HEIGHT = 30
GAP = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``jaxdark demo``."""
    parser.add_argument(
        "--weights",
        default="official",
        help="'official' (default: the official checkpoint, downloaded once into the cache), "
        "a .pth, a directory written by 'jaxdark convert', or a training run",
    )
    parser.add_argument("--out-dir", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument(
        "--photo",
        default=DEFAULT_PHOTO,
        help="a scikit-image sample photo by name (default astronaut) or a PNG/JPEG/TIFF file",
    )
    parser.add_argument(
        "--ratio",
        type=float,
        default=DEFAULT_RATIO,
        help="exposure ratio: how many times darker the shot is (default 250; SID: 100-300)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise and camera draws")
    parser.add_argument(
        "--m",
        type=float,
        default=None,
        help="estimate the amplification with brightness M (as 'jaxdark restore --m'); "
        "default: amplify by the exposure ratio",
    )
    parser.add_argument(
        "--crop", type=int, default=0, help="use the centre N x N pixels of the photo (0: all)"
    )
    parser.add_argument(
        "--max-side",
        type=int,
        default=DEFAULT_MAX_SIDE,
        metavar="N",
        help=f"shrink the photo (after --crop) so its longer side is at most N pixels "
        f"(default {DEFAULT_MAX_SIDE}; 0: full size, memory grows ~200 bytes a pixel)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        metavar="N",
        help="refuse photos that declare more than N pixels, before decoding "
        "(default $JAXDARK_MAX_PHOTO_PIXELS or 100000000)",
    )
    from jaxdark.cli.demo_video import add_video_arguments

    add_video_arguments(parser)


def sample_photo_path(name: str) -> Path | None:
    """Path of scikit-image's bundled sample photo ``name`` (with or without suffix)."""
    import skimage.data

    from jaxdark.data.synthetic_source import PHOTO_SUFFIXES

    folder = Path(skimage.data.__file__).parent
    candidates = [name] if Path(name).suffix else [name + s for s in PHOTO_SUFFIXES]
    for candidate in candidates:
        if "/" not in candidate and (folder / candidate).is_file():
            return folder / candidate
    return None


def load_photo(
    photo: str, crop: int = 0, max_pixels: int | None = None, max_side: int = 0
) -> tuple[np.ndarray, str]:
    """(H, W, 3) photo (uint8/uint16) and its description: a scikit-image sample by name
    or a file; ``crop`` > 0 keeps the centre ``crop`` x ``crop`` pixels, ``max_side`` > 0
    then shrinks it; a photo declaring more than ``max_pixels`` is refused before it is
    decoded (`jaxdark.imaging.photo.read_photo`)."""
    from jaxdark.imaging.photo import photo_size, read_photo

    path, what = photo_source(photo)
    if crop and (crop < 32 or crop % 2):
        raise ValueError(f"--crop must be 0 or an even number >= 32, got {crop}")
    if max_side and max_side < 32:
        raise ValueError(f"--max-side must be 0 or >= 32, got {max_side}")
    h, w = photo_size(path, max_pixels)
    if crop > min(h, w):
        raise ValueError(f"--crop {crop} is larger than the photo ({w}x{h})")
    if not crop and min(h, w) < 32:
        raise ValueError(f"{path}: {w}x{h} is too small; the photo needs sides >= 32")
    image = read_photo(path, max_pixels=max_pixels, crop=crop, max_side=max_side)
    full = (crop, crop) if crop else (h, w)
    if image.shape[:2] != full:  # shrunk: keep even sides, say so
        sh, sw = image.shape[0] - image.shape[0] % 2, image.shape[1] - image.shape[1] % 2
        image = image[:sh, :sw]
        what += f" (shrunk from {full[1]}x{full[0]} to {sw}x{sh}, --max-side)"
    return image, what


def photo_source(photo: str) -> tuple[Path, str]:
    """The file behind ``--photo`` (a scikit-image sample name or a path) and its description."""
    sample = sample_photo_path(photo)
    if sample is not None:
        return sample, f"scikit-image sample photo {sample.name}"
    path = Path(photo)
    if not path.is_file():
        raise JaxdarkError(
            f"--photo {photo}: no such file and not a scikit-image sample photo "
            "(e.g. astronaut, motorcycle_left, coffee)"
        )
    return path, str(photo)


def caption(image: np.ndarray, text: str, height: int = CAPTION_HEIGHT) -> np.ndarray:
    """``image`` (H, W, 3 in [0, 1]) with a white strip above it holding ``text``."""
    import cv2

    strip = np.full((height, image.shape[1], 3), 255, np.uint8)  # putText draws on 8 bits
    scale = 0.5 if image.shape[1] >= 256 else 0.3
    cv2.putText(strip, text, (4, height - 10), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1)
    return np.concatenate([strip / np.float32(255.0), image.astype(np.float32)], axis=0)


def side_by_side(images: list[np.ndarray], gap: int = GAP) -> np.ndarray:
    """(H, W, 3) images next to each other with white gaps of ``gap`` pixels."""
    spacer = np.ones((images[0].shape[0], gap, 3), np.float32)
    parts: list[np.ndarray] = []
    for i, image in enumerate(images):
        parts += ([spacer] if i else []) + [image.astype(np.float32)]
    return np.concatenate(parts, axis=1)


def run(args: argparse.Namespace) -> int:
    """Make the dark DNG, restore it like ``jaxdark restore``, save and score the images."""
    from jaxdark.cli.restore import restore_one
    from jaxdark.data.naive import naive_brighten
    from jaxdark.data.synthetic import XYZ_TO_CAMERA, SynthesisConfig, synthesize_pair
    from jaxdark.fileio import refuse_input_as_output, write_image
    from jaxdark.imaging import metrics
    from jaxdark.imaging.amplifier import check_m
    from jaxdark.imaging.dng import write_dng
    from jaxdark.imaging.raw import read_raw
    from jaxdark.restorer import Restorer

    if not 1.0 <= args.ratio <= MAX_AMPLIFICATION:
        raise ValueError(f"--ratio must be in [1, {MAX_AMPLIFICATION:g}], got {args.ratio:g}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if args.m is not None:
        check_m(args.m)
    out_dir = Path(args.out_dir)
    video = getattr(args, "video", False)
    if video:
        from jaxdark.cli.demo_video import run_video, video_outputs
    refuse_input_as_output(  # the photo or the weights must never be overwritten
        video_outputs(args) if video else [out_dir / name for name in OUTPUTS],
        [photo_source(args.photo)[0], args.weights],
        "choose another --out-dir",
    )
    photo, what = load_photo(args.photo, args.crop, args.max_pixels, args.max_side)
    if video:
        return run_video(args, photo, what, DEMO_GAINS)
    start = time.perf_counter()
    restorer = Restorer(args.weights)  # bad weights fail before anything is written
    loaded = f"loaded {args.weights} in {time.perf_counter() - start:.2f}s"
    out_dir.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(args.seed)
    pair = synthesize_pair(
        photo, rng, SynthesisConfig(), ratio=args.ratio, gains=DEMO_GAINS, name=args.photo
    )
    n = pair.noise
    print(
        f"photo: {what}, {pair.mosaic.shape[1]}x{pair.mosaic.shape[0]}; shot {args.ratio:g}x "
        f"darker on a simulated Sony a7S II (ELD noise: gain {n.k:.3g} DN/e-, read noise "
        f"{n.read_scale:.3g} DN ({n.read_model}), row noise {n.row_scale:.3g} DN)"
    )
    dng = write_dng(
        out_dir / "dark_scene.dng",
        pair.mosaic,
        pattern="RGGB",
        black_levels=SID_BLACK_LEVEL,
        white_level=SID_WHITE_LEVEL,
        model="Synthetic dark scene",
        as_shot_neutral=tuple(1.0 / np.asarray(pair.gains)),
        color_matrix=XYZ_TO_CAMERA,
    )
    level = pair.mosaic.mean() - SID_BLACK_LEVEL
    print(
        f"wrote {dng} (14-bit RGGB, mean level {level:.1f} of "
        f"{SID_WHITE_LEVEL - SID_BLACK_LEVEL} above black)"
    )

    print(loaded)
    amplification = None if args.m is not None else float(args.ratio)
    result = restore_one(
        restorer, dng, [(args.m, out_dir / "restored.png")], amplification, "png", overwrite=True
    )
    if result.error:
        raise JaxdarkError(result.error)
    print(result.report)

    frame = read_raw(dng)
    a = amplification if amplification is not None else restorer.amplification(frame.mosaic, args.m)
    restored = restorer.restore_frame(frame, a).image  # compiled already: what was written
    original = metrics.ground_truth_to_unit(pair.target)
    clean_max = float(pair.clean.max()) - SID_BLACK_LEVEL
    naive = naive_brighten(frame.mosaic, a, pair.gains, data_maximum=clean_max)
    scores = {
        "naive": metrics.image_metrics(naive, original),
        "restored": metrics.image_metrics(restored, original),
    }
    write_image(out_dir / "original.png", original, "png")
    write_image(out_dir / "naive.png", naive, "png")

    def score(name: str) -> str:
        return f"PSNR {scores[name]['psnr']:.2f} dB, SSIM {scores[name]['ssim']:.3f}"

    panels = [
        caption(original, "original (clean long exposure)"),
        caption(naive, f"naive x{a:.4g}: {score('naive')}"),
        caption(restored, f"restored: {score('restored')}"),
    ]
    write_image(out_dir / "side_by_side.png", side_by_side(panels), "png")

    print("against the original (the clean exposure developed like SID's ground truth):")
    print(f"  {'':<20}{'PSNR dB':>9}{'SSIM':>8}")
    for name, label in (("naive", "naive brightening"), ("restored", "restored")):
        print(f"  {label:<20}{scores[name]['psnr']:>9.2f}{scores[name]['ssim']:>8.3f}")
    for name in ("dark_scene.dng", "original.png", "naive.png", "restored.png"):
        print(f"saved {out_dir / name}")
    print(f"saved {out_dir / 'side_by_side.png'} (original | naive | restored)")
    return 0

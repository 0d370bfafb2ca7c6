"""A small SID-layout dataset for tests: real DNG raw files under SID names.

``make_sid_tree(root)`` writes ``Sony/short/*.ARW``, ``Sony/long/*.ARW`` (DNG content,
which rawpy reads like any raw file) and the three ``Sony_*_list.txt`` files, in the
layout of the extracted SID download. Scenes are smooth random colour fields; each
long exposure is the scene as an RGGB mosaic and each short exposure the same scene
divided by its exposure ratio, plus noise. Reused by the evaluation tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

BLACK_LEVEL = 512
WHITE_LEVEL = 16383


@dataclass(frozen=True)
class FixtureScene:
    """One scene: id, split, long exposure (s) and its short exposures (s)."""

    scene_id: int
    split: str  # "train", "val" or "test"
    long_exposure: float
    short_exposures: tuple[float, ...]


# Ratios 100, 250, 300 (capped from 303) and 300.
DEFAULT_SCENES: tuple[FixtureScene, ...] = (
    FixtureScene(1, "train", 10.0, (0.1, 0.04)),
    FixtureScene(2, "train", 10.0, (0.033,)),
    FixtureScene(3, "train", 30.0, (0.1, 0.1)),
    FixtureScene(20001, "val", 10.0, (0.1,)),
    FixtureScene(10001, "test", 10.0, (0.04,)),
    FixtureScene(10002, "test", 30.0, (0.1,)),
)


def write_bayer_dng(
    path: str | Path,
    mosaic: np.ndarray,
    *,
    black_levels: int = BLACK_LEVEL,
    white_level: int = WHITE_LEVEL,
    cfa: str = "RGGB",
    as_shot_neutral: tuple[float, float, float] = (0.5, 1.0, 0.6667),
) -> None:
    """Write a uint16 Bayer mosaic as an uncompressed DNG that rawpy can read."""
    mosaic = np.ascontiguousarray(mosaic, dtype=np.uint16)
    codes = {"R": 0, "G": 1, "B": 2}
    neutral = []
    for v in as_shot_neutral:
        neutral += [round(v * 10000), 10000]
    identity = []
    for i in range(9):
        identity += [1 if i % 4 == 0 else 0, 1]
    tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, "jaxdark fixture camera", True),  # UniqueCameraModel
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, tuple(codes[c] for c in cfa), True),  # CFAPattern
        (50710, "B", 3, (0, 1, 2), True),  # CFAPlaneColor
        (50711, "H", 1, 1, True),  # CFALayout: rectangular
        (50713, "H", 2, (1, 1), True),  # BlackLevelRepeatDim
        (50714, "H", 1, int(black_levels), True),  # BlackLevel
        (50717, "H", 1, int(white_level), True),  # WhiteLevel
        (50721, "2i", 9, tuple(identity), True),  # ColorMatrix1 (identity)
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, "2I", 3, tuple(neutral), True),  # AsShotNeutral
    ]
    tifffile.imwrite(
        path,
        mosaic,
        photometric=32803,
        compression=None,
        extratags=tags,
        subfiletype=0,
        metadata=None,
    )


def _scene_rgb(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random linear RGB field in [0.05, 0.9]."""
    coarse = rng.random((height // 16 + 2, width // 16 + 2, 3))
    ys = np.linspace(0, coarse.shape[0] - 1.001, height)
    xs = np.linspace(0, coarse.shape[1] - 1.001, width)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    c = coarse
    img = (
        c[y0][:, x0] * (1 - fy) * (1 - fx)
        + c[y0 + 1][:, x0] * fy * (1 - fx)
        + c[y0][:, x0 + 1] * (1 - fy) * fx
        + c[y0 + 1][:, x0 + 1] * fy * fx
    )
    return 0.05 + 0.85 * img


def _mosaic(rgb: np.ndarray) -> np.ndarray:
    """RGGB sampling of an (H, W, 3) image."""
    h, w, _ = rgb.shape
    out = np.empty((h, w), rgb.dtype)
    out[0::2, 0::2] = rgb[0::2, 0::2, 0]
    out[0::2, 1::2] = rgb[0::2, 1::2, 1]
    out[1::2, 0::2] = rgb[1::2, 0::2, 1]
    out[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return out


def _fmt(t: float) -> str:
    return f"{t:g}s"


def make_sid_tree(
    root: str | Path,
    *,
    height: int = 96,
    width: int = 128,
    scenes: Sequence[FixtureScene] = DEFAULT_SCENES,
    seed: int = 0,
) -> Path:
    """Write a SID-layout folder under ``root`` and return ``root``."""
    root = Path(root)
    (root / "Sony" / "short").mkdir(parents=True, exist_ok=True)
    (root / "Sony" / "long").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    span = WHITE_LEVEL - BLACK_LEVEL
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for scene in scenes:
        linear = _mosaic(_scene_rgb(rng, height, width)) * 0.35
        long_name = f"{scene.scene_id:05d}_00_{_fmt(scene.long_exposure)}.ARW"
        noisy = linear + rng.normal(0, 0.002, linear.shape)
        long_raw = np.clip(BLACK_LEVEL + noisy * span, 0, WHITE_LEVEL)
        write_bayer_dng(root / "Sony" / "long" / long_name, long_raw.astype(np.uint16))
        for k, short in enumerate(scene.short_exposures):
            ratio = scene.long_exposure / short
            short_name = f"{scene.scene_id:05d}_{k:02d}_{_fmt(short)}.ARW"
            dark = linear / ratio + rng.normal(0, 0.0005, linear.shape)
            short_raw = np.clip(np.round(BLACK_LEVEL + dark * span), 0, WHITE_LEVEL)
            write_bayer_dng(root / "Sony" / "short" / short_name, short_raw.astype(np.uint16))
            lines[scene.split].append(
                f"./Sony/short/{short_name} ./Sony/long/{long_name} ISO{100 * (k + 1)} F{4 + k}"
            )
    for split, entries in lines.items():
        (root / f"Sony_{split}_list.txt").write_text("".join(e + "\n" for e in entries))
    return root


def prepare_fixture_dataset(tmp_dir: str | Path, **tree_kwargs) -> tuple[Path, Path]:
    """Write the SID tree under ``tmp_dir/SID`` and build it into ``tmp_dir/tfds``.

    Returns (SID folder, TFDS data dir).
    """
    from jaxdark.data import sid  # noqa: PLC0415

    tmp_dir = Path(tmp_dir)
    root = make_sid_tree(tmp_dir / "SID", **tree_kwargs)
    sid.prepare(root, tmp_dir / "tfds")
    return root, tmp_dir / "tfds"

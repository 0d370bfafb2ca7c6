"""SID Sony's files: list files, pairs, and reading a pair's raw data (no TFDS needed).

A list file (``Sony_{train,val,test}_list.txt``) has lines like
``./Sony/short/00001_00_0.04s.ARW ./Sony/long/00001_00_10s.ARW ISO200 F8``: the
short-exposure input, its long-exposure ground truth, ISO and aperture. Training
(`jaxdark.data.sid`, the TFDS dataset) and evaluation (`jaxdark.evaluation`) both read
the pairs from here.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from jaxdark.constants import MAX_AMPLIFICATION
from jaxdark.errors import JaxdarkError, RawFileError
from jaxdark.imaging.raw import bayer_cell, open_raw

LIST_FILES = {
    "train": "Sony_train_list.txt",
    "validation": "Sony_val_list.txt",
    "test": "Sony_test_list.txt",
}
PAIR_SPLITS = tuple(LIST_FILES)
GT_SPLIT = "ground_truth"  # the prepared dataset's split of developed long exposures
# Scenes of the test split whose ground truth the SID authors report as misaligned.
MISALIGNED_SCENES = (10034, 10045, 10172)
_NAME_RE = re.compile(r"^(\d+)_(\d+)_([0-9.]+)s\.[A-Za-z0-9]+$")


@dataclasses.dataclass(frozen=True)
class SIDPair:
    """One line of a SID list file (paths relative to the SID folder)."""

    short_file: str  # e.g. "Sony/short/00001_00_0.04s.ARW"
    long_file: str  # e.g. "Sony/long/00001_00_10s.ARW"
    scene_id: int
    shot: int
    short_exposure: float
    long_exposure: float
    iso: int
    aperture: float

    @property
    def ratio(self) -> float:
        """Ground-truth amplification: long / short exposure, capped at 300."""
        return min(self.long_exposure / self.short_exposure, MAX_AMPLIFICATION)

    @property
    def stem(self) -> str:
        """The input's file name without extension: the name of its restored image."""
        return Path(self.short_file).stem


def ratio_key(ratio: float) -> str:
    """The group a ratio is reported under: ``x100``, ``x250``, ``x300``."""
    return f"x{round(ratio):d}"


def split_name(split: str) -> str:
    """``val`` -> ``validation`` (the dataset's name); other names checked and kept."""
    if split == "val":
        return "validation"
    if split not in PAIR_SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of train, val, test")
    return split


def parse_exposure_name(name: str) -> tuple[int, int, float]:
    """``00001_00_0.04s.ARW`` -> (scene id 1, shot 0, exposure 0.04 s)."""
    m = _NAME_RE.match(Path(name).name)
    if not m or float(m.group(3)) <= 0:
        raise JaxdarkError(
            f"{name}: expected a SID file name like 00001_00_0.04s.ARW (scene_shot_exposure.ext)"
        )
    return int(m.group(1)), int(m.group(2)), float(m.group(3))


def parse_list_file(path: str | Path) -> list[SIDPair]:
    """Parse a ``Sony_*_list.txt`` file into pairs (blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SID list file not found")
    pairs = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{lineno}"
        if len(fields) < 2:
            raise JaxdarkError(f"{where}: expected 'SHORT LONG [ISOnnn] [Fn]', got {line!r}")
        short, long_ = (f[2:] if f.startswith("./") else f for f in fields[:2])
        scene, shot, t_short = parse_exposure_name(short)
        long_scene, _, t_long = parse_exposure_name(long_)
        if long_scene != scene:
            raise JaxdarkError(f"{where}: short and long files are of different scenes")
        iso, aperture = 0, 0.0
        for extra in fields[2:]:
            if extra.upper().startswith("ISO") and extra[3:].isdigit():
                iso = int(extra[3:])
            elif extra[:1].upper() == "F":
                try:
                    aperture = float(extra[1:])
                except ValueError:
                    pass
        pairs.append(SIDPair(short, long_, scene, shot, t_short, t_long, iso, aperture))
    return pairs


def read_pair_list(
    data_dir: str | Path, split: str = "test", *, drop_misaligned: bool = False
) -> list[SIDPair]:
    """The pairs of a split (``train``, ``val``, ``test``) in list order, optionally
    without the misaligned scenes."""
    path = Path(data_dir) / LIST_FILES[split_name(split)]
    pairs = parse_list_file(path)
    if drop_misaligned:
        pairs = [p for p in pairs if p.scene_id not in MISALIGNED_SCENES]
    return pairs


def read_short(path: Path) -> dict:
    """The raw mosaic (uint16, as in the file) of a short exposure, its Bayer
    ``pattern``, ``black_levels`` (2, 2) and ``white_level``."""
    with open_raw(path) as raw:
        pattern, blacks = bayer_cell(raw, path)
        mosaic = np.array(raw.raw_image_visible, dtype=np.uint16)
        white = float(raw.white_level)
    black_levels = np.asarray(blacks, np.float32).reshape(2, 2)
    return {
        "mosaic": mosaic,
        "pattern": pattern,
        "black_levels": black_levels,
        "white_level": white,
    }


def read_ground_truth(path: Path) -> np.ndarray:
    """The reference's 16-bit sRGB ground truth of a long-exposure raw file: rawpy
    ``postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16)``."""
    with open_raw(path) as raw:
        rgb = raw.postprocess(
            use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16
        )
    return np.asarray(rgb, np.uint16)


def raw_shape(path: Path) -> tuple[int, int]:
    """(H, W) of a raw file's visible mosaic."""
    with open_raw(path) as raw:
        return tuple(raw.raw_image_visible.shape)


__all__ = [
    "LIST_FILES",
    "MISALIGNED_SCENES",
    "PAIR_SPLITS",
    "RawFileError",
    "SIDPair",
    "parse_exposure_name",
    "parse_list_file",
    "ratio_key",
    "raw_shape",
    "read_ground_truth",
    "read_pair_list",
    "read_short",
    "split_name",
]

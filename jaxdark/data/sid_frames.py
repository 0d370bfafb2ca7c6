"""SID frames stored so that a training crop reads only the pixels it keeps.

The TFDS dataset (`jaxdark.data.sid`) stays the catalogue and the preparation command,
but its records are zlib-compressed whole frames: one 512 crop decompresses a 24 MB
mosaic and a 73 MB ground truth (0.75 s per example on one core). Here every frame of
the pair splits and of the ground truth is exported once as an uncompressed ``.npy``
file, which `SIDFrames` opens memory-mapped: `jaxdark.data.pipeline.crop_and_flip`
slices the map and copies the crop, so only the pages of the crop's rows are read.
(Measured against zarr chunks through TensorStore; see notes/pipeline.md.)

Layout under ``frames_dir`` (default `jaxdark.data.sid.frames_dir`,
``TFDS_DIR/sid_sony_frames/<version>``)::

    <split>/000123.npy         short-exposure mosaic of pair 123 (uint16, H x W)
    <split>/000123.json        its scalars, ``gt_index`` and the whole-frame sums that
                               `jaxdark.imaging.amplifier` needs for ``estimated``
    ground_truth/000007.npy    developed long exposure 7 (uint16, H x W x 3)
    <split>/index.json         written last: the split is complete

Export goes one record at a time (never the whole dataset in memory), each file written
atomically; an interrupted export resumes where it stopped. A frame whose file is
missing, truncated or of the wrong size is refused with one line naming the file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxdark.data.sid_files import GT_SPLIT, PAIR_SPLITS
from jaxdark.errors import JaxdarkError
from jaxdark.fileio import write_atomic
from jaxdark.imaging.amplifier import amplification_sums
from jaxdark.imaging.raw import normalise

log = logging.getLogger(__name__)

INDEX = "index.json"
SCALARS = (
    "white_level", "short_exposure", "long_exposure", "ratio", "iso", "aperture",
    "scene_id", "shot",
)  # fmt: skip
TEXTS = ("pattern", "short_file", "long_file")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array))

    write_atomic(path, write)


def _save_json(path: Path, value: Any) -> None:
    text = json.dumps(value, indent=1)
    write_atomic(path, lambda tmp: tmp.write_text(text))


def is_exported(frames_dir: str | Path, splits: tuple[str, ...] = PAIR_SPLITS) -> bool:
    """Whether every split of ``splits`` (and the ground truth) is completely exported."""
    root = Path(frames_dir)
    return all((root / s / INDEX).is_file() for s in (*splits, GT_SPLIT))


def export_frames(
    load_split: Callable[[str], Sequence[dict]],
    frames_dir: str | Path,
    splits: tuple[str, ...] = PAIR_SPLITS,
) -> Path:
    """Export the frames of a prepared dataset for crop reads (resumable, one record in
    memory at a time); ``load_split(name)`` gives a split's records (TFDS data source).
    Returns ``frames_dir``."""
    root = Path(frames_dir)
    gt_names: list[str] = []
    for split in (GT_SPLIT, *splits):
        out = root / split
        if (out / INDEX).is_file():
            if split == GT_SPLIT:
                gt_names = json.loads((out / INDEX).read_text())["names"]
            continue
        out.mkdir(parents=True, exist_ok=True)
        records = load_split(split)
        n = len(records)
        log.info("exporting %s %s frames to %s ...", n, split, out)
        shapes, names = [], []
        for i in range(n):
            npy, meta = out / f"{i:06d}.npy", out / f"{i:06d}.json"
            if meta.is_file():  # written after its frame: this record is done
                done = json.loads(meta.read_text())
                shapes.append(done["shape"])
                names.append(done.get("long_file", ""))
                continue
            rec = records[i]
            if split == GT_SPLIT:
                frame = np.asarray(rec["image"], np.uint16)
                info = {"long_file": _text(rec["long_file"])}
            else:
                frame = np.asarray(rec["mosaic"], np.uint16)
                info = {k: float(rec[k]) for k in SCALARS}
                info.update({k: _text(rec[k]) for k in TEXTS})
                black = np.asarray(rec["black_levels"], np.float32)
                info["black_levels"] = black.tolist()
                info["gt_index"] = g = int(rec["gt_index"])
                if not 0 <= g < len(gt_names) or gt_names[g] != info["long_file"]:
                    raise JaxdarkError(
                        f"{info['short_file']}: ground truth record {g} is not "
                        f"{info['long_file']}; rebuild the dataset"
                    )
                x = normalise(frame, black, float(rec["white_level"]))
                info["amplification_sums"] = [float(v) for v in amplification_sums(x)]
            info["shape"] = list(frame.shape)
            _save_npy(npy, frame)
            _save_json(meta, info)
            shapes.append(info["shape"])
            names.append(info.get("long_file", ""))
        index = {"split": split, "count": n, "shapes": shapes}
        if split == GT_SPLIT:
            index["names"] = gt_names = names
        _save_json(out / INDEX, index)
    return root


class SIDFrames:
    """Random-access source of one pair split from exported frames, joined with its
    ground truth; the same records as `jaxdark.data.sid.SIDPairs` (plus
    ``amplification_sums``), except that ``mosaic`` and ``target`` are read-only memory
    maps: slicing one reads only the slice. Picklable (paths and scalars only)."""

    def __init__(self, split: str, frames_dir: str | Path, with_target: bool = True):
        if split not in PAIR_SPLITS:
            raise ValueError(f"unknown SID pair split {split!r}; expected one of {PAIR_SPLITS}")
        self.root = Path(frames_dir)
        self.split = split
        self.with_target = with_target
        if not is_exported(self.root, (split,)):
            raise FileNotFoundError(
                f"{self.root}: SID frames of {split!r} are not exported; run python -m "
                "jaxdark.data.sid --manual_dir=SID_FOLDER --tfds_dir=DIR"
            )
        self._count = int(json.loads((self.root / split / INDEX).read_text())["count"])
        self._gt_shapes = json.loads((self.root / GT_SPLIT / INDEX).read_text())["shapes"]

    def __len__(self) -> int:
        return self._count

    def _open(self, path: Path, shape: tuple[int, ...]) -> np.ndarray:
        try:
            frame = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise JaxdarkError(f"{path}: cannot read the SID frame ({e}); re-export it") from None
        if frame.shape != tuple(shape) or frame.dtype != np.uint16:
            raise JaxdarkError(
                f"{path}: frame is {frame.dtype} {frame.shape}, expected uint16 {tuple(shape)}; "
                "re-export it"
            )
        return frame

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not 0 <= index < self._count:
            raise IndexError(f"index {index} out of range for {self._count} records")
        base = self.root / self.split / f"{index:06d}"
        try:
            info = json.loads(base.with_suffix(".json").read_text())
        except (OSError, ValueError) as e:
            raise JaxdarkError(f"{base}.json: cannot read the record ({e})") from None
        out: dict[str, Any] = {k: np.float32(info[k]) for k in SCALARS}
        out.update({k: info[k] for k in TEXTS})
        out.update({k: int(info[k]) for k in ("iso", "scene_id", "shot")})
        out["black_levels"] = np.asarray(info["black_levels"], np.float32)
        out["amplification_sums"] = np.asarray(info["amplification_sums"], np.float32)
        out["mosaic"] = self._open(base.with_suffix(".npy"), info["shape"])
        if self.with_target:
            g = int(info["gt_index"])
            if not 0 <= g < len(self._gt_shapes):
                raise JaxdarkError(f"{base}.json: gt_index {g} is not an exported ground truth")
            gt_path = self.root / GT_SPLIT / f"{g:06d}.npy"
            out["target"] = self._open(gt_path, self._gt_shapes[g])
            if out["target"].shape[:2] != out["mosaic"].shape:
                raise JaxdarkError(
                    f"{gt_path}: ground truth {out['target'].shape[:2]} differs from the "
                    f"mosaic {out['mosaic'].shape} of {out['short_file']}"
                )
        return out

    def __repr__(self) -> str:
        return f"SIDFrames({str(self.root)!r}, split={self.split!r}, n={len(self)})"

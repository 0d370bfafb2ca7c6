"""Where the images of an evaluation pair come from: the SID raw files or the TFDS dataset."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from jaxdark.data.sid_files import SIDPair, read_ground_truth, split_name
from jaxdark.errors import JaxdarkError
from jaxdark.imaging import metrics

SOURCES = ("raw", "tfds")


@dataclasses.dataclass
class LoadedPair:
    """A pair ready to restore: normalised mosaic, its Bayer layout, 8-bit ground truth."""

    mosaic: np.ndarray  # (H, W) float32, white level 1
    pattern: str  # e.g. "RGGB"
    gt8: np.ndarray  # (H, W, 3) uint8


def _gt8(gt16: np.ndarray) -> np.ndarray:
    return metrics.to_uint8(metrics.ground_truth_to_unit(gt16))


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RawFolderSource:
    """Pairs read from the raw files of the SID folder (ground truth cached per scene)."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self._gt: tuple[str, np.ndarray] | None = None

    def _gt8_of(self, name: str) -> np.ndarray:
        if self._gt is None or self._gt[0] != name:
            self._gt = None
            self._gt = (name, _gt8(read_ground_truth(self.data_dir / name)))
        return self._gt[1]

    def load(self, pair: SIDPair) -> LoadedPair:
        """Read the pair; errors name the file that failed."""
        from jaxdark.imaging.raw import read_raw

        frame = read_raw(self.data_dir / pair.short_file)
        return LoadedPair(frame.mosaic, frame.pattern, self._gt8_of(pair.long_file))


class TfdsSource:
    """Pairs read from the prepared TFDS dataset (records in list order)."""

    def __init__(self, split: str, tfds_dir: str | Path | None):
        from jaxdark.data import sid

        self.split = split_name(split)
        self._pairs = sid.load_split(self.split, tfds_dir)
        self._gts = sid.load_split(sid.GT_SPLIT, tfds_dir)
        self._index: dict[str, int] = {}  # short file -> record index, filled as read
        self._next = 0
        self._gt: tuple[int, np.ndarray] | None = None

    def _record(self, name: str) -> dict | None:
        """The record of input ``name``: scans forward (records follow the list order)."""
        if name in self._index:
            return self._pairs[self._index[name]]
        while self._next < len(self._pairs):
            i = self._next
            self._next += 1
            rec = self._pairs[i]
            short = _text(rec["short_file"])
            self._index[short] = i
            if short == name:
                return rec
        return None

    def load(self, pair: SIDPair) -> LoadedPair:
        """The pair's record joined with its ground truth."""
        from jaxdark.imaging.raw import normalise

        rec = self._record(pair.short_file)
        if rec is None:
            raise JaxdarkError(
                f"{pair.short_file}: not in the prepared {self.split} split (left out as "
                "unreadable when the dataset was prepared, or the dataset is out of date)"
            )
        gi = int(rec["gt_index"])
        if self._gt is None or self._gt[0] != gi:
            self._gt = None
            gt = self._gts[gi]
            if _text(gt["long_file"]) != pair.long_file:
                raise JaxdarkError(
                    f"{pair.long_file}: the dataset's ground truth {gi} is "
                    f"{_text(gt['long_file'])}; rebuild the dataset"
                )
            self._gt = (gi, _gt8(np.asarray(gt["image"])))
        mosaic = normalise(np.asarray(rec["mosaic"]), rec["black_levels"], rec["white_level"])
        return LoadedPair(mosaic, _text(rec["pattern"]), self._gt[1])


def make_source(config: Any, split: str) -> RawFolderSource | TfdsSource:
    """The pair source ``config.eval_source`` names (``raw`` or ``tfds``)."""
    if config.eval_source == "raw":
        if not config.data_dir:
            raise ValueError("set --config.data_dir to the SID folder (Sony/ and the lists)")
        return RawFolderSource(config.data_dir)
    if config.eval_source == "tfds":
        return TfdsSource(split, config.tfds_data_dir or None)
    raise ValueError(f"eval_source must be one of {SOURCES}, got {config.eval_source!r}")

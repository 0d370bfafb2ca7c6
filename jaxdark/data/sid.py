"""SID Sony ("Learning to See in the Dark") as a TFDS dataset in array_record format.

Manual download: point ``manual_dir`` at the extracted SID folder, the one holding
``Sony/short/*.ARW``, ``Sony/long/*.ARW`` and ``Sony_{train,val,test}_list.txt``
(lines like ``./Sony/short/00001_00_0.04s.ARW ./Sony/long/00001_00_10s.ARW ISO200 F8``).
Prepare once (no TensorFlow needed)::

    python -m jaxdark.data.sid --manual_dir=/data/SID --tfds_dir=/data/tensorflow_datasets

Splits:

* ``train``, ``validation``, ``test``: one record per (short, long) pair of the list file:
  the short-exposure mosaic (uint16, as in the file), its per-CFA-position black levels,
  white level and CFA layout, both exposure times, the ratio ``min(long/short, 300)``,
  ISO, aperture, scene id and ``gt_index``.
* ``ground_truth``: one record per long-exposure file (so once per scene, not per pair):
  rawpy ``postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True,
  output_bps=16)`` as uint16 (H, W, 3). Pair ``i`` uses ground truth ``gt_index``.

Records are written in generation order (``disable_shuffling``), so ``gt_index`` is
the record index; readers shuffle. `SIDPairs` joins a pair with its ground truth and
is a random-access source for grain; nothing is held in RAM.

Preparation then exports the frames for training (`export_frames`, unless
``--no_frames``): uncompressed files from which a crop reads only its own pixels
(`jaxdark.data.sid_frames.SIDFrames`, what training reads by default).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from jaxdark.data import sid_frames
from jaxdark.data.sid_files import (
    GT_SPLIT,
    LIST_FILES,
    PAIR_SPLITS,
    parse_exposure_name,
    parse_list_file,
    raw_shape,
    read_ground_truth,
    read_short,
)
from jaxdark.errors import JaxdarkError, RawFileError

log = logging.getLogger(__name__)

NAME = "sid_sony"


class SidSony(tfds.core.GeneratorBasedBuilder):
    """SID Sony pairs with ground truth stored once per scene (see module docstring)."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Pairs per list file; ground truth once per long exposure.",
        "1.1.0": "Fields renamed: cfa -> pattern, black_level -> black_levels.",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download and extract SID's Sony.zip and the list files; pass the folder holding "
        "Sony/short, Sony/long and Sony_{train,val,test}_list.txt as manual_dir."
    )

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        # No checksums/metadata files beside this module. (TFDS's own lookup of the code
        # path needs the `importlib_resources` backport, absent on Python >= 3.9.)
        return None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.skipped: list[str] = []  # one line per file left out while preparing

    def _info(self) -> tfds.core.DatasetInfo:
        u16 = np.uint16
        f32 = np.float32
        text = tfds.features.Text
        scalar = tfds.features.Scalar
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__.split("\n\n")[0],
            features=tfds.features.FeaturesDict(
                {
                    # pair splits and ground truth share one feature dict; unused fields
                    # hold empty/zero values
                    "mosaic": tfds.features.Tensor(shape=(None, None), dtype=u16, encoding="zlib"),
                    "image": tfds.features.Tensor(
                        shape=(None, None, 3), dtype=u16, encoding="zlib"
                    ),
                    "black_levels": tfds.features.Tensor(shape=(2, 2), dtype=f32),
                    "white_level": scalar(dtype=f32),
                    "pattern": text(),
                    "short_exposure": scalar(dtype=f32),
                    "long_exposure": scalar(dtype=f32),
                    "ratio": scalar(dtype=f32),
                    "iso": scalar(dtype=np.int32),
                    "aperture": scalar(dtype=f32),
                    "scene_id": scalar(dtype=np.int32),
                    "shot": scalar(dtype=np.int32),
                    "short_file": text(),
                    "long_file": text(),
                    "gt_index": scalar(dtype=np.int64),
                }
            ),
            disable_shuffling=True,  # record index == generation order (gt_index relies on it)
            homepage="https://github.com/cchen156/Learning-to-See-in-the-Dark",
        )

    def _split_generators(self, dl_manager):
        root = Path(dl_manager.manual_dir)
        pairs = {}
        for split, name in LIST_FILES.items():
            path = root / name
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: SID list file not found (manual_dir must be the extracted SID "
                    "folder holding Sony/ and Sony_{train,val,test}_list.txt)"
                )
            pairs[split] = parse_list_file(path)
        # Ground truth once per long-exposure file; check each opens before numbering.
        gt_shapes: dict[str, tuple[int, int]] = {}
        for long_file in sorted({p.long_file for ps in pairs.values() for p in ps}):
            try:
                gt_shapes[long_file] = raw_shape(root / long_file)
            except RawFileError as e:
                self._skip(f"{e} (its pairs are left out)")
        gt_files = list(gt_shapes)
        gt_index = {f: i for i, f in enumerate(gt_files)}
        gens = {
            split: self._generate_examples(root, pairs=ps, gt_index=gt_index, gt_shapes=gt_shapes)
            for split, ps in pairs.items()
        }
        gens[GT_SPLIT] = self._generate_examples(root, gt_files=gt_files)
        return gens

    def _generate_examples(self, root, *, pairs=None, gt_index=None, gt_shapes=None, gt_files=None):
        """Pair records (``pairs`` given) or ground-truth records (``gt_files`` given)."""
        if gt_files is not None:
            return self._generate_ground_truth(root, gt_files)
        return self._generate_pairs(root, pairs, gt_index, gt_shapes)

    def _skip(self, message: str) -> None:
        log.warning("skipping %s", message)
        self.skipped.append(message)

    @staticmethod
    def _empty() -> dict:
        return {
            "mosaic": np.zeros((0, 0), np.uint16),
            "image": np.zeros((0, 0, 3), np.uint16),
            "black_levels": np.zeros((2, 2), np.float32),
            "white_level": 0.0,
            "pattern": "",
            "short_exposure": 0.0,
            "long_exposure": 0.0,
            "ratio": 0.0,
            "iso": 0,
            "aperture": 0.0,
            "scene_id": 0,
            "shot": 0,
            "short_file": "",
            "long_file": "",
            "gt_index": -1,
        }

    def _generate_pairs(self, root, pairs, gt_index, gt_shapes):
        for p in pairs:
            if p.long_file not in gt_index:
                continue  # already reported
            try:
                short = read_short(root / p.short_file)
            except RawFileError as e:
                self._skip(str(e))
                continue
            if short["mosaic"].shape != gt_shapes[p.long_file]:
                self._skip(
                    f"{p.short_file}: mosaic {short['mosaic'].shape} differs from its long "
                    f"exposure {p.long_file} {gt_shapes[p.long_file]}"
                )
                continue
            ex = self._empty()
            ex.update(
                **short,
                short_exposure=p.short_exposure,
                long_exposure=p.long_exposure,
                ratio=p.ratio,
                iso=p.iso,
                aperture=p.aperture,
                scene_id=p.scene_id,
                shot=p.shot,
                short_file=p.short_file,
                long_file=p.long_file,
                gt_index=gt_index[p.long_file],
            )
            yield p.short_file, ex

    def _generate_ground_truth(self, root, gt_files):
        for i, long_file in enumerate(gt_files):
            scene, _, t_long = parse_exposure_name(long_file)
            ex = self._empty()
            # A file that opened but fails to develop cannot be skipped (indices are fixed).
            ex.update(
                image=read_ground_truth(root / long_file),
                long_exposure=t_long,
                scene_id=scene,
                long_file=long_file,
                gt_index=i,
            )
            yield long_file, ex


def _builder(tfds_dir: str | Path | None) -> SidSony:
    return SidSony(data_dir=None if tfds_dir is None else str(tfds_dir), file_format="array_record")


def prepare(
    manual_dir: str | Path, tfds_dir: str | Path | None = None, *, frames: bool = True
) -> SidSony:
    """Build the dataset from the SID folder ``manual_dir`` (a no-op if already built),
    then (``frames``) export its frames for crop reads (`export_frames`).

    ``tfds_dir`` is the TFDS data directory (default ``~/tensorflow_datasets``). Files
    that cannot be read are left out and listed at the end (also in ``builder.skipped``).
    """
    manual_dir = Path(manual_dir)
    if not manual_dir.is_dir():
        raise FileNotFoundError(f"{manual_dir}: SID folder not found")
    builder = _builder(tfds_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    if builder.skipped:
        log.warning("%d file(s) left out of %s:", len(builder.skipped), NAME)
        for line in builder.skipped:
            log.warning("  %s", line)
    if frames:
        export_frames(tfds_dir)
    return builder


def frames_dir(tfds_dir: str | Path | None = None) -> Path:
    """Where the frames for crop reads (`jaxdark.data.sid_frames`) live:
    ``TFDS_DIR/sid_sony_frames/<version>`` (TFDS_DIR default ``~/tensorflow_datasets``)."""
    base = Path(tfds_dir).expanduser() if tfds_dir else Path("~/tensorflow_datasets").expanduser()
    return base / f"{NAME}_frames" / str(SidSony.VERSION)


def export_frames(tfds_dir: str | Path | None = None, out_dir: str | Path | None = None) -> Path:
    """Export the prepared dataset's frames for crop reads (`jaxdark.data.sid_frames`),
    resuming an interrupted export; a no-op when complete. Returns their folder."""
    out = Path(out_dir) if out_dir else frames_dir(tfds_dir)
    if not sid_frames.is_exported(out):
        sid_frames.export_frames(lambda split: load_split(split, tfds_dir), out)
    return out


def is_prepared(tfds_dir: str | Path | None = None) -> bool:
    """Whether the dataset has been built in ``tfds_dir``."""
    return _builder(tfds_dir).is_prepared()


def load_split(split: str, tfds_dir: str | Path | None = None):
    """The random-access TFDS data source of one split (``train``, ``validation``,
    ``test`` or ``ground_truth``)."""
    if split not in (*PAIR_SPLITS, GT_SPLIT):
        raise ValueError(
            f"unknown SID split {split!r}; expected one of {PAIR_SPLITS + (GT_SPLIT,)}"
        )
    builder = _builder(tfds_dir)
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"{builder.data_dir}: {NAME} is not prepared; run "
            "python -m jaxdark.data.sid --manual_dir=SID_FOLDER --tfds_dir=DIR"
        )
    return builder.as_data_source(split=split)


class SIDPairs:
    """Random-access source of one pair split, each record joined with its ground truth.

    ``pairs[i]`` is a dict: ``mosaic`` (H, W) uint16, ``target`` (H, W, 3) uint16 (omitted
    with ``with_target=False``), ``black_levels`` (2, 2), ``white_level``, ``pattern`` (str),
    ``ratio``, exposures, ``iso``, ``aperture``, ``scene_id``, ``short_file`` and
    ``long_file`` (str). Picklable, so grain worker processes can read it.
    """

    def __init__(self, split: str, tfds_dir: str | Path | None = None, with_target: bool = True):
        if split not in PAIR_SPLITS:
            raise ValueError(f"unknown SID pair split {split!r}; expected one of {PAIR_SPLITS}")
        self.split = split
        self._pairs = load_split(split, tfds_dir)
        self._gt = load_split(GT_SPLIT, tfds_dir) if with_target else None

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, index: int) -> dict:
        rec = self._pairs[int(index)]
        out = {k: v for k, v in rec.items() if k not in ("image", "gt_index")}
        for k in ("pattern", "short_file", "long_file"):
            out[k] = out[k].decode() if isinstance(out[k], bytes) else out[k]
        if self._gt is not None:
            gt = self._gt[int(rec["gt_index"])]
            gt_name = gt["long_file"]
            gt_name = gt_name.decode() if isinstance(gt_name, bytes) else gt_name
            if gt_name != out["long_file"]:
                raise JaxdarkError(
                    f"{NAME}: ground truth record {rec['gt_index']} is {gt_name}, expected "
                    f"{out['long_file']}; rebuild the dataset"
                )
            out["target"] = gt["image"]
        return out

    def __repr__(self) -> str:
        return f"SIDPairs(split={self.split!r}, n={len(self)})"


def main(argv: list[str] | None = None) -> int:
    """``python -m jaxdark.data.sid --manual_dir=SID --tfds_dir=DIR``: prepare the dataset."""
    parser = argparse.ArgumentParser(description="Prepare SID Sony as a TFDS dataset.")
    parser.add_argument("--manual_dir", required=True, help="extracted SID folder")
    parser.add_argument("--tfds_dir", default=None, help="TFDS data dir (~/tensorflow_datasets)")
    parser.add_argument(
        "--no_frames",
        action="store_true",
        help="do not export the frames for crop reads (TFDS_DIR/sid_sony_frames, uncompressed: "
        "24 MB per pair and 73 MB per ground truth at the Sony size)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        builder = prepare(args.manual_dir, args.tfds_dir, frames=not args.no_frames)
    except (JaxdarkError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for split, info in builder.info.splits.items():
        print(f"{split}: {info.num_examples} records")
    if builder.skipped:
        print(f"{len(builder.skipped)} file(s) left out (see above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

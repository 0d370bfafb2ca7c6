"""Evaluation on SID Sony: PSNR / SSIM of every pair of a split, at full resolution.

`evaluate(config, workdir, weights=None)` takes the pairs of the split's list file
(``Sony_<split>_list.txt``: short-exposure input, long-exposure ground truth, ISO,
F-number per line), restores each input at full resolution through the jitted
`jaxdark.Restorer` (weight norm folded, `jaxdark.inference`; whole frames by default,
as the reference; ``config.eval_tile_size`` restores in tiles to use less memory on
frames larger than SID's), quantises output and ground truth to 8 bits
like the reference (clip to [0, 1], x255, truncate) and measures PSNR and SSIM with
scikit-image (`jaxdark.metrics`).

Where the pairs come from (``config.eval_source``):

* ``"raw"`` (default): the raw files of the SID folder ``config.data_dir``, read with
  `jaxdark.raw.read_raw`; the ground truth is developed like the reference (rawpy
  ``postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True,
  output_bps=16)``, `jaxdark.data.sid.read_ground_truth`), once per scene;
* ``"tfds"``: the prepared TFDS dataset in ``config.tfds_data_dir``
  (`jaxdark.data.sid`), which already holds the developed ground truths; pairs of the
  list that the dataset left out (unreadable when it was prepared) are reported.

Input amplification (``config.amplification``): ``"gt"`` uses the exposure ratio
(long / short exposure time, capped at 300); ``"estimated"`` uses
`jaxdark.estimate_amplification` on the input with ``m = config.eval_m``.

Outputs go to ``<workdir>/eval_<split>_<mode>/`` (mode ``gt`` or ``estimated_m<m>``):
``results.csv`` (one row per pair of the list; failed pairs keep their row, with the
error), ``summary.json`` (means overall and per ratio x100 / x250 / x300),
``images/<input stem>.png`` (the 8-bit restorations); a table is printed. A missing or
unreadable file is reported by name and the other pairs are still evaluated.

`Evaluator` runs the same measurement on a few pairs inside a training loop and yields
``(name, value)`` pairs for logging.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxdark import metrics
from jaxdark.errors import CheckpointError, JaxdarkError

MAX_RATIO = 300.0
# Scenes of the test split whose ground truth the SID authors report as misaligned.
MISALIGNED_SCENES = (10034, 10045, 10172)
SPLITS = ("train", "val", "validation", "test")
AMPLIFICATION_MODES = ("gt", "estimated")
SOURCES = ("raw", "tfds")
CSV_FIELDS = (
    "input",
    "ground_truth",
    "ratio",
    "amplification",
    "psnr",
    "ssim",
    "seconds",
    "total_seconds",
    "error",
)


# ---------------------------------------------------------------------------------------
# the pairs of a split


@dataclasses.dataclass(frozen=True)
class Pair:
    """One line of a SID list file (paths relative to the SID folder)."""

    input_file: str  # e.g. Sony/short/10003_00_0.04s.ARW
    gt_file: str  # e.g. Sony/long/10003_00_10s.ARW
    short_exposure: float
    long_exposure: float
    scene: int

    @property
    def ratio(self) -> float:
        """``min(long / short, 300)``: the ground-truth amplification of the pair."""
        return exposure_ratio(self.short_exposure, self.long_exposure)

    @property
    def stem(self) -> str:
        """The input's file name without extension: the name of its restored image."""
        return Path(self.input_file).stem


def exposure_ratio(short_exposure: float, long_exposure: float) -> float:
    """``min(long / short, 300)``."""
    return min(long_exposure / short_exposure, MAX_RATIO)


def ratio_key(ratio: float) -> str:
    """The group a ratio is reported under: ``x100``, ``x250``, ``x300``."""
    return f"x{round(ratio):d}"


def _split_name(split: str) -> str:
    """``val`` -> ``validation`` (the dataset's name); others unchanged, checked."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of train, val, test")
    return "validation" if split == "val" else split


def list_file(data_dir: str | Path, split: str) -> Path:
    """The list file of ``split`` in the SID folder (``Sony_<split>_list.txt``)."""
    from jaxdark.data import sid

    return Path(data_dir) / sid.LIST_FILES[_split_name(split)]


def read_pair_list(
    data_dir: str | Path, split: str = "test", *, drop_misaligned: bool = False
) -> list[Pair]:
    """The pairs of a split in list order, optionally without the misaligned scenes.

    A missing list file raises FileNotFoundError, a malformed line a one-line
    `JaxdarkError` naming the file and line.
    """
    from jaxdark.data import sid

    pairs = []
    for p in sid.parse_list_file(list_file(data_dir, split)):
        if drop_misaligned and p.scene_id in MISALIGNED_SCENES:
            continue
        pairs.append(Pair(p.short_file, p.long_file, p.short_exposure, p.long_exposure, p.scene_id))
    return pairs


# ---------------------------------------------------------------------------------------
# where the images of a pair come from


@dataclasses.dataclass
class LoadedPair:
    """A pair ready to restore: normalised mosaic, its Bayer layout, 8-bit ground truth."""

    mosaic: np.ndarray  # (H, W) float32, white level 1
    pattern: str  # e.g. "RGGB"
    gt8: np.ndarray  # (H, W, 3) uint8


def _gt8(gt16: np.ndarray) -> np.ndarray:
    return metrics.to_uint8(metrics.ground_truth_to_unit(gt16))


class RawFolderSource:
    """Pairs read from the raw files of the SID folder (ground truth cached per scene)."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self._gt: tuple[str, np.ndarray] | None = None

    def _gt8_of(self, name: str) -> np.ndarray:
        from jaxdark.data import sid

        if self._gt is None or self._gt[0] != name:
            self._gt = None
            path = self.data_dir / name
            if not path.is_file():
                raise FileNotFoundError(f"{path}: ground-truth file not found")
            self._gt = (name, _gt8(sid.read_ground_truth(path)))
        return self._gt[1]

    def load(self, pair: Pair) -> LoadedPair:
        """Read the pair; errors name the file that failed."""
        from jaxdark.raw import read_raw

        path = self.data_dir / pair.input_file
        if not path.is_file():
            raise FileNotFoundError(f"{path}: input file not found")
        frame = read_raw(path)
        return LoadedPair(frame.mosaic, frame.pattern, self._gt8_of(pair.gt_file))


class TfdsSource:
    """Pairs read from the prepared TFDS dataset (records in list order)."""

    def __init__(self, split: str, tfds_dir: str | Path | None):
        from jaxdark.data import sid

        self.split = _split_name(split)
        self._pairs = sid.load_split(self.split, tfds_dir)
        self._gts = sid.load_split(sid.GT_SPLIT, tfds_dir)
        self._index: dict[str, int] = {}  # short file -> record index, filled as read
        self._next = 0
        self._gt: tuple[int, np.ndarray] | None = None

    @staticmethod
    def _text(v: Any) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    def _record(self, name: str) -> dict | None:
        """The record of input ``name``: scans forward (records follow the list order)."""
        if name in self._index:
            return self._pairs[self._index[name]]
        while self._next < len(self._pairs):
            i = self._next
            self._next += 1
            rec = self._pairs[i]
            short = self._text(rec["short_file"])
            self._index[short] = i
            if short == name:
                return rec
        return None

    def load(self, pair: Pair) -> LoadedPair:
        """The pair's record joined with its ground truth."""
        from jaxdark.data.pipeline import normalise

        rec = self._record(pair.input_file)
        if rec is None:
            raise JaxdarkError(
                f"{pair.input_file}: not in the prepared {self.split} split (left out as "
                "unreadable when the dataset was prepared, or the dataset is out of date)"
            )
        gi = int(rec["gt_index"])
        if self._gt is None or self._gt[0] != gi:
            self._gt = None
            gt = self._gts[gi]
            if self._text(gt["long_file"]) != pair.gt_file:
                raise JaxdarkError(
                    f"{pair.gt_file}: the dataset's ground truth {gi} is "
                    f"{self._text(gt['long_file'])}; rebuild the dataset"
                )
            self._gt = (gi, _gt8(np.asarray(gt["image"])))
        mosaic = normalise(np.asarray(rec["mosaic"]), rec["black_level"], rec["white_level"])
        return LoadedPair(mosaic, self._text(rec["cfa"]), self._gt[1])


def make_source(config: Any, split: str) -> RawFolderSource | TfdsSource:
    """The pair source ``config.eval_source`` names (``raw`` or ``tfds``)."""
    source = _get(config, "eval_source", "raw")
    if source == "raw":
        data_dir = _get(config, "data_dir", "")
        if not data_dir:
            raise ValueError("set --config.data_dir to the SID folder (Sony/ and the lists)")
        return RawFolderSource(data_dir)
    if source == "tfds":
        return TfdsSource(split, _get(config, "tfds_data_dir", "") or None)
    raise ValueError(f"eval_source must be one of {SOURCES}, got {source!r}")


# ---------------------------------------------------------------------------------------
# restoring and scoring one pair


def make_restorer(model: Any, tile_size: int | None = None, tile_overlap: int = 128) -> Any:
    """A `jaxdark.Restorer` running ``model`` with weight norm folded (`jaxdark.inference`)."""
    from jaxdark.inference import apply_folded, fold_params
    from jaxdark.restorer import Restorer

    return Restorer(
        None,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
        apply_fn=apply_folded,
        params=fold_params(model),
    )


@dataclasses.dataclass
class PairResult:
    """The outcome of one pair; ``error`` is set (and metrics are NaN) when it failed."""

    pair: Pair
    amplification: float = math.nan
    psnr: float = math.nan
    ssim: float = math.nan
    seconds: float = math.nan  # the restoration: amplifier, network, copies
    total_seconds: float = math.nan  # reading, restoring, scoring, saving
    error: str = ""

    def row(self) -> dict[str, str]:
        """The CSV row of this result."""

        def num(x: float, fmt: str) -> str:
            return "" if math.isnan(x) else format(x, fmt)

        return {
            "input": self.pair.input_file,
            "ground_truth": self.pair.gt_file,
            "ratio": format(self.pair.ratio, "g"),
            "amplification": num(self.amplification, ".9g"),
            "psnr": num(self.psnr, ".6f"),
            "ssim": num(self.ssim, ".6f"),
            "seconds": num(self.seconds, ".4f"),
            "total_seconds": num(self.total_seconds, ".4f"),
            "error": self.error,
        }


def _one_line(e: BaseException) -> str:
    """The exception's message (it names the file), first line only, no traceback."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# errors that fail one pair, not the run (they name the file)
PAIR_ERRORS = (JaxdarkError, OSError, ValueError, KeyError)


class PairScorer:
    """Restores and scores pairs of one source with one restorer."""

    def __init__(
        self,
        source: Any,
        restorer: Any,
        amplification: str = "gt",
        m: float = 5.0,
        *,
        warmup: bool = True,
    ):
        if amplification not in AMPLIFICATION_MODES:
            raise ValueError(
                f"amplification must be one of {AMPLIFICATION_MODES}, got {amplification!r}"
            )
        if amplification == "estimated" and not (math.isfinite(m) and m > 0):
            raise ValueError(f"eval_m must be a positive number, got {m}")
        self.source = source
        self.restorer = restorer
        self.mode = amplification
        self.m = float(m)
        self.warmup = warmup
        self._warm: set[tuple[int, int]] = set()

    def amplification(self, pair: Pair, mosaic: np.ndarray) -> float:
        """The factor for ``pair``: its ratio (``gt``) or the estimate with ``m``."""
        if self.mode == "gt":
            return pair.ratio
        return self.restorer.amplification(mosaic, self.m)

    def restore(self, pair: Pair, loaded: LoadedPair) -> tuple[np.ndarray, float, float]:
        """8-bit restoration, the factor used and the seconds both took (the estimate,
        the network and the copies). A new frame size is compiled first, untimed."""
        if self.warmup and loaded.mosaic.shape not in self._warm:
            a = self.amplification(pair, loaded.mosaic)
            self.restorer.restore_mosaic(loaded.mosaic, a, pattern=loaded.pattern)
            self._warm.add(loaded.mosaic.shape)
        start = time.perf_counter()
        a = float(self.amplification(pair, loaded.mosaic))
        r = self.restorer.restore_mosaic(loaded.mosaic, a, pattern=loaded.pattern)
        seconds = time.perf_counter() - start
        return metrics.to_uint8(r.image), a, seconds

    def score(self, pair: Pair) -> tuple[PairResult, np.ndarray | None]:
        """Score one pair; returns the result and the 8-bit restoration (None on failure)."""
        result = PairResult(pair)
        t0 = time.perf_counter()
        out8 = None
        try:
            loaded = self.source.load(pair)
            if loaded.gt8.shape[:2] != loaded.mosaic.shape:
                raise JaxdarkError(
                    f"{pair.gt_file}: ground truth is {loaded.gt8.shape[1]}x"
                    f"{loaded.gt8.shape[0]} but the input {pair.input_file} is "
                    f"{loaded.mosaic.shape[1]}x{loaded.mosaic.shape[0]}"
                )
            out8, result.amplification, result.seconds = self.restore(pair, loaded)
            result.psnr = metrics.psnr(out8, loaded.gt8)
            result.ssim = metrics.ssim(out8, loaded.gt8)
        except PAIR_ERRORS as e:
            result.error = _one_line(e)
            out8 = None
        result.total_seconds = time.perf_counter() - t0
        return result, out8


# ---------------------------------------------------------------------------------------
# summaries and files


def _mean(values: Sequence[float]) -> float | None:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return None
    m = float(np.mean(vals))
    return m if math.isfinite(m) else None


def summarize(results: Sequence[PairResult]) -> dict[str, Any]:
    """Means of PSNR, SSIM and seconds overall and per ratio group, and the failures."""

    def group(rs: Sequence[PairResult]) -> dict[str, Any]:
        ok = [r for r in rs if not r.error]
        return {
            "pairs": len(ok),
            "psnr": _mean([r.psnr for r in ok]),
            "ssim": _mean([r.ssim for r in ok]),
            "seconds": _mean([r.seconds for r in ok]),
            "total_seconds": _mean([r.total_seconds for r in ok]),
        }

    keys = sorted({ratio_key(r.pair.ratio) for r in results}, key=lambda k: int(k[1:]))
    return {
        "overall": group(results),
        "per_ratio": {k: group([r for r in results if ratio_key(r.pair.ratio) == k]) for k in keys},
        "evaluated": sum(1 for r in results if not r.error),
        "failed": [{"input": r.pair.input_file, "error": r.error} for r in results if r.error],
    }


def format_table(summary: dict[str, Any]) -> str:
    """The summary as a plain-text table: one row per ratio, then all pairs."""

    def fmt(x: float | None, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    lines = [f"{'ratio':<8}{'pairs':>7}{'PSNR (dB)':>11}{'SSIM':>8}{'s/pair':>9}"]
    for name, g in [*summary["per_ratio"].items(), ("all", summary["overall"])]:
        lines.append(
            f"{name:<8}{g['pairs']:>7d}{fmt(g['psnr'], '.3f'):>11}"
            f"{fmt(g['ssim'], '.4f'):>8}{fmt(g['seconds'], '.3f'):>9}"
        )
    if summary["failed"]:
        lines.append(f"failed: {len(summary['failed'])} pair(s)")
    return "\n".join(lines)


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename: never half-written."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_png(path: Path, image8: np.ndarray) -> None:
    """Save an (H, W, 3) uint8 RGB image as PNG, atomically."""
    import cv2

    def write(tmp: Path) -> None:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(image8[..., ::-1])):
            raise OSError(f"{path}: cannot write PNG")

    _write_atomic(path, write)


def write_csv(path: Path, results: Sequence[PairResult]) -> None:
    """One row per pair, columns `CSV_FIELDS`, atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            w.writeheader()
            for r in results:
                w.writerow(r.row())

    _write_atomic(path, write)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Indented strict JSON, atomically."""
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    _write_atomic(path, lambda tmp: tmp.write_text(text))


def output_dir(workdir: str | Path, split: str, mode: str, m: float) -> Path:
    """``<workdir>/eval_<split>_gt`` or ``<workdir>/eval_<split>_estimated_m<m>``."""
    name = f"eval_{split}_gt" if mode == "gt" else f"eval_{split}_estimated_m{m:g}"
    return Path(workdir) / name


def evaluate_pairs(
    pairs: Sequence[Pair],
    scorer: PairScorer,
    out_dir: str | Path,
    *,
    info: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Score ``pairs``; write images, ``results.csv`` and ``summary.json`` under ``out_dir``.

    Returns the summary. The CSV is rewritten after every pair, so an interrupted run
    keeps the rows it finished.
    """
    out_dir = Path(out_dir)
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    results: list[PairResult] = []
    n = len(pairs)
    start = time.perf_counter()
    for i, pair in enumerate(pairs, 1):
        result, out8 = scorer.score(pair)
        if out8 is not None:
            try:
                write_png(images / f"{pair.stem}.png", out8)
            except OSError as e:
                result.error = _one_line(e)
        results.append(result)
        write_csv(out_dir / "results.csv", results)
        if log:
            if result.error:
                log(f"[{i}/{n}] FAILED {pair.input_file}: {result.error}")
            else:
                log(
                    f"[{i}/{n}] {pair.stem} x{result.amplification:.4g} "
                    f"PSNR {result.psnr:.3f} SSIM {result.ssim:.4f} "
                    f"({result.seconds:.3f} s restore, {result.total_seconds:.2f} s total)"
                )
    summary = {**(info or {}), **summarize(results)}
    summary["wall_seconds"] = time.perf_counter() - start  # the whole loop, compiling included
    write_json(out_dir / "summary.json", summary)
    if log:
        log(format_table(summary))
        for f in summary["failed"]:
            log(f"failed: {f['error']}")
        log(f"results: {out_dir}")
    return summary


# ---------------------------------------------------------------------------------------
# weights and the evaluation run


def _get(config: Any, name: str, default: Any) -> Any:
    value = config.get(name, default) if hasattr(config, "get") else None
    return default if value is None else value


def _check_param_shapes(saved: Any, target: Any, where: str) -> None:
    """One-line CheckpointError unless the saved parameter tree has ``target``'s keys and
    shapes (checked before reading, so a wrong ``config.model`` is named clearly)."""
    import jax

    def flat(tree: Any) -> dict[str, tuple[int, ...]]:
        leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
        return {
            ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): tuple(leaf.shape)
            for path, leaf in leaves
        }

    have, want = flat(saved), flat(target)
    for key in sorted(want):
        if key not in have:
            raise CheckpointError(f"{where}: no parameter {key}; does config.model match?")
        if have[key] != want[key]:
            raise CheckpointError(
                f"{where}: parameter {key} has shape {have[key]}, config.model expects "
                f"{want[key]}; does config.model match the trained model?"
            )
    extra = sorted(set(have) - set(want))
    if extra:
        raise CheckpointError(f"{where}: unexpected parameter {extra[0]}; does config.model match?")


def load_training_checkpoint(workdir: str | Path, config: Any) -> tuple[Any, int]:
    """The model in the newest complete training checkpoint of ``workdir`` and its step.

    Reads only the parameters of ``<workdir>/checkpoints/<step>/state`` (as written by
    `jaxdark.train.train_and_evaluate`); the architecture comes from ``config.model``.
    """
    import jax
    import orbax.checkpoint as ocp
    from flax import nnx

    from jaxdark.convert import build_model

    directory = Path(workdir).absolute() / "checkpoints"
    if not directory.is_dir():
        raise CheckpointError(
            f"{directory}: no training checkpoints (pass --weights=PATH to evaluate the "
            "official .pth or a converted checkpoint)"
        )
    model_cfg = _get(config, "model", {})
    model_cfg = model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else dict(model_cfg)
    model = build_model(model_cfg, abstract=True)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    target = nnx.to_pure_dict(params)
    with ocp.CheckpointManager(
        directory, item_handlers={"state": ocp.StandardCheckpointHandler()}
    ) as manager:
        step = manager.latest_step()
        if step is None:
            raise CheckpointError(f"{directory}: no complete training checkpoint")
        try:
            meta = manager.item_metadata(step)["state"]
            _check_param_shapes(meta["params"], target, f"{directory}/{step}")
            abstract = jax.tree_util.tree_map(
                lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), dict(meta)
            )
            abstract["params"] = jax.tree_util.tree_map(
                lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), target
            )
            restored = manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
            )["state"]
        except (ValueError, KeyError, TypeError, FileNotFoundError) as e:
            raise CheckpointError(
                f"{directory}/{step}: cannot read the parameters ({_one_line(e)}); does "
                "config.model match the trained model?"
            ) from None
    nnx.replace_by_pure_dict(params, restored["params"])
    return nnx.merge(graphdef, params, rest), int(step)


def load_eval_model(
    config: Any, workdir: str | Path, weights: str | Path | None
) -> tuple[Any, str]:
    """The model to evaluate and where its weights came from: ``weights`` (the official
    .pth or a converted checkpoint) or, if None, the newest training checkpoint."""
    if weights:
        from jaxdark.convert import load_model

        return load_model(weights), str(weights)
    model, step = load_training_checkpoint(workdir, config)
    return model, f"{Path(workdir) / 'checkpoints'} (step {step})"


def evaluate(config: Any, workdir: str | Path, weights: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a model on every pair of ``config.eval_split``; outputs under ``workdir``.

    Config fields: ``data_dir``, ``tfds_data_dir``, ``eval_source`` (``raw``),
    ``eval_split`` (``test``), ``amplification`` (``gt`` / ``estimated``), ``eval_m``
    (5.0), ``drop_misaligned`` (False), ``eval_tile_size`` (0: whole frames; N: tiles),
    ``eval_tile_overlap`` (128), ``model`` (architecture of training checkpoints).
    Returns the summary (also in ``summary.json``); ``summary["failed"]`` lists failures.
    """
    split = _get(config, "eval_split", "test")
    mode = _get(config, "amplification", "gt")
    m = float(_get(config, "eval_m", 5.0))
    drop = bool(_get(config, "drop_misaligned", False))
    tile = int(_get(config, "eval_tile_size", 0)) or None
    overlap = int(_get(config, "eval_tile_overlap", 128))
    data_dir = _get(config, "data_dir", "")
    if not data_dir:
        raise ValueError("set --config.data_dir to the SID folder (it holds the list files)")
    pairs = read_pair_list(data_dir, split, drop_misaligned=drop)
    source = make_source(config, split)
    model, weights_desc = load_eval_model(config, workdir, weights)
    scorer = PairScorer(source, make_restorer(model, tile, overlap), mode, m)
    out_dir = output_dir(workdir, split, mode, m)
    info = {
        "split": split,
        "source": _get(config, "eval_source", "raw"),
        "amplification": mode,
        "m": m if mode == "estimated" else None,
        "drop_misaligned": drop,
        "tile_size": tile,
        "tile_overlap": overlap if tile else None,
        "weights": weights_desc,
        "pairs_listed": len(pairs),
    }
    print(
        f"evaluating {len(pairs)} pairs of the {split} split ({mode} amplification"
        f"{f', m={m:g}' if mode == 'estimated' else ''}), weights: {weights_desc}",
        flush=True,
    )
    return evaluate_pairs(pairs, scorer, out_dir, info=info, log=lambda s: print(s, flush=True))


# ---------------------------------------------------------------------------------------
# validation during training


class Evaluator:
    """A few pairs of a split scored during training (big_vision style).

    ``Evaluator(config).run(model)`` yields ``(name, value)`` pairs: ``psnr``, ``ssim``
    (means) and per ratio ``psnr_x100``, ``ssim_x100``, ... The chosen pairs
    (``config.num_eval_pairs``, spread over the split ``config.validation_split``,
    default ``val``) are read once and kept in memory; files that fail are skipped
    with a message.
    """

    def __init__(
        self,
        config: Any,
        *,
        split: str | None = None,
        num_pairs: int | None = None,
        log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
    ):
        split = split or _get(config, "validation_split", "val")
        num_pairs = int(num_pairs or _get(config, "num_eval_pairs", 4))
        self.mode = _get(config, "amplification", "gt")
        self.m = float(_get(config, "eval_m", 5.0))
        self.tile = int(_get(config, "eval_tile_size", 0)) or None
        self.overlap = int(_get(config, "eval_tile_overlap", 128))
        pairs = read_pair_list(
            _get(config, "data_dir", ""),
            split,
            drop_misaligned=bool(_get(config, "drop_misaligned", False)),
        )
        if len(pairs) > num_pairs:  # spread over the split (it is ordered by scene)
            pairs = [
                pairs[i] for i in np.linspace(0, len(pairs) - 1, num_pairs).round().astype(int)
            ]
        source = make_source(config, split)
        self._scorer: PairScorer | None = None
        self.items: list[tuple[Pair, LoadedPair]] = []
        for pair in pairs:
            try:
                self.items.append((pair, source.load(pair)))
            except PAIR_ERRORS as e:
                log(f"validation: skipping {pair.input_file}: {_one_line(e)}")

    def run(self, model: Any) -> Iterator[tuple[str, float]]:
        """Restore the kept pairs with ``model`` (an NNX network) and yield mean metrics."""
        if not self.items:
            return
        if self._scorer is None:
            restorer = make_restorer(model, self.tile, self.overlap)
            self._scorer = PairScorer(None, restorer, self.mode, self.m, warmup=False)
        else:  # same shapes and dtypes: the compiled functions are reused
            from jaxdark.inference import fold_params

            self._scorer.restorer.params = fold_params(model)
        scorer = self._scorer
        groups: dict[str, list[tuple[float, float]]] = {}
        for pair, loaded in self.items:
            out8, _, _ = scorer.restore(pair, loaded)
            score = (metrics.psnr(out8, loaded.gt8), metrics.ssim(out8, loaded.gt8))
            groups.setdefault("", []).append(score)
            groups.setdefault(f"_{ratio_key(pair.ratio)}", []).append(score)
        for suffix in sorted(groups, key=lambda s: (s != "", s)):
            vals = np.asarray(groups[suffix], np.float64)
            yield f"psnr{suffix}", float(vals[:, 0].mean())
            yield f"ssim{suffix}", float(vals[:, 1].mean())

"""Evaluation on SID: PSNR / SSIM of every pair of a split, at full resolution.

`evaluate(config, workdir, weights=None)` reads the split's list file
(``Sony_<split>_list.txt``: short-exposure input, long-exposure ground truth, ISO,
F-number per line) from ``config.data_dir``, restores each input through the jitted
`jaxdark.Restorer` (bounded memory with ``config.eval_tile_size``), quantises output and
ground truth to 8 bits like the reference (clip to [0, 1], x255, truncate) and measures
PSNR and SSIM with scikit-image (`jaxdark.metrics`).

Input amplification (``config.amplification``): ``"gt"`` uses the exposure ratio
(long / short exposure time, capped at 300); ``"estimated"`` uses
`jaxdark.estimate_amplification` on the input with ``m = config.eval_m``.

Outputs go to ``<workdir>/eval_<split>_<mode>/`` (mode ``gt`` or ``estimated_m<m>``):
``results.csv`` (one row per pair of the list, failures included with their error),
``summary.json`` (means overall and per ratio), ``images/<input stem>.png`` (8-bit
restored images). A missing or unreadable file is reported by name and the other pairs
are still evaluated.

`Evaluator` runs the same measurement on a few pairs inside a training loop and yields
``(name, value)`` pairs for logging.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxdark import metrics
from jaxdark.errors import JaxdarkError, RawFileError

MAX_RATIO = 300.0
# Scenes whose ground truth the SID authors report as misaligned with the inputs.
MISALIGNED_SCENES = ("10034", "10045", "10172")
SPLITS = ("train", "val", "test")
AMPLIFICATION_MODES = ("gt", "estimated")
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
_EXPOSURE_RE = re.compile(r"_(\d+(?:\.\d+)?)s$")


@dataclasses.dataclass(frozen=True)
class Pair:
    """One line of a SID list file, with paths resolved against the dataset folder."""

    input_path: Path
    gt_path: Path
    input_name: str  # as written in the list, e.g. ./Sony/short/10003_00_0.04s.ARW
    gt_name: str
    short_exposure: float
    long_exposure: float
    ratio: float  # min(long / short, 300)
    scene: str  # the 5-digit scene id, e.g. "10003"
    iso: str = ""


def exposure_from_name(path: str | Path) -> float:
    """The exposure time in seconds in a SID file name (``10003_00_0.04s.ARW`` -> 0.04)."""
    stem = Path(path).stem
    m = _EXPOSURE_RE.search(stem)
    if not m or float(m[1]) <= 0:
        raise ValueError(f"{path}: no positive exposure time (like '_0.1s') at the end of the name")
    return float(m[1])


def exposure_ratio(short_exposure: float, long_exposure: float) -> float:
    """``min(long / short, 300)``: the ground-truth amplification of a pair."""
    return min(long_exposure / short_exposure, MAX_RATIO)


def list_file(data_dir: str | Path, split: str) -> Path:
    """The list file of ``split`` in the SID folder (``Sony_<split>_list.txt``)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    data_dir = Path(data_dir)
    name = f"Sony_{split}_list.txt"
    for candidate in (data_dir / name, data_dir / "Sony" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{data_dir / name}: list file of the {split} split not found")


def read_pair_list(
    data_dir: str | Path, split: str = "test", *, drop_misaligned: bool = False
) -> list[Pair]:
    """The pairs of a split, in list order (optionally without the misaligned scenes).

    Raises a one-line ValueError naming the list file and line for a malformed line.
    """
    data_dir = Path(data_dir)
    path = list_file(data_dir, split)
    pairs = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(f"{path}:{lineno}: expected 'SHORT LONG [ISO F]', got {line!r}")
        short, long = fields[0], fields[1]
        try:
            t_short, t_long = exposure_from_name(short), exposure_from_name(long)
        except ValueError as e:
            raise ValueError(f"{path}:{lineno}: {e}") from None
        scene = Path(short).name.split("_")[0]
        if scene in MISALIGNED_SCENES and drop_misaligned:
            continue
        pairs.append(
            Pair(
                input_path=data_dir / short,
                gt_path=data_dir / long,
                input_name=short,
                gt_name=long,
                short_exposure=t_short,
                long_exposure=t_long,
                ratio=exposure_ratio(t_short, t_long),
                scene=scene,
                iso=fields[2] if len(fields) > 2 else "",
            )
        )
    return pairs


def ratio_key(ratio: float) -> str:
    """The group a ratio is reported under: ``x100``, ``x250``, ``x300``."""
    return f"x{round(ratio):d}"


# ---------------------------------------------------------------------------------------
# reading files (each error names the file)


def read_ground_truth(path: str | Path) -> np.ndarray:
    """The long-exposure reference as the reference renders it, (H, W, 3) uint16:
    rawpy ``postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True,
    output_bps=16)``."""
    import rawpy

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ground-truth file not found")
    try:
        with rawpy.imread(str(path)) as raw:
            rgb = raw.postprocess(
                use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16
            )
    except Exception as e:  # rawpy raises several LibRaw error types and OSError
        raise RawFileError(f"{path}: cannot read ground truth ({type(e).__name__}: {e})") from None
    return np.asarray(rgb)


def read_input(path: str | Path) -> np.ndarray:
    """The normalised mosaic of a short-exposure RAW file, (H, W) float32 (jaxdark.raw)."""
    from jaxdark import raw as raw_reader

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: input file not found")
    return raw_reader.read_mosaic(path)


# ---------------------------------------------------------------------------------------
# the restore function


RestoreFn = Callable[[np.ndarray, float], np.ndarray]
AmplifyFn = Callable[[np.ndarray], float]


def make_amplify_fn(mode: str, m: float) -> Callable[[np.ndarray, Pair], float]:
    """``f(mosaic, pair) -> amplification`` for mode ``gt`` or ``estimated``."""
    if mode == "gt":
        return lambda mosaic, pair: pair.ratio
    if mode == "estimated":
        from jaxdark.amplifier import estimate_amplification

        if not (math.isfinite(m) and m > 0):
            raise ValueError(f"eval_m must be a positive number, got {m}")
        return lambda mosaic, pair: float(estimate_amplification(mosaic, m=m))
    raise ValueError(f"amplification must be one of {AMPLIFICATION_MODES}, got {mode!r}")


def make_restore_fn(model: Any, tile_size: int | None = None) -> RestoreFn:
    """``f(mosaic, amplification) -> (H, W, 3) float32`` through `jaxdark.Restorer`."""
    from jaxdark.restorer import Restorer

    restorer = Restorer(model, tile_size=tile_size)
    return lambda mosaic, amplification: np.asarray(
        restorer.restore(mosaic, amplification=amplification)
    )


# ---------------------------------------------------------------------------------------
# one pair, a whole split


@dataclasses.dataclass
class PairResult:
    """The outcome of one pair; ``error`` is set (and metrics are NaN) when it failed."""

    pair: Pair
    amplification: float = math.nan
    psnr: float = math.nan
    ssim: float = math.nan
    seconds: float = math.nan
    total_seconds: float = math.nan
    error: str = ""

    def row(self) -> dict[str, str]:
        """The CSV row of this result."""

        def num(x: float, fmt: str) -> str:
            return "" if math.isnan(x) else format(x, fmt)

        return {
            "input": self.pair.input_name,
            "ground_truth": self.pair.gt_name,
            "ratio": format(self.pair.ratio, "g"),
            "amplification": num(self.amplification, ".6g"),
            "psnr": num(self.psnr, ".6f"),
            "ssim": num(self.ssim, ".6f"),
            "seconds": num(self.seconds, ".4f"),
            "total_seconds": num(self.total_seconds, ".4f"),
            "error": self.error,
        }


def _error_message(e: BaseException) -> str:
    """One line: the exception's message (which names the file) without a traceback."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg


class PairRunner:
    """Restores and scores pairs; caches the last ground truth (pairs share scenes)."""

    def __init__(
        self,
        restore_fn: RestoreFn,
        amplify_fn: Callable[[np.ndarray, Pair], float],
        *,
        read_input_fn: Callable[[Path], np.ndarray] = read_input,
        read_gt_fn: Callable[[Path], np.ndarray] = read_ground_truth,
    ):
        self.restore_fn = restore_fn
        self.amplify_fn = amplify_fn
        self.read_input_fn = read_input_fn
        self.read_gt_fn = read_gt_fn
        self._gt_cache: tuple[Path, np.ndarray] | None = None
        self._compiled_shapes: set[tuple[int, ...]] = set()

    def ground_truth8(self, path: Path) -> np.ndarray:
        """The 8-bit ground truth of ``path`` (cached for consecutive pairs of a scene)."""
        if self._gt_cache is None or self._gt_cache[0] != path:
            self._gt_cache = None
            gt16 = self.read_gt_fn(path)
            self._gt_cache = (path, metrics.to_uint8(metrics.ground_truth_to_unit(gt16)))
        return self._gt_cache[1]

    def restore(self, mosaic: np.ndarray, amplification: float) -> tuple[np.ndarray, float]:
        """8-bit restoration and the seconds it took (compilation excluded)."""
        if mosaic.shape not in self._compiled_shapes:
            self.restore_fn(mosaic, amplification)  # compile for this shape, untimed
            self._compiled_shapes.add(mosaic.shape)
        t0 = time.perf_counter()
        out = self.restore_fn(mosaic, amplification)
        seconds = time.perf_counter() - t0
        return metrics.to_uint8(out), seconds

    def run(self, pair: Pair) -> tuple[PairResult, np.ndarray | None]:
        """Score one pair; returns the result and the 8-bit restoration (None on failure)."""
        result = PairResult(pair)
        t0 = time.perf_counter()
        try:
            mosaic = self.read_input_fn(pair.input_path)
            gt8 = self.ground_truth8(pair.gt_path)
            if gt8.shape[:2] != mosaic.shape:
                raise ValueError(
                    f"{pair.gt_path}: ground truth is {gt8.shape[1]}x{gt8.shape[0]} but the "
                    f"input {pair.input_path.name} is {mosaic.shape[1]}x{mosaic.shape[0]}"
                )
            result.amplification = float(self.amplify_fn(mosaic, pair))
            out8, result.seconds = self.restore(mosaic, result.amplification)
            result.psnr = metrics.psnr(out8, gt8)
            result.ssim = metrics.ssim(out8, gt8)
        except (JaxdarkError, OSError, ValueError) as e:
            result.error = _error_message(e)
            result.total_seconds = time.perf_counter() - t0
            return result, None
        result.total_seconds = time.perf_counter() - t0
        return result, out8


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
        "failed": [{"input": r.pair.input_name, "error": r.error} for r in results if r.error],
    }


def format_table(summary: dict[str, Any]) -> str:
    """The summary as a plain-text table (one row per ratio, then all pairs)."""

    def fmt(x: float | None, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    lines = [f"{'ratio':<8}{'pairs':>7}{'PSNR (dB)':>11}{'SSIM':>8}{'s/pair':>9}"]
    rows = [*summary["per_ratio"].items(), ("all", summary["overall"])]
    for name, g in rows:
        lines.append(
            f"{name:<8}{g['pairs']:>7d}{fmt(g['psnr'], '.3f'):>11}"
            f"{fmt(g['ssim'], '.4f'):>8}{fmt(g['seconds'], '.3f'):>9}"
        )
    if summary["failed"]:
        lines.append(f"failed: {len(summary['failed'])} pair(s)")
    return "\n".join(lines)


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a temporary file in the same folder, then rename (never half-written)."""
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
    """Pretty JSON, atomically."""
    _write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def output_dir(workdir: str | Path, split: str, mode: str, m: float) -> Path:
    """``<workdir>/eval_<split>_gt`` or ``<workdir>/eval_<split>_estimated_m<m>``."""
    name = f"eval_{split}_gt" if mode == "gt" else f"eval_{split}_estimated_m{m:g}"
    return Path(workdir) / name


def evaluate_pairs(
    pairs: Sequence[Pair],
    runner: PairRunner,
    out_dir: str | Path,
    *,
    info: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Evaluate ``pairs`` with ``runner``; write images, CSV and JSON under ``out_dir``.

    Returns the summary (also written as ``summary.json``). The CSV is rewritten after
    every pair, so an interrupted run keeps the rows it finished.
    """
    out_dir = Path(out_dir)
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    results: list[PairResult] = []
    n = len(pairs)
    for i, pair in enumerate(pairs, 1):
        result, out8 = runner.run(pair)
        if out8 is not None:
            try:
                write_png(images / f"{pair.input_path.stem}.png", out8)
            except OSError as e:
                result.error = _error_message(e)
        results.append(result)
        write_csv(out_dir / "results.csv", results)
        if log:
            if result.error:
                log(f"[{i}/{n}] FAILED {pair.input_name}: {result.error}")
            else:
                log(
                    f"[{i}/{n}] {pair.input_name} x{result.amplification:.4g} "
                    f"PSNR {result.psnr:.3f} SSIM {result.ssim:.4f} "
                    f"({result.seconds:.3f} s restore, {result.total_seconds:.2f} s total)"
                )
    summary = {**(info or {}), **summarize(results)}
    write_json(out_dir / "summary.json", summary)
    if log:
        log(format_table(summary))
        for f in summary["failed"]:
            log(f"failed: {f['input']}: {f['error']}")
        log(f"results in {out_dir}")
    return summary


def _config_get(config: Any, name: str, default: Any) -> Any:
    return config.get(name, default) if hasattr(config, "get") else getattr(config, name, default)


def load_eval_model(workdir: str | Path, weights: str | Path | None) -> tuple[Any, str]:
    """The model to evaluate and a description of where its weights came from.

    ``weights``: the official .pth or a converted checkpoint (`jaxdark.load_model`);
    None: the latest training checkpoint in ``workdir``.
    """
    from jaxdark.convert import load_model

    if weights is not None:
        return load_model(weights), str(weights)
    from jaxdark import checkpointing

    model, step = checkpointing.load_latest_model(workdir)
    return model, f"{Path(workdir)} (training checkpoint, step {step})"


def evaluate(config: Any, workdir: str | Path, weights: str | Path | None = None) -> dict[str, Any]:
    """Evaluate on the split ``config.eval_split`` and write the outputs under ``workdir``.

    Config fields read: ``data_dir``, ``eval_split`` (``test``), ``amplification``
    (``gt``/``estimated``), ``eval_m`` (5.0), ``drop_misaligned`` (False),
    ``eval_tile_size`` (tile side for bounded memory; None or 0 for whole frames).
    Returns the summary dict.
    """
    data_dir = _config_get(config, "data_dir", None)
    if not data_dir:
        raise ValueError("config.data_dir is not set (the SID folder with Sony/ and the lists)")
    split = _config_get(config, "eval_split", "test")
    mode = _config_get(config, "amplification", "gt")
    m = float(_config_get(config, "eval_m", 5.0))
    drop = bool(_config_get(config, "drop_misaligned", False))
    tile = _config_get(config, "eval_tile_size", None) or None
    amplify_fn = make_amplify_fn(mode, m)
    pairs = read_pair_list(data_dir, split, drop_misaligned=drop)
    model, source = load_eval_model(workdir, weights)
    runner = PairRunner(make_restore_fn(model, tile), amplify_fn)
    out_dir = output_dir(workdir, split, mode, m)
    info = {
        "split": split,
        "amplification": mode,
        "m": m if mode == "estimated" else None,
        "drop_misaligned": drop,
        "tile_size": tile,
        "weights": source,
        "data_dir": str(data_dir),
        "pairs_listed": len(pairs),
    }
    print(f"evaluating {len(pairs)} pairs of the {split} split ({mode} amplification)")
    return evaluate_pairs(pairs, runner, out_dir, info=info)


# ---------------------------------------------------------------------------------------
# validation during training


class Evaluator:
    """A few pairs of a split, scored during training (big_vision style).

    ``Evaluator(config).run(model)`` yields ``(name, value)`` pairs: ``psnr``, ``ssim``
    and per ratio ``psnr_x100``, ... The inputs and 8-bit ground truths of the chosen
    pairs are read once and kept in memory; files that fail are skipped with a message.
    """

    def __init__(
        self,
        config: Any,
        *,
        split: str = "val",
        num_pairs: int | None = None,
        log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
    ):
        data_dir = _config_get(config, "data_dir", None)
        if not data_dir:
            raise ValueError("config.data_dir is not set")
        num_pairs = num_pairs or int(_config_get(config, "num_eval_pairs", 4))
        mode = _config_get(config, "amplification", "gt")
        m = float(_config_get(config, "eval_m", 5.0))
        self.tile_size = _config_get(config, "eval_tile_size", None) or None
        amplify = make_amplify_fn(mode, m)
        drop = bool(_config_get(config, "drop_misaligned", False))
        pairs = read_pair_list(data_dir, split, drop_misaligned=drop)
        # spread the chosen pairs over the split (it is ordered by scene)
        if len(pairs) > num_pairs:
            idx = np.linspace(0, len(pairs) - 1, num_pairs).round().astype(int)
            pairs = [pairs[i] for i in idx]
        self.items: list[tuple[Pair, np.ndarray, np.ndarray, float]] = []
        for pair in pairs:
            try:
                mosaic = read_input(pair.input_path)
                gt8 = metrics.to_uint8(
                    metrics.ground_truth_to_unit(read_ground_truth(pair.gt_path))
                )
                self.items.append((pair, mosaic, gt8, float(amplify(mosaic, pair))))
            except (JaxdarkError, OSError, ValueError) as e:
                log(f"validation: skipping {pair.input_name}: {_error_message(e)}")

    def run(self, model: Any) -> Iterator[tuple[str, float]]:
        """Restore every kept pair with ``model`` and yield the mean metrics."""
        if not self.items:
            return
        restore = make_restore_fn(model, self.tile_size)
        scores: dict[str, list[tuple[float, float]]] = {}
        for pair, mosaic, gt8, amplification in self.items:
            out8 = metrics.to_uint8(restore(mosaic, amplification))
            score = (metrics.psnr(out8, gt8), metrics.ssim(out8, gt8))
            scores.setdefault("", []).append(score)
            scores.setdefault(f"_{ratio_key(pair.ratio)}", []).append(score)
        for suffix, vals in scores.items():
            yield f"psnr{suffix}", float(np.mean([v[0] for v in vals]))
            yield f"ssim{suffix}", float(np.mean([v[1] for v in vals]))

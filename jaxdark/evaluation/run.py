"""Evaluation on SID Sony: PSNR / SSIM of every pair of a split, at full resolution.

`evaluate(config, workdir, weights=None)` takes the pairs of the split's list file,
restores each input at full resolution through the jitted `jaxdark.Restorer` (whole
frames by default, as the reference; ``config.eval_tile_size`` restores in tiles),
quantises output and ground truth to 8 bits like the reference (clip to [0, 1], x255,
truncate) and measures PSNR and SSIM (`jaxdark.imaging.metrics`).

Pairs come from the SID folder's raw files (``config.eval_source = "raw"``, the ground
truth developed like the reference, once per scene) or from the prepared TFDS dataset
(``"tfds"``). The amplification is the exposure ratio (``config.amplification = "gt"``,
capped at 300) or `jaxdark.estimate_amplification` with ``config.m`` (``"estimated"``).

Outputs go to ``<workdir>/eval_<split>_<mode>/``: ``results.csv`` (one row per pair,
failed pairs keep their row with the error), ``summary.json`` (means overall and per
ratio) and ``images/<input stem>.png``. A missing or unreadable file is reported by name
and the other pairs are still evaluated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jaxdark.data.sid_files import SIDPair, read_pair_list
from jaxdark.errors import CheckpointError, one_line
from jaxdark.evaluation.reports import format_table, output_dir, summarize, write_csv, write_json
from jaxdark.evaluation.scoring import PairResult, PairScorer
from jaxdark.evaluation.sources import make_source
from jaxdark.fileio import write_image

log = logging.getLogger(__name__)


def evaluate_pairs(
    pairs: Sequence[SIDPair],
    scorer: PairScorer,
    out_dir: str | Path,
    *,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score ``pairs``; write images, ``results.csv`` and ``summary.json`` under ``out_dir``.

    Returns the summary. The CSV is rewritten after every pair, so an interrupted run
    keeps the rows it finished. Progress is logged (logger ``jaxdark.evaluation``).
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
                write_image(images / f"{pair.stem}.png", out8, "png")
            except OSError as e:
                result.error = one_line(e)
        results.append(result)
        write_csv(out_dir / "results.csv", results)
        if result.error:
            log.info("[%d/%d] FAILED %s: %s", i, n, pair.short_file, result.error)
        else:
            log.info(
                "[%d/%d] %s x%.4g PSNR %.3f SSIM %.4f (%.3f s restore, %.2f s total)",
                *(i, n, pair.stem, result.amplification, result.psnr, result.ssim),
                *(result.seconds, result.total_seconds),
            )
    summary = {**(info or {}), **summarize(results)}
    summary["wall_seconds"] = time.perf_counter() - start  # the whole loop, compiling included
    write_json(out_dir / "summary.json", summary)
    log.info("%s", format_table(summary))
    for f in summary["failed"]:
        log.info("failed: %s", f["error"])
    log.info("results: %s", out_dir)
    return summary


def evaluate(config: Any, workdir: str | Path, weights: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a model on every pair of ``config.eval_split``; outputs under ``workdir``.

    ``weights``: the official .pth, a converted checkpoint or a training run (anything
    `jaxdark.load_model` reads); None reads the newest checkpoint of the training run in
    ``workdir``. Config fields: ``data_dir``, ``tfds_data_dir``, ``eval_source``,
    ``eval_split``, ``amplification``, ``m``, ``drop_misaligned``, ``eval_tile_size``,
    ``eval_tile_overlap``. Returns the summary (also in ``summary.json``);
    ``summary["failed"]`` lists failures.
    """
    from jaxdark.restorer import Restorer
    from jaxdark.weights.load import RUN_CHECKPOINTS, describe_weights, load_model, run_directory

    split, mode, m = config.eval_split, config.amplification, float(config.m)
    tile = int(config.eval_tile_size) or None
    if not config.data_dir:
        raise ValueError("set --config.data_dir to the SID folder (it holds the list files)")
    pairs = read_pair_list(config.data_dir, split, drop_misaligned=config.drop_misaligned)
    source = make_source(config, split)
    if not weights and run_directory(workdir) is None:
        raise CheckpointError(
            f"{Path(workdir) / RUN_CHECKPOINTS}: no training checkpoints (pass --weights=PATH "
            "to evaluate the official .pth, a converted checkpoint or another run)"
        )
    weights = weights or workdir
    model = load_model(weights)
    restorer = Restorer(model, tile_size=tile, tile_overlap=int(config.eval_tile_overlap))
    scorer = PairScorer(source, restorer, mode, m)
    info = {
        "split": split,
        "source": config.eval_source,
        "amplification": mode,
        "m": m if mode == "estimated" else None,
        "drop_misaligned": bool(config.drop_misaligned),
        "tile_size": tile,
        "tile_overlap": int(config.eval_tile_overlap) if tile else None,
        "weights": describe_weights(weights),
        "pairs_listed": len(pairs),
    }
    log.info(
        "evaluating %d pairs of the %s split (%s amplification%s), weights: %s",
        *(len(pairs), split, mode, f", m={m:g}" if mode == "estimated" else ""),
        info["weights"],
    )
    return evaluate_pairs(pairs, scorer, output_dir(workdir, split, mode, m), info=info)

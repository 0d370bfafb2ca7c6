"""Summaries of an evaluation (means per ratio) and the files it writes."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxdark.data.sid_files import ratio_key
from jaxdark.evaluation.scoring import PairResult
from jaxdark.fileio import write_atomic

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
        "failed": [{"input": r.pair.short_file, "error": r.error} for r in results if r.error],
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


def write_csv(path: Path, results: Sequence[PairResult]) -> None:
    """One row per pair, columns `CSV_FIELDS`, atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            w.writeheader()
            for r in results:
                w.writerow(r.row())

    write_atomic(path, write)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Indented strict JSON, atomically."""
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))


def output_dir(workdir: str | Path, split: str, mode: str, m: float) -> Path:
    """``<workdir>/eval_<split>_gt`` or ``<workdir>/eval_<split>_estimated_m<m>``."""
    name = f"eval_{split}_gt" if mode == "gt" else f"eval_{split}_estimated_m{m:g}"
    return Path(workdir) / name

"""Restoring and scoring one evaluation pair: PSNR / SSIM on 8-bit images."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from jaxdark.constants import AMPLIFICATION_MODES, MAX_M
from jaxdark.data.sid_files import SIDPair, ratio_key
from jaxdark.errors import JaxdarkError, one_line
from jaxdark.evaluation.sources import LoadedPair
from jaxdark.imaging import metrics

# errors that fail one pair, not the run (they name the file)
PAIR_ERRORS = (JaxdarkError, OSError, ValueError, KeyError)


@dataclasses.dataclass
class PairResult:
    """The outcome of one pair; ``error`` is set (and metrics are NaN) when it failed."""

    pair: SIDPair
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
            "input": self.pair.short_file,
            "ground_truth": self.pair.long_file,
            "ratio": format(self.pair.ratio, "g"),
            "amplification": num(self.amplification, ".9g"),
            "psnr": num(self.psnr, ".6f"),
            "ssim": num(self.ssim, ".6f"),
            "seconds": num(self.seconds, ".4f"),
            "total_seconds": num(self.total_seconds, ".4f"),
            "error": self.error,
        }


class PairScorer:
    """Restores and scores pairs of one source with one `jaxdark.Restorer`."""

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
        if amplification == "estimated" and not (math.isfinite(m) and 0 < m <= MAX_M):
            raise ValueError(f"m must be a number in (0, {MAX_M:g}], got {m}")
        self.source = source
        self.restorer = restorer
        self.mode = amplification
        self.m = float(m)
        self.warmup = warmup
        self._warm: set[tuple[int, int]] = set()

    def amplification(self, pair: SIDPair, mosaic: np.ndarray) -> float:
        """The factor for ``pair``: its ratio (``gt``) or the estimate with ``m``."""
        if self.mode == "gt":
            return pair.ratio
        return self.restorer.amplification(mosaic, self.m)

    def restore(self, pair: SIDPair, loaded: LoadedPair) -> tuple[np.ndarray, float, float]:
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

    def score(self, pair: SIDPair) -> tuple[PairResult, np.ndarray | None]:
        """Score one pair; returns the result and the 8-bit restoration (None on failure)."""
        result = PairResult(pair)
        t0 = time.perf_counter()
        out8 = None
        try:
            loaded = self.source.load(pair)
            if loaded.gt8.shape[:2] != loaded.mosaic.shape:
                raise JaxdarkError(
                    f"{pair.long_file}: ground truth is {loaded.gt8.shape[1]}x"
                    f"{loaded.gt8.shape[0]} but the input {pair.short_file} is "
                    f"{loaded.mosaic.shape[1]}x{loaded.mosaic.shape[0]}"
                )
            out8, result.amplification, result.seconds = self.restore(pair, loaded)
            result.psnr = metrics.psnr(out8, loaded.gt8)
            result.ssim = metrics.ssim(out8, loaded.gt8)
        except PAIR_ERRORS as e:
            result.error = one_line(e)
            out8 = None
        result.total_seconds = time.perf_counter() - t0
        return result, out8


def mean_by_ratio(scores: Iterable[tuple[float, float, float]]) -> Iterator[tuple[str, float]]:
    """Mean metrics of (ratio, psnr, ssim) scores: ``psnr``, ``ssim`` over all, then
    ``psnr_x100``, ``ssim_x100``, ... per exposure ratio (`ratio_key`)."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for ratio, psnr, ssim in scores:
        groups.setdefault("", []).append((psnr, ssim))
        groups.setdefault(f"_{ratio_key(ratio)}", []).append((psnr, ssim))
    for suffix in sorted(groups, key=lambda s: (s != "", s)):
        vals = np.asarray(groups[suffix], np.float64)
        yield f"psnr{suffix}", float(vals[:, 0].mean())
        yield f"ssim{suffix}", float(vals[:, 1].mean())

"""Validation during training: a few pairs scored with the current parameters."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from jaxdark.data.sid_files import SIDPair, read_pair_list
from jaxdark.errors import one_line
from jaxdark.evaluation.scoring import PAIR_ERRORS, PairScorer, mean_by_ratio
from jaxdark.evaluation.sources import LoadedPair, make_source
from jaxdark.imaging import metrics

log = logging.getLogger(__name__)


class Evaluator:
    """A few pairs of a split scored during training (big_vision style).

    ``Evaluator(config).run(model)`` yields ``(name, value)`` pairs: ``psnr``, ``ssim``
    (means) and per ratio ``psnr_x100``, ``ssim_x100``, ... The chosen pairs
    (``config.num_eval_pairs``, spread over the split ``config.validation_split``) are
    read once and kept in memory; files that fail are skipped with a message.
    """

    def __init__(self, config: Any, *, split: str | None = None, num_pairs: int | None = None):
        split = split or config.validation_split
        num_pairs = int(num_pairs or config.num_eval_pairs)
        self.mode, self.m = config.amplification, float(config.m)
        self.tile = int(config.eval_tile_size) or None
        self.overlap = int(config.eval_tile_overlap)
        pairs = read_pair_list(config.data_dir, split, drop_misaligned=config.drop_misaligned)
        if len(pairs) > num_pairs:  # spread over the split (it is ordered by scene)
            picks = np.linspace(0, len(pairs) - 1, num_pairs).round().astype(int)
            pairs = [pairs[i] for i in picks]
        source = make_source(config, split)
        self._scorer: PairScorer | None = None
        self.items: list[tuple[SIDPair, LoadedPair]] = []
        for pair in pairs:
            try:
                self.items.append((pair, source.load(pair)))
            except PAIR_ERRORS as e:
                log.warning("validation: skipping %s: %s", pair.short_file, one_line(e))

    def run(self, model: Any) -> Iterator[tuple[str, float]]:
        """Restore the kept pairs with ``model`` (an NNX network) and yield mean metrics."""
        if not self.items:
            return
        if self._scorer is None:
            from jaxdark.restorer import Restorer

            restorer = Restorer(model, tile_size=self.tile, tile_overlap=self.overlap)
            self._scorer = PairScorer(None, restorer, self.mode, self.m, warmup=False)
        else:  # same shapes and dtypes: the compiled functions are reused
            self._scorer.restorer.set_weights(model)
        scores = []
        for pair, loaded in self.items:
            out8, _, _ = self._scorer.restore(pair, loaded)
            scores.append(
                (pair.ratio, metrics.psnr(out8, loaded.gt8), metrics.ssim(out8, loaded.gt8))
            )
        yield from mean_by_ratio(scores)

"""Validation on held-out synthetic pairs, for training runs without SID.

`SyntheticEvaluator` has `jaxdark.evaluation.Evaluator`'s interface: ``run(model)``
yields ``(name, value)`` pairs (``psnr``, ``ssim`` and per exposure ratio ``psnr_x100``,
...). Its pairs are the validation photos of `jaxdark.data.synthetic_source` (the
scikit-image photos held out for validation, or the held-out share of ``photo_dir``),
made dark once with a fixed seed, whole photos by default: the same pairs at every
evaluation and in every run. ``naive()`` scores plain brightening of the same pairs
(`jaxdark.data.naive`), the baseline a model must beat.

`make_evaluator(config)` picks the evaluator a training config calls for: SID's when
SID is configured, otherwise the synthetic one when the run trains on synthetic pairs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from jaxdark.constants import AMPLIFICATION_MODES, SID_BLACK_LEVEL, SID_WHITE_LEVEL
from jaxdark.data.naive import naive_brighten
from jaxdark.data.synthetic import SynthesisConfig
from jaxdark.data.synthetic_source import SyntheticPairs, synthesis_config
from jaxdark.errors import JaxdarkError
from jaxdark.evaluation.scoring import mean_by_ratio
from jaxdark.imaging import metrics
from jaxdark.imaging.raw import normalise

VALIDATION_SEED = 0  # held-out pairs do not depend on the training seed


@dataclasses.dataclass(frozen=True)
class HeldOutPair:
    """One held-out pair, ready to restore and score."""

    name: str
    mosaic: np.ndarray  # (H, W) float32 RGGB, black 0, white 1
    target: np.ndarray  # (H, W, 3) float32 in [0, 1]: the 16-bit target / 65535
    ratio: float
    gains: np.ndarray  # camera white balance of the shot (for the naive development)
    clean_maximum: float  # largest clean value above black (LibRaw's white-point stretch)


def held_out_pairs(
    photo_dir: str | None = None,
    *,
    num_pairs: int = 3,
    window: int | None = None,
    seed: int = VALIDATION_SEED,
    synthesis: SynthesisConfig | None = None,
    val_fraction: float = 0.1,
) -> list[HeldOutPair]:
    """The first ``num_pairs`` validation records (pair ``i`` is validation photo
    ``i mod n``); ``window`` None: whole photos, else a ``window`` square drawn per pair."""
    if num_pairs < 1:
        raise JaxdarkError(f"num_pairs must be >= 1, got {num_pairs}")
    source = SyntheticPairs(
        photo_dir or None,
        split="validation",
        window=window,
        variants=num_pairs,
        seed=seed,
        config=synthesis,
        val_fraction=val_fraction,
    )
    pairs = []
    for i in range(num_pairs):
        p = source.pair(i)
        pairs.append(
            HeldOutPair(
                name=p.name,
                mosaic=normalise(p.mosaic, (SID_BLACK_LEVEL,) * 4, SID_WHITE_LEVEL),
                target=metrics.ground_truth_to_unit(p.target),
                ratio=float(p.ratio),
                gains=np.asarray(p.gains, np.float64),
                clean_maximum=float(p.clean.max()) - SID_BLACK_LEVEL,
            )
        )
    return pairs


class SyntheticEvaluator:
    """Held-out synthetic pairs scored with a model (the `Evaluator` interface).

    Args:
      config: a training config (``photo_dir``, ``synthetic_*``, ``num_eval_pairs``,
        ``amplification``, ``m``, ``eval_tile_size``, ``eval_tile_overlap``).
      num_pairs: pairs to keep (default ``config.num_eval_pairs``); pair ``i`` is
        validation photo ``i mod n``, each with its own draws.
      window: None (default): whole photos; else a square of this side per pair.
      seed: seed of the draws (fixed by default, whatever the training seed).
      synthesis: how pairs are made (default: the config's ``synthetic_*`` fields, so
        the held-out pairs come from the camera the run trains on).
    """

    def __init__(
        self,
        config: Any,
        *,
        num_pairs: int | None = None,
        window: int | None = None,
        seed: int = VALIDATION_SEED,
        synthesis: SynthesisConfig | None = None,
    ):
        if config.amplification not in AMPLIFICATION_MODES:
            raise JaxdarkError(
                f"config.amplification must be one of {AMPLIFICATION_MODES}, "
                f"got {config.amplification!r}"
            )
        self.mode, self.m = config.amplification, float(config.m)
        self.tile = int(config.eval_tile_size) or None
        self.overlap = int(config.eval_tile_overlap)
        try:
            synthesis = synthesis or synthesis_config(config)
        except ValueError as e:
            raise JaxdarkError(f"config: {e}") from None
        self.synthesis = synthesis
        self.items = held_out_pairs(
            config.photo_dir or None,
            num_pairs=int(num_pairs or config.num_eval_pairs),
            window=window,
            seed=seed,
            synthesis=synthesis,
            val_fraction=float(config.synthetic_val_fraction),
        )
        self._restorer = None
        self._naive: list[tuple[str, float]] | None = None

    def _amplification(self, pair: HeldOutPair) -> float:
        if self.mode == "gt":
            return pair.ratio
        from jaxdark.imaging.amplifier import estimate_amplification

        return float(estimate_amplification(pair.mosaic, self.m))

    def restore(self, model: Any) -> list[np.ndarray]:
        """The (H, W, 3) float32 restorations of the kept pairs by ``model``."""
        if self._restorer is None:
            from jaxdark.restorer import Restorer

            self._restorer = Restorer(model, tile_size=self.tile, tile_overlap=self.overlap)
        else:  # same shapes: the compiled functions are reused
            self._restorer.set_weights(model)
        return [
            self._restorer.restore(p.mosaic, amplification=self._amplification(p))
            for p in self.items
        ]

    def run(self, model: Any) -> Iterator[tuple[str, float]]:
        """Restore the kept pairs with ``model`` (an NNX network) and yield mean metrics."""
        scores = []
        for pair, image in zip(self.items, self.restore(model), strict=True):
            m = metrics.image_metrics(image, pair.target)
            scores.append((pair.ratio, m["psnr"], m["ssim"]))
        yield from mean_by_ratio(scores)

    def naive(self) -> Iterator[tuple[str, float]]:
        """The same metrics for naive brightening of the kept pairs (no network)."""
        if self._naive is None:
            scores = []
            for pair in self.items:
                image = naive_brighten(
                    pair.mosaic,
                    self._amplification(pair),
                    pair.gains,
                    data_maximum=pair.clean_maximum,
                )
                m = metrics.image_metrics(image, pair.target)
                scores.append((pair.ratio, m["psnr"], m["ssim"]))
            self._naive = list(mean_by_ratio(scores))
        yield from self._naive


def make_evaluator(config: Any) -> Any:
    """The validation evaluator of a training config: `Evaluator` (SID) when SID is
    configured (``data_dir`` or ``tfds_data_dir``), else `SyntheticEvaluator` when
    the run trains on synthetic pairs (``synthetic_fraction`` > 0)."""
    uses_sid = bool(config.data_dir or config.tfds_data_dir)
    if not uses_sid and float(config.get("synthetic_fraction", 0.0)) > 0:
        return SyntheticEvaluator(config)
    from jaxdark.evaluation.validation import Evaluator

    return Evaluator(config)

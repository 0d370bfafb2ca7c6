"""The reference's amplification estimate, written plainly in NumPy (one mask per bin).

The oracle that tests and benchmarks compare `jaxdark.imaging.amplifier` with: the
algorithm as the paper's code describes it (see that module's docstring), a loop over the
127 histogram bins with float64 sums, the result cast to float32 and clipped to [1, 300].
Like the reference it returns NaN for a frame with no pixel in [0, 1) (0 / 0). Slow on
purpose (seconds for a 12 MP frame): it is the yardstick, not a code path.
"""

from __future__ import annotations

import numpy as np

N_BINS = 127


def reference_bins() -> tuple[np.ndarray, np.ndarray]:
    """(edges (128,), weights (127,)) in float32: edges ``(2 ** linspace(0, 8, 128) - 1) /
    255``, weights ``10 ** linspace(0, 5, 127)`` normalised and reversed."""
    edges = ((2.0 ** np.linspace(0.0, 8.0, N_BINS + 1) - 1.0) / 255.0).astype(np.float32)
    weights = 10.0 ** np.linspace(0.0, 5.0, N_BINS)
    return edges, (weights / weights.max())[::-1].astype(np.float32)


def reference_weights(x: np.ndarray) -> np.ndarray:
    """Each pixel's weight: that of its bin ``edges[i] <= x < edges[i + 1]``, else 0."""
    x = np.asarray(x, np.float32)
    edges, weights = reference_bins()
    w = np.zeros(x.shape, np.float32)
    for i in range(N_BINS):
        w[(x >= edges[i]) & (x < edges[i + 1])] = weights[i]
    return w


def reference_amplification(x: np.ndarray, m: float = 1.0) -> float:
    """``sum(w) * 0.01 * m / sum(x * w)`` in float64, cast to float32, clipped to [1, 300]."""
    x = np.asarray(x, np.float32)
    w = reference_weights(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = w.astype(np.float64).sum() * 0.01 * m / (x.astype(np.float64) * w).sum()
    return float(np.clip(np.float32(a), 1.0, 300.0))

"""The reference's amplification estimate, vectorised, and Flax modules around it.

The reference (Lamba & Mitra, CVPR 2021) brightens the black-level-corrected mosaic
``x`` by ``a = sum(w) * 0.01 * m / sum(x * w)``, where ``w`` gives every pixel the
weight of its histogram bin: 127 bins with edges ``(2 ** linspace(0, 8, 128) - 1) / 255``
and weights ``10 ** linspace(0, 5, 127)`` normalised and reversed (darkest bin 1,
brightest 1e-5); pixels outside [0, 1) weigh 0. Both sums are float64 there, the
result is cast to float32 and clipped to [1, 300]. It loops over the bins in NumPy.

`estimate_amplification` computes the same number in one vectorised float32 pass:

* Bin membership is exact: ``t = 127/8 * log2(255 x + 1)`` is the bin coordinate
  (integer at every edge) to within 1e-4, so the nearest edge ``k = round(t)`` is
  found arithmetically and one comparison with the float32 edge table decides
  between bins ``k - 1`` and ``k``; the weight is read from the reference's table.
* The sums are taken as a tree (groups of 16 at every level), so the rounding error
  of a sum of n non-negative float32 terms stays near ``16 * log16(n) * 2**-24``
  relative, not ``n * 2**-24``: the result equals the float64 one within 1e-5.
* The frame is processed in chunks of about a million pixels (`lax.map`) so the
  per-pixel weights never exist for the whole frame at once: on XLA:CPU, writing a
  fresh frame-sized buffer costs about as much as the whole computation.
  docs/performance.md gives measured times (the reference's NumPy loop takes seconds).

Two frames the reference gets wrong: an all-black frame (``sum(x * w) == 0``) gives
300 here as there, but without dividing by zero; a frame with no pixel below 1 (fully
saturated, where the reference returns NaN) gives 1: it needs no brightening.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdark.constants import MAX_AMPLIFICATION, MAX_M, MIN_AMPLIFICATION

NUM_BINS = 127

# The reference tables, float32 as in the reference.
BIN_EDGES = ((2.0 ** np.linspace(0.0, 8.0, NUM_BINS + 1) - 1.0) / 255.0).astype(np.float32)
_weights64 = 10.0 ** np.linspace(0.0, 5.0, NUM_BINS)
BIN_WEIGHTS = (_weights64 / _weights64.max())[::-1].astype(np.float32)
del _weights64

# t = _T_SCALE * log2(255 x + 1) equals the bin index at every edge.
_T_SCALE = NUM_BINS / 8.0
_GROUP = 16  # fan-in of every level of the summation tree
_CHUNK = 1 << 20  # pixels per chunk of the per-pixel pass


def _t(x: jax.Array) -> jax.Array:
    """Continuous bin coordinate: the integer k at edge k (float32, error < 1e-4)."""
    return jnp.log2(jnp.maximum(x, 0.0) * 255.0 + 1.0) * _T_SCALE


def bin_weights(x: jax.Array) -> jax.Array:
    """Per-pixel reference weight ``w`` (0 outside [0, 1)), with exact bin membership."""
    edges = jnp.asarray(BIN_EDGES)
    weights = jnp.asarray(BIN_WEIGHTS)
    # t is off by < 1e-4, so the true bin is k - 1 (x below edge k) or k.
    k = jnp.clip(jnp.round(_t(x)), 0, NUM_BINS).astype(jnp.int32)
    b = k - (x < edges[k]).astype(jnp.int32)
    # ``x >= 0`` from the bits: XLA:CPU flushes subnormals, which would put a negative
    # subnormal in bin 0 where the reference (and IEEE) has it below 0, in no bin.
    bits = jax.lax.bitcast_convert_type(x, jnp.int32)
    non_negative = (bits >= 0) | (bits == jnp.iinfo(jnp.int32).min)  # the latter is -0.0
    valid = non_negative & (x < 1)
    return jnp.where(valid, weights[jnp.clip(b, 0, NUM_BINS - 1)], 0.0)


def _tree_sum(v: jax.Array) -> jax.Array:
    """Sum of a 1-D array in a tree of groups of <= 16 (bounded rounding error)."""
    while v.shape[0] > 1:
        n = v.shape[0]
        q, r = divmod(n, _GROUP)
        parts = []
        if q:
            parts.append(v[: q * _GROUP].reshape(q, _GROUP).sum(axis=1))
        if r:
            parts.append(v[q * _GROUP :].sum(keepdims=True))
        v = parts[0] if len(parts) == 1 else jnp.concatenate(parts)
    return v.reshape(())


def _partial_sums(v: jax.Array) -> jax.Array:
    """(2, q) group sums of ``w`` and ``x * w`` for ``v`` of shape (q, 16)."""
    w = bin_weights(v)
    return jnp.stack([w.sum(axis=1), (v * w).sum(axis=1)])


def _weighted_sums(flat: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(sum(w), sum(x * w))`` over a 1-D frame, chunked, as summation trees."""
    n = flat.shape[0]
    chunks = max(1, n // _CHUNK)
    per = n // (chunks * _GROUP) * _GROUP
    parts = []
    if per:
        main = flat[: chunks * per].reshape(chunks, per // _GROUP, _GROUP)
        sums = jax.lax.map(_partial_sums, main)  # (chunks, 2, per / 16)
        parts.append(jnp.moveaxis(sums, 1, 0).reshape(2, -1))
    if chunks * per < n:
        tail = flat[chunks * per :]
        w = bin_weights(tail)
        parts.append(jnp.stack([w, tail * w]))
    sums = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=1)
    return _tree_sum(sums[0]), _tree_sum(sums[1])


def _finish(sum_w: jax.Array, sum_xw: jax.Array, m: jax.Array) -> jax.Array:
    """``sum_w * 0.01 * m / sum_xw`` clipped to [1, 300], with the reference's 0/0 fixed."""
    safe = jnp.where(sum_xw > 0, sum_xw, 1.0)
    a = jnp.where(sum_xw > 0, sum_w * 0.01 * m / safe, MAX_AMPLIFICATION)
    a = jnp.where(sum_w > 0, a, MIN_AMPLIFICATION)  # nothing below 1: saturated frame
    return jnp.clip(a, MIN_AMPLIFICATION, MAX_AMPLIFICATION).astype(jnp.float32)


@jax.jit
def _sums(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return _weighted_sums(jnp.ravel(x).astype(jnp.float32))


@partial(jax.jit, inline=True)
def _estimate(x: jax.Array, m: jax.Array) -> jax.Array:
    sum_w, sum_xw = _weighted_sums(jnp.ravel(x).astype(jnp.float32))
    return _finish(sum_w, sum_xw, m)


def estimate_amplification(x: jax.Array | np.ndarray, m: float | jax.Array = 1.0) -> jax.Array:
    """The reference's brightening factor for a normalised mosaic ``x``, in [1, 300].

    Args:
      x: black-level-corrected mosaic scaled so the white level is 1 (any shape; all
        elements count, as in the reference). Values must be finite.
      m: brightness scale (the reference trains with 5; its demo also saves 1 and 8).

    Returns:
      A float32 scalar. Jit- and vmap-compatible; equal to the reference's float64
      computation within 1e-5 relative.
    """
    x = jnp.asarray(x)
    if x.size == 0:
        raise ValueError("estimate_amplification needs a non-empty frame")
    check_m(m)
    return _estimate(x, jnp.asarray(m, jnp.float32))


def amplification_sums(x: jax.Array | np.ndarray) -> tuple[float, float]:
    """The two whole-frame sums `estimate_amplification` reduces ``x`` to, so that the
    factor for any ``m`` follows later from `amplification_from_sums` (same result)."""
    x = jnp.asarray(x)
    if x.size == 0:
        raise ValueError("amplification_sums needs a non-empty frame")
    sum_w, sum_xw = _sums(x)
    return float(sum_w), float(sum_xw)


def amplification_from_sums(sum_w: float, sum_xw: float, m: float = 1.0) -> float:
    """`estimate_amplification` of a frame from its `amplification_sums`."""
    check_m(m)
    f32 = jnp.float32
    return float(_finish(jnp.asarray(sum_w, f32), jnp.asarray(sum_xw, f32), jnp.asarray(m, f32)))


def check_m(m: Any) -> None:
    """One-line ValueError unless ``m`` is a finite number in (0, MAX_M] (traced values,
    inside jit, cannot be checked and pass)."""
    if isinstance(m, jax.core.Tracer):
        return
    try:
        value = float(m)
    except (TypeError, ValueError):
        raise ValueError(f"m must be a number, got {m!r}") from None
    if not (math.isfinite(value) and 0 < value <= MAX_M):
        raise ValueError(f"m must be a number in (0, {MAX_M:g}], got {m!r}")


class Amplifier(nnx.Module):
    """Multiply each image of a batch by its estimated factor (or a given one).

    ``Amplifier(m)(x)`` with ``x`` of shape (B, H, W, 1) or (B, H, W) returns
    ``a[b] * x[b]``, ``a = estimate_amplification(x[b], m)``. Stack it before the
    network (see `AmplifiedNet`) to run amplify-then-restore as one jitted function.
    """

    def __init__(self, m: float = 5.0):
        self.m = float(m)

    def factors(self, x: jax.Array) -> jax.Array:
        """(B,) estimated factors of a batch."""
        return jax.vmap(lambda im: _estimate(im, jnp.float32(self.m)))(x)

    def __call__(self, x: jax.Array, amplification: jax.Array | None = None) -> jax.Array:
        a = self.factors(x) if amplification is None else jnp.asarray(amplification, x.dtype)
        a = jnp.broadcast_to(a, x.shape[:1]).astype(x.dtype)
        return x * a.reshape((-1,) + (1,) * (x.ndim - 1))


class AmplifiedNet(nnx.Module):
    """``net(Amplifier(m)(x))``: amplify-then-restore as one module.

    Input (B, H, W, 1) normalised RGGB mosaics, H and W multiples of 32; output
    (B, H, W, 3) sRGB in [0, 1]. Pass ``amplification`` (scalar or (B,)) to use a
    fixed factor instead of the estimate.
    """

    def __init__(self, net: nnx.Module, m: float = 5.0):
        self.amplifier = Amplifier(m)
        self.net = net

    def __call__(self, x: jax.Array, amplification: jax.Array | None = None) -> jax.Array:
        return self.net(self.amplifier(x, amplification))

"""Layers initialised as PyTorch initialises them by default, for the zoo's networks whose
reference definitions are PyTorch modules (DID, SGN, LLPackNet).

PyTorch's default for ``nn.Conv2d`` and ``nn.Linear`` draws the weight from
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (Kaiming-uniform with slope sqrt(5)) and the bias from
the same interval; ``fan_in`` is in_features x kernel area.

The values are drawn with NumPy from a seed taken from ``rngs`` (one small JAX computation
per layer, always of the same shape): drawing them with JAX compiles a computation per
distinct layer shape, minutes for these networks on a loaded 2-core machine. Inside
`nnx.eval_shape` (an abstract model) no value is drawn.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdark.models.layers import WNConv


def numpy_rng(rngs: nnx.Rngs) -> np.random.Generator | None:
    """A NumPy generator seeded from the next ``rngs.params()`` key (None when abstract)."""
    key = rngs.params()
    if isinstance(key, jax.core.Tracer):
        return None
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def _draw(rng, kind: str, scale: float, shape: tuple[int, ...]) -> jax.Array:
    if rng is None:
        return jnp.zeros(shape, jnp.float32)
    if kind == "normal":
        return jnp.asarray(rng.normal(0.0, scale, shape), jnp.float32)
    return jnp.asarray(rng.uniform(-scale, scale, shape), jnp.float32)


def conv(
    in_features: int,
    out_features: int,
    kernel_size: int = 3,
    *,
    rngs: nnx.Rngs,
    kernel_std: float | None = None,
    dtype: jnp.dtype | None = None,
) -> nnx.Conv:
    """A stride-1, zero-padded ('same') convolution with bias, PyTorch-default initialised
    (``kernel_std``: the kernel from N(0, kernel_std) instead; the bias keeps PyTorch's)."""
    k = (kernel_size, kernel_size)
    layer = nnx.eval_shape(
        lambda: nnx.Conv(
            in_features, out_features, k, padding="SAME", dtype=dtype, rngs=nnx.Rngs(0)
        )
    )
    rng = numpy_rng(rngs)
    bound = 1.0 / math.sqrt(in_features * kernel_size * kernel_size)
    shape = (*k, in_features, out_features)
    kind, scale = ("normal", kernel_std) if kernel_std is not None else ("uniform", bound)
    layer.kernel = nnx.Param(_draw(rng, kind, scale, shape))
    layer.bias = nnx.Param(_draw(rng, "uniform", bound, (out_features,)))
    return layer


def linear(in_features: int, out_features: int, *, rngs: nnx.Rngs) -> nnx.Linear:
    """A dense layer with bias, PyTorch-default initialised."""
    layer = nnx.eval_shape(lambda: nnx.Linear(in_features, out_features, rngs=nnx.Rngs(0)))
    rng = numpy_rng(rngs)
    bound = 1.0 / math.sqrt(in_features)
    layer.kernel = nnx.Param(_draw(rng, "uniform", bound, (in_features, out_features)))
    layer.bias = nnx.Param(_draw(rng, "uniform", bound, (out_features,)))
    return layer


def wn_conv(
    in_features: int,
    out_features: int,
    kernel_size: int,
    *,
    bias: bool,
    rngs: nnx.Rngs,
    dtype: jnp.dtype | None = None,
) -> WNConv:
    """A weight-normalised convolution (`WNConv`) as PyTorch's ``weight_norm`` of a default
    ``nn.Conv2d``: ``v`` and the bias PyTorch-default drawn, ``g = ||v||``."""
    layer = nnx.eval_shape(
        lambda: WNConv(
            in_features, out_features, kernel_size, use_bias=bias, dtype=dtype, rngs=nnx.Rngs(0)
        )
    )
    rng = numpy_rng(rngs)
    bound = 1.0 / math.sqrt(in_features * kernel_size * kernel_size)
    shape = (kernel_size, kernel_size, in_features, out_features)
    v = _draw(rng, "uniform", bound, shape)
    layer.v = nnx.Param(v)
    g = jnp.zeros((out_features,), jnp.float32)
    if rng is not None:  # g = ||v|| per output channel: the effective kernel is v at step 0
        g = jnp.asarray(np.sqrt((np.asarray(v, np.float64) ** 2).sum(axis=(0, 1, 2))), jnp.float32)
    layer.g = nnx.Param(g)
    if bias:
        layer.bias = nnx.Param(_draw(rng, "uniform", bound, (out_features,)))
    return layer

"""Layers initialised as PyTorch initialises them by default, for the zoo's networks whose
reference definitions are PyTorch modules (DID, SGN, LLPackNet).

PyTorch's default for ``nn.Conv2d`` and ``nn.Linear`` draws the weight from
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (Kaiming-uniform with slope sqrt(5)) and the bias from
the same interval; ``fan_in`` is in_features x kernel area.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

# Kaiming-uniform with a = sqrt(5): bound sqrt(3 * (1/3) / fan_in) = 1 / sqrt(fan_in)
TORCH_DEFAULT_KERNEL = nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias(rngs: nnx.Rngs, fan_in: int, size: int) -> jax.Array:
    """A bias drawn as PyTorch draws it: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(rngs.params(), (size,), jnp.float32, -bound, bound)


def conv(
    in_features: int,
    out_features: int,
    kernel_size: int = 3,
    *,
    rngs: nnx.Rngs,
    kernel_init: nnx.Initializer = TORCH_DEFAULT_KERNEL,
    dtype: jnp.dtype | None = None,
) -> nnx.Conv:
    """A stride-1, zero-padded ('same') convolution with bias, PyTorch-default initialised
    (``kernel_init`` replaces the kernel's draw; the bias keeps PyTorch's)."""
    layer = nnx.Conv(
        in_features,
        out_features,
        kernel_size=(kernel_size, kernel_size),
        padding="SAME",
        kernel_init=kernel_init,
        dtype=dtype,
        rngs=rngs,
    )
    layer.bias[...] = torch_bias(rngs, in_features * kernel_size * kernel_size, out_features)
    return layer


def linear(in_features: int, out_features: int, *, rngs: nnx.Rngs) -> nnx.Linear:
    """A dense layer with bias, PyTorch-default initialised."""
    layer = nnx.Linear(in_features, out_features, kernel_init=TORCH_DEFAULT_KERNEL, rngs=rngs)
    layer.bias[...] = torch_bias(rngs, in_features, out_features)
    return layer

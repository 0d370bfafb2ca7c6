"""Weight-normalised convolution, the one parametric layer of the network."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx


def kaiming_std(fan_in: int, a: float) -> float:
    """Std of PyTorch's ``kaiming_normal_(a=a, mode='fan_in', nonlinearity='leaky_relu')``."""
    gain = math.sqrt(2.0 / (1.0 + a * a))
    return gain / math.sqrt(fan_in)


GROUPED_IMPLS = ("dense", "native")


def block_diagonal_kernel(w: jax.Array, groups: int) -> jax.Array:
    """Grouped HWIO kernel (kh, kw, in/groups, out) -> the equivalent dense (kh, kw, in, out).

    Group ``g`` maps input channels ``[g*in/groups, (g+1)*in/groups)`` to output channels
    ``[g*out/groups, (g+1)*out/groups)``; every other entry is zero.
    """
    kh, kw, cin_g, cout = w.shape
    w5 = w.reshape(kh, kw, cin_g, groups, cout // groups)
    eye = jnp.eye(groups, dtype=w.dtype)
    dense = jnp.einsum("hwiGo,gG->hwgiGo", w5, eye)
    return dense.reshape(kh, kw, groups * cin_g, cout)


class WNConv(nnx.Module):
    """2-D convolution with weight norm ``w = g * v / ||v||`` (norm over kh, kw, in), stride 1.

    Parameters, in NHWC/HWIO layout:
      ``v``: (kh, kw, in/groups, out); ``g``: (out,); ``bias``: (out,) or absent.
    Zero padding (k-1)/2 keeps the spatial size. A fresh layer is initialised like
    the reference: Kaiming-normal ``v`` with slope ``init_a``, ``g = ||v||`` (so the
    effective kernel equals ``v`` at step 0) and PyTorch's default uniform bias.

    ``grouped_impl`` picks how a grouped convolution runs: ``"dense"`` (default)
    convolves with the equivalent block-diagonal dense kernel, ``"native"`` uses XLA's
    grouped convolution. Same outputs up to float rounding; on XLA:CPU the gradient of
    the native form is 20-200x slower (docs/performance.md), and the native form is
    the one whose cost analysis counts the network's true MACs.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int,
        *,
        groups: int = 1,
        use_bias: bool = True,
        init_a: float = 1.0,
        grouped_impl: str = "dense",
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        if in_features % groups or out_features % groups:
            raise ValueError(
                f"WNConv: in={in_features} and out={out_features} must be divisible by "
                f"groups={groups}"
            )
        if kernel_size % 2 != 1:
            raise ValueError(f"WNConv: kernel_size must be odd, got {kernel_size}")
        self.in_features = in_features
        self.out_features = out_features
        self.kernel_size = kernel_size
        if grouped_impl not in GROUPED_IMPLS:
            raise ValueError(f"grouped_impl must be one of {GROUPED_IMPLS}, got {grouped_impl!r}")
        self.groups = groups
        self.grouped_impl = grouped_impl
        self.dtype = dtype
        fan_in = (in_features // groups) * kernel_size * kernel_size
        shape = (kernel_size, kernel_size, in_features // groups, out_features)
        v = kaiming_std(fan_in, init_a) * jax.random.normal(rngs.params(), shape, jnp.float32)
        self.v = nnx.Param(v)
        self.g = nnx.Param(jnp.sqrt(jnp.sum(v * v, axis=(0, 1, 2))))
        if use_bias:
            bound = 1.0 / math.sqrt(fan_in)
            b = jax.random.uniform(rngs.params(), (out_features,), jnp.float32, -bound, bound)
            self.bias = nnx.Param(b)
        else:
            self.bias = None

    def kernel(self) -> jax.Array:
        """The effective HWIO kernel ``g * v / ||v||``."""
        v = self.v[...]
        norm = jnp.sqrt(jnp.sum(v * v, axis=(0, 1, 2)))
        return v * (self.g[...] / norm)

    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.kernel()
        groups = self.groups
        if groups > 1 and self.grouped_impl == "dense":
            w, groups = block_diagonal_kernel(w, groups), 1
        if self.dtype is not None:
            x, w = x.astype(self.dtype), w.astype(self.dtype)
        p = (self.kernel_size - 1) // 2
        y = jax.lax.conv_general_dilated(
            x,
            w,
            window_strides=(1, 1),
            padding=((p, p), (p, p)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=groups,
        )
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y

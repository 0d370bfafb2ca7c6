"""The restoration network of Lamba & Mitra (CVPR 2021) in Flax NNX.

Submodule paths mirror the reference's parameter names (``RDB2.dense_layers.3.conv.1``
is ``rdb[1].dense_layers[3].conv`` here; the full table is in
`jaxdark.weights.convert.conv_table`). Layout is NHWC: input (B, H, W, 1), the
amplified black-level-corrected RGGB mosaic with H, W multiples of 32; output
(B, H, W, 3) sRGB in [0, 1].

Variants (constructor arguments; the default is the published model). GMACs are XLA's
cost analysis of one frame (flops / 2, `grouped_conv_impl="native"`) on the CPU backend; the
paper reports 59.8 GMACs
for the full Sony frame.

| variant   | features | growth | dense_layers | params    | GMACs 4K | GMACs Sony |
|-----------|----------|--------|--------------|-----------|----------|------------|
| reference | 64       | 32     | (4, 5, 5)    |   784,768 | 40.4     | 59.6       |
| small     | 32       | 16     | (3, 3)       |   243,904 | 36.0     | 53.0       |
| deep      | 64       | 32     | (5, 6, 6, 6) | 1,244,896 | 44.1     | 65.0       |

4K is 2144x3840, Sony the full 2848x4256 frame.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdark.constants import INPUT_MULTIPLE
from jaxdark.models.layers import WNConv
from jaxdark.models.ops import channel_shuffle, pixel_shuffle, pixel_unshuffle
from jaxdark.models.registry import build, register

LRELU_SLOPE = 0.2


def leaky_relu(x: jax.Array, slope: float) -> jax.Array:
    """LeakyReLU; slope 1 is the identity and is skipped."""
    return x if slope == 1.0 else jax.nn.leaky_relu(x, slope)


class DenseLayer(nnx.Module):
    """``concat([x, conv(lrelu(x))])``: one growth step of a residual dense block."""

    def __init__(self, in_features: int, growth: int, slope: float | None, *, dtype, rngs):
        self.slope = slope  # None: no activation before the conv
        init_a = LRELU_SLOPE if slope is None or slope != 1.0 else 1.0
        self.conv = WNConv(
            in_features, growth, 3, use_bias=False, init_a=init_a, dtype=dtype, rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        h = x if self.slope is None else leaky_relu(x, self.slope)
        return jnp.concatenate([x, self.conv(h).astype(x.dtype)], axis=-1)


class ResidualDenseBlock(nnx.Module):
    """RDB: L dense layers, 1x1 conv back to ``features`` channels, plus the input."""

    def __init__(self, features: int, growth: int, num_layers: int, *, dtype, rngs):
        if num_layers < 2:
            raise ValueError(f"ResidualDenseBlock needs >= 2 dense layers, got {num_layers}")
        slopes = [None] + [LRELU_SLOPE] * (num_layers - 2) + [1.0]
        self.dense_layers = nnx.List(
            [
                DenseLayer(features + i * growth, growth, s, dtype=dtype, rngs=rngs)
                for i, s in enumerate(slopes)
            ]
        )
        total = features + num_layers * growth
        self.conv_1x1 = WNConv(total, features, 1, use_bias=False, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = x
        for layer in self.dense_layers:
            h = layer(h)
        return self.conv_1x1(h) + x


class ResBlock(nnx.Module):
    """``conv2(lrelu0.2(conv1(x))) + x``: the 8x-scale branch on the raw input."""

    def __init__(self, features: int, *, dtype, rngs):
        self.conv1 = WNConv(features, features, 3, init_a=LRELU_SLOPE, dtype=dtype, rngs=rngs)
        self.conv2 = WNConv(features, features, 3, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.conv2(leaky_relu(self.conv1(x), LRELU_SLOPE)) + x


@register("lamba2021")
class DarkRestorationNet(nnx.Module):
    """Multi-scale RAW-to-sRGB network: 32x RDB branch, 8x raw branch, 2x fusion.

    Args:
      features: channels of the 32x branch (divisible by 16; reference 64).
      growth: channels each dense layer adds (reference 32).
      dense_layers: dense layers per residual dense block; its length is the number
        of blocks (reference (4, 5, 5)).
      grouped_conv_impl: ``"dense"`` (default; fast gradients) or ``"native"`` for the
        two grouped convolutions (see `jaxdark.models.layers.WNConv`).
      dtype: compute dtype (parameters stay float32), e.g. ``jnp.bfloat16``.
      rngs: random streams for initialisation.
    """

    input_multiple = (
        INPUT_MULTIPLE  # the zoo's contract (jaxdark.models): sides are multiples of 32
    )

    def __init__(
        self,
        *,
        features: int = 64,
        growth: int = 32,
        dense_layers: tuple[int, ...] = (4, 5, 5),
        grouped_conv_impl: str = "dense",
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        if features % 16:
            raise ValueError(f"features must be divisible by 16, got {features}")
        if not dense_layers:
            raise ValueError("dense_layers must name at least one block")
        self.features = features
        self.growth = growth
        self.dense_layer_counts = tuple(int(n) for n in dense_layers)
        self.dtype = dtype
        kw = dict(dtype=dtype, rngs=rngs)
        # 32x branch: 4 * 16 * 16 = 1024 unshuffled channels -> 128 (grouped) -> features.
        self.conv32x = nnx.List(
            [
                WNConv(1024, 128, 3, groups=128, grouped_impl=grouped_conv_impl, **kw),
                WNConv(128, features, 3, **kw),
            ]
        )
        self.rdb = nnx.List(
            [ResidualDenseBlock(features, growth, n, **kw) for n in self.dense_layer_counts]
        )
        n_blocks = len(self.dense_layer_counts)
        self.rdball = WNConv(n_blocks * features, features, 1, use_bias=False, **kw)
        self.conv_rdb8x = WNConv(features // 16, 64, 3, **kw)
        # 8x branch on the mosaic itself: 4 * 4 * 4 = 64 channels.
        self.resblock8x = ResBlock(64, **kw)
        self.conv32_8_cat = nnx.List(
            [
                WNConv(128, 32, 3, groups=4, grouped_impl=grouped_conv_impl, **kw),
                WNConv(32, 192, 3, init_a=LRELU_SLOPE, **kw),
            ]
        )
        self.conv2x = WNConv(4, 12, 5, **kw)
        self.conv_2_8_32 = WNConv(24, 12, 5, **kw)

    def config(self) -> dict:
        """The architecture sizes (constructor arguments) that rebuild this network."""
        return {
            "features": self.features,
            "growth": self.growth,
            "dense_layers": list(self.dense_layer_counts),
        }

    def __call__(self, low: jax.Array) -> jax.Array:
        """Restore (B, H, W, 1) amplified mosaics to (B, H, W, 3) sRGB in [0, 1]."""
        check_input_shape(low.shape)
        in_dtype = low.dtype
        if not jnp.issubdtype(in_dtype, jnp.floating):
            raise ValueError(f"expected a floating-point input, got dtype {in_dtype}")
        if in_dtype not in (jnp.float32, jnp.bfloat16):  # float16/64: compute in float32
            low = low.astype(jnp.float32)
        low2x = pixel_unshuffle(low, 2)  # (B, H/2, W/2, 4)
        x32 = self.conv32x[1](self.conv32x[0](pixel_unshuffle(low2x, 16)))
        r = x32
        block_outputs = []
        for block in self.rdb:
            r = block(r)
            block_outputs.append(r)
        r8 = self.rdball(jnp.concatenate(block_outputs, axis=-1)) + x32
        r8 = self.conv_rdb8x(pixel_shuffle(r8, 4))  # (B, H/8, W/8, 64)
        l8 = self.resblock8x(pixel_unshuffle(low2x, 4))  # (B, H/8, W/8, 64)
        c = channel_shuffle(jnp.concatenate([l8, r8.astype(l8.dtype)], axis=-1), 2)
        c = leaky_relu(self.conv32_8_cat[1](self.conv32_8_cat[0](c)), LRELU_SLOPE)
        c = pixel_shuffle(c, 4)  # (B, H/2, W/2, 12)
        y = jnp.concatenate([self.conv2x(low2x).astype(c.dtype), c], axis=-1)
        out = pixel_shuffle(self.conv_2_8_32(y), 2)
        return jnp.clip(out, 0.0, 1.0).astype(in_dtype)


def check_input_shape(shape: tuple[int, ...]) -> None:
    """Raise a one-line ValueError unless ``shape`` is (B, H, W, 1) with H, W multiples of 32."""
    if len(shape) != 4 or shape[-1] != 1:
        raise ValueError(f"expected input of shape (B, H, W, 1), got {tuple(shape)}")
    h, w = shape[1], shape[2]
    if h % INPUT_MULTIPLE or w % INPUT_MULTIPLE or h == 0 or w == 0:
        raise ValueError(
            f"input height and width must be positive multiples of {INPUT_MULTIPLE}, got {h}x{w} "
            "(pad the mosaic first, as jaxdark.Restorer does)"
        )


def count_params(model: nnx.Module) -> int:
    """Number of scalar parameters in ``model``."""
    state = nnx.state(model, nnx.Param)
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(state))


def create_model(seed: int = 0, *, abstract: bool = False, **sizes: Any) -> DarkRestorationNet:
    """The published network (``lamba2021``) initialised like the reference (see `WNConv`).

    ``sizes`` are the constructor's arguments (``features``, ``growth``,
    ``dense_layers``, ...). With ``abstract`` the parameters are only shapes
    (`nnx.eval_shape`): nothing is drawn or compiled, which is what loading weights
    needs. Same as ``jaxdark.models.build({"name": "lamba2021", **sizes}, seed, ...)``.
    """
    return build({"name": "lamba2021", **sizes}, seed, abstract=abstract)

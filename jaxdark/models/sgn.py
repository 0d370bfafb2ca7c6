"""SGN (Gu, Li, Gool and Timofte, "Self-Guided Network for Fast Image Denoising", ICCV
2019), as Lamba & Mitra retrained it on raw mosaics for their Table 1.

Written from the layer table of the PyTorch definition in the authors' release
(``train_test_ours/train_test_SGN_ICCV_19``) with the defaults of its training script
(1 input channel, 3 out, 32 start channels, 2 extra main-stream blocks, zero padding, no
normalisation). With ``s`` the start channels, on the (H, W) mosaic:

* three pixel-unshuffles (PyTorch's channel order) of the mosaic: by 8 (64 channels),
  by 4 (16) and by 2 (4);
* top (1/8 resolution): conv 64 -> 8s, residual block, conv 8s -> 8s, pixel shuffle x2;
* middle (1/4): conv 16 -> 4s, concatenated with the top's 2s channels (own first),
  conv 6s -> 4s, residual block, conv 4s -> 4s, pixel shuffle x2;
* bottom (1/2): conv 4 -> 2s, concatenated with the middle's s channels, conv 3s -> 2s,
  residual block, conv 2s -> 2s, pixel shuffle x2;
* main (full resolution): conv 1 -> s, concatenated with the bottom's s/2 channels,
  conv 3s/2 -> s, 3 + 2 convs s -> s, conv s -> 3.

"conv" is a 3x3 convolution with bias and zero padding 1 followed by LeakyReLU(0.2),
the last one (to RGB) included. A residual block is conv + LeakyReLU, conv + LeakyReLU,
conv, plus the block's input, then LeakyReLU(0.2). Parameters: 3,604,963 (the
reference's count). Initialisation as the reference's script: kernels from N(0, 0.02),
biases PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

Output: the zoo's contract clips to [0, 1] with a straight-through gradient
(`jaxdark.models.sid_unet.clip_straight_through`); ``unclipped`` is the reference's
forward pass. Input sides must be multiples of 8.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdark.models import torch_init
from jaxdark.models.contract import check_input
from jaxdark.models.ops import pixel_shuffle, pixel_unshuffle
from jaxdark.models.registry import register
from jaxdark.models.sid_unet import clip_straight_through

SLOPE = 0.2
INIT_STD = 0.02


class ConvAct(nnx.Module):
    """3x3 convolution with bias, then LeakyReLU(0.2)."""

    def __init__(self, in_features: int, out_features: int, *, dtype, rngs: nnx.Rngs):
        self.conv = torch_init.conv(
            in_features, out_features, 3, kernel_std=INIT_STD, dtype=dtype, rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.leaky_relu(self.conv(x), SLOPE)


class ResidualBlock(nnx.Module):
    """Three 3x3 convolutions (LeakyReLU after the first two), plus the input, LeakyReLU."""

    def __init__(self, features: int, *, dtype, rngs: nnx.Rngs):
        self.conv1 = ConvAct(features, features, dtype=dtype, rngs=rngs)
        self.conv2 = ConvAct(features, features, dtype=dtype, rngs=rngs)
        self.conv3 = torch_init.conv(
            features, features, 3, kernel_std=INIT_STD, dtype=dtype, rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.conv3(self.conv2(self.conv1(x)))
        return jax.nn.leaky_relu(y + x, SLOPE)


@register("sgn")
class SGN(nnx.Module):
    """SGN: top-down self-guidance over 1/8, 1/4, 1/2 and full-resolution branches.

    Args:
      start_channels: channels of the full-resolution stream (reference: 32; even).
      main_blocks: extra convolutions of the main stream beyond its first three
        (reference: 2).
      dtype: compute dtype (parameters stay float32).
      rngs: random streams for initialisation.
    """

    input_multiple = 8

    def __init__(
        self,
        *,
        start_channels: int = 32,
        main_blocks: int = 2,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        s, m = int(start_channels), int(main_blocks)
        if s < 2 or s % 2 or m < 0:
            raise ValueError(
                f"sgn needs an even start_channels >= 2 and main_blocks >= 0, got "
                f"start_channels={s}, main_blocks={m}"
            )
        self.start_channels, self.main_blocks = s, m
        kw = dict(dtype=dtype, rngs=rngs)
        self.top_in = ConvAct(64, 8 * s, **kw)
        self.top_res = ResidualBlock(8 * s, **kw)
        self.top_out = ConvAct(8 * s, 8 * s, **kw)
        self.mid_in = ConvAct(16, 4 * s, **kw)
        self.mid_fuse = ConvAct(6 * s, 4 * s, **kw)
        self.mid_res = ResidualBlock(4 * s, **kw)
        self.mid_out = ConvAct(4 * s, 4 * s, **kw)
        self.bot_in = ConvAct(4, 2 * s, **kw)
        self.bot_fuse = ConvAct(3 * s, 2 * s, **kw)
        self.bot_res = ResidualBlock(2 * s, **kw)
        self.bot_out = ConvAct(2 * s, 2 * s, **kw)
        self.main_in = ConvAct(1, s, **kw)
        self.main_fuse = ConvAct(s + s // 2, s, **kw)
        self.main_convs = nnx.List([ConvAct(s, s, **kw) for _ in range(3 + m)])
        self.main_out = ConvAct(s, 3, **kw)

    def config(self) -> dict:
        """The architecture sizes (constructor arguments) that rebuild this network."""
        return {"start_channels": self.start_channels, "main_blocks": self.main_blocks}

    def unclipped(self, x: jax.Array) -> jax.Array:
        """The reference's forward pass: (B, H, W, 1) mosaic -> (B, H, W, 3), not clipped."""
        top = self.top_out(self.top_res(self.top_in(pixel_unshuffle(x, 8))))
        mid = self.mid_in(pixel_unshuffle(x, 4))
        mid = self.mid_fuse(jnp.concatenate([mid, pixel_shuffle(top, 2)], axis=-1))
        mid = self.mid_out(self.mid_res(mid))
        bot = self.bot_in(pixel_unshuffle(x, 2))
        bot = self.bot_fuse(jnp.concatenate([bot, pixel_shuffle(mid, 2)], axis=-1))
        bot = self.bot_out(self.bot_res(bot))
        h = self.main_fuse(jnp.concatenate([self.main_in(x), pixel_shuffle(bot, 2)], axis=-1))
        for layer in self.main_convs:
            h = layer(h)
        return self.main_out(h)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Restore (B, H, W, 1) amplified mosaics to (B, H, W, 3) sRGB in [0, 1]."""
        check_input(x.shape, self.input_multiple, "sgn")
        rgb = self.unclipped(x)
        return clip_straight_through(rgb.astype(jnp.float32)).astype(x.dtype)

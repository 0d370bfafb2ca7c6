"""LLPackNet (Lamba, Balaji and Mitra, "Towards Fast and Light-Weight Restoration of Dark
Images", BMVC 2020).

Written from the layer table of the PyTorch definition in the authors' release
(``github.com/MohitLamba94/LLPackNet``, ``network.py``; its constructor takes no
arguments). Every convolution is weight-normalised (`jaxdark.models.layers.WNConv`:
``w = g * v / ||v||`` per output channel), stride 1, zero-padded to keep the size:

* pack: the (H, W) mosaic is pixel-unshuffled by 2 (PyTorch's order: R, G(0, 1),
  G(1, 0), B), then each of the 4 planes by 8 into 64 channels at 1/16 resolution;
* one 3x3 conv 64 -> 64 (bias) + ReLU per plane, the four concatenated (R, G, G, B),
  a 1x1 conv 256 -> 64 (no bias);
* three residual dense blocks in a chain, their outputs concatenated, a 1x1 conv
  192 -> 64 (no bias), plus the chain's input;
* pixel shuffle x2 to 16 channels at 1/8 resolution, a residual dense block of 16
  features, a 3x3 conv 16 -> 192 (bias);
* unpack: the 192 channels are 8 x 8 x 3 (row offset, column offset, colour), each an
  8x8 block of the full-resolution RGB image; then a sigmoid.

A residual dense block of C features: six layers, each a 3x3 conv (no bias) + ReLU
adding 32 channels to the running concatenation (C, C + 32, ..., C + 192), then a 1x1
conv C + 192 -> C (no bias), plus the block's input.

Parameters: 1,170,640 (the reference's count: ``v``, ``g`` and biases).
Initialisation as the reference: PyTorch's default draw for ``v`` and the biases
(U(-1/sqrt(fan_in), 1/sqrt(fan_in))) and ``g = ||v||``. The sigmoid keeps the output in
(0, 1), so no clip is needed. Input sides must be multiples of 16.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdark.models.contract import check_input
from jaxdark.models.ops import pixel_shuffle, pixel_unshuffle
from jaxdark.models.registry import register
from jaxdark.models.sid_unet import depth_to_space
from jaxdark.models.torch_init import wn_conv

GROWTH = 32
DENSE_LAYERS = 6


class ResidualDenseBlock(nnx.Module):
    """Six dense 3x3 conv + ReLU layers (growth 32), a 1x1 fusion conv, plus the input."""

    def __init__(self, features: int, *, dtype, rngs: nnx.Rngs):
        widths = [features + GROWTH * i for i in range(DENSE_LAYERS)]
        self.dense = nnx.List(
            [wn_conv(c, GROWTH, 3, bias=False, dtype=dtype, rngs=rngs) for c in widths]
        )
        self.fuse = wn_conv(
            features + GROWTH * DENSE_LAYERS, features, 1, bias=False, dtype=dtype, rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        h = x
        for layer in self.dense:
            h = jnp.concatenate([h, jax.nn.relu(layer(h))], axis=-1)
        return self.fuse(h) + x


@register("llpacknet")
class LLPackNet(nnx.Module):
    """LLPackNet: packs the mosaic 16x, restores at 1/16 and 1/8 resolution, unpacks 8x.

    Args:
      dtype: compute dtype (parameters stay float32).
      rngs: random streams for initialisation.
    """

    input_multiple = 16

    def __init__(self, *, dtype: jnp.dtype | None = None, rngs: nnx.Rngs):
        kw = dict(dtype=dtype, rngs=rngs)
        self.plane_r = wn_conv(64, 64, 3, bias=True, **kw)
        self.plane_g1 = wn_conv(64, 64, 3, bias=True, **kw)
        self.plane_g2 = wn_conv(64, 64, 3, bias=True, **kw)
        self.plane_b = wn_conv(64, 64, 3, bias=True, **kw)
        self.merge_planes = wn_conv(256, 64, 1, bias=False, **kw)
        self.rdb1 = ResidualDenseBlock(64, **kw)
        self.rdb2 = ResidualDenseBlock(64, **kw)
        self.rdb3 = ResidualDenseBlock(64, **kw)
        self.merge_rdbs = wn_conv(192, 64, 1, bias=False, **kw)
        self.rdb_fine = ResidualDenseBlock(16, **kw)
        self.to_blocks = wn_conv(16, 192, 3, bias=True, **kw)

    def config(self) -> dict:
        """The architecture sizes (constructor arguments): LLPackNet has none."""
        return {}

    def __call__(self, x: jax.Array) -> jax.Array:
        """Restore (B, H, W, 1) amplified mosaics to (B, H, W, 3) sRGB in (0, 1)."""
        check_input(x.shape, self.input_multiple, "llpacknet")
        in_dtype = x.dtype
        packed = pixel_unshuffle(x, 2)
        planes = [self.plane_r, self.plane_g1, self.plane_g2, self.plane_b]
        feats = [
            jax.nn.relu(conv(pixel_unshuffle(packed[..., i : i + 1], 8)))
            for i, conv in enumerate(planes)
        ]
        h = self.merge_planes(jnp.concatenate(feats, axis=-1))
        r1 = self.rdb1(h)
        r2 = self.rdb2(r1)
        r3 = self.rdb3(r2)
        h = self.merge_rdbs(jnp.concatenate([r1, r2, r3], axis=-1)) + h
        blocks = self.to_blocks(self.rdb_fine(pixel_shuffle(h, 2)))
        rgb = jax.nn.sigmoid(depth_to_space(blocks.astype(jnp.float32), 8))
        return rgb.astype(in_dtype)

"""DID (Maharjan, Li, Li, Xu, Ma and Li, "Improving Extreme Low-light Image Denoising via
Residual Learning", ICME 2019), as Lamba & Mitra retrained it for their Table 1.

Written from the layer table of the PyTorch definition in the authors' release
(``train_test_ours/train_test_DID_ICME_19``, an EDSR-style network) with the defaults
of its training script (32 residual blocks of 64 features, upscale 2, 4 colours in, 3
out):

* the (H, W) mosaic is pixel-unshuffled by 2 into 4 channels at half resolution, in
  PyTorch's order R, G(0, 1), G(1, 0), B;
* head: a 3x3 convolution 4 -> 64;
* body: 32 residual blocks (3x3 conv, LeakyReLU(0.2), 3x3 conv, plus the block's input;
  residual scale 1), then a 3x3 conv 64 -> 64, plus the head's output;
* tail: a 3x3 conv 64 -> 256, pixel shuffle by 2 (PyTorch's order) to 64 channels at full
  resolution, a 3x3 conv 64 -> 3. No output activation.

Every convolution has a bias and zero padding 1. Parameters: 2,570,691, as the reference
counts them (``sum(p.numel() for p in model.parameters())``). 18,560 of them belong to
a squeeze-and-excitation block (64 -> 4 -> 64, two dense layers with biases) that each
residual block of the reference constructs and never calls; they are kept here, unused,
so that the count and a checkpoint's layout are the reference's. Initialisation:
PyTorch's defaults (`jaxdark.models.torch_init`), as the reference's script applies
none of its own.

Output: the zoo's contract clips to [0, 1]; the clip passes gradients straight through
(`jaxdark.models.sid_unet.clip_straight_through`), so training sees the reference's
unclipped gradient. ``unclipped`` is the reference's forward pass.
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
SE_REDUCTION = 16


class UnusedSqueezeExcite(nnx.Module):
    """The reference's squeeze-and-excitation parameters (dense C -> C/16 -> C), never applied."""

    def __init__(self, features: int, *, rngs: nnx.Rngs):
        self.fc1 = torch_init.linear(features, features // SE_REDUCTION, rngs=rngs)
        self.fc2 = torch_init.linear(features // SE_REDUCTION, features, rngs=rngs)


class ResBlock(nnx.Module):
    """conv3x3 -> LeakyReLU(0.2) -> conv3x3, plus the input."""

    def __init__(self, features: int, *, dtype, rngs: nnx.Rngs):
        self.conv1 = torch_init.conv(features, features, 3, dtype=dtype, rngs=rngs)
        self.conv2 = torch_init.conv(features, features, 3, dtype=dtype, rngs=rngs)
        self.squeeze_excite = UnusedSqueezeExcite(features, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.conv2(jax.nn.leaky_relu(self.conv1(x), SLOPE)) + x


@register("did")
class DID(nnx.Module):
    """DID: EDSR-style residual network on the 2x2-unshuffled mosaic.

    Args:
      blocks: residual blocks in the body (reference: 32).
      features: channels of the body (reference: 64; a multiple of 16).
      dtype: compute dtype (parameters stay float32).
      rngs: random streams for initialisation.
    """

    input_multiple = 2

    def __init__(
        self,
        *,
        blocks: int = 32,
        features: int = 64,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        blocks, features = int(blocks), int(features)
        if blocks < 1 or features < SE_REDUCTION or features % SE_REDUCTION:
            raise ValueError(
                f"did needs blocks >= 1 and features a positive multiple of {SE_REDUCTION}, "
                f"got blocks={blocks}, features={features}"
            )
        self.blocks, self.features = blocks, features
        kw = dict(dtype=dtype, rngs=rngs)
        self.head = torch_init.conv(4, features, 3, **kw)
        self.body = nnx.List([ResBlock(features, **kw) for _ in range(blocks)])
        self.body_out = torch_init.conv(features, features, 3, **kw)
        self.upsample = torch_init.conv(features, 4 * features, 3, **kw)
        self.to_rgb = torch_init.conv(features, 3, 3, **kw)

    def config(self) -> dict:
        """The architecture sizes (constructor arguments) that rebuild this network."""
        return {"blocks": self.blocks, "features": self.features}

    def unclipped(self, x: jax.Array) -> jax.Array:
        """The reference's forward pass: (B, H, W, 1) mosaic -> (B, H, W, 3), not clipped."""
        h = self.head(pixel_unshuffle(x, 2))
        r = h
        for block in self.body:
            r = block(r)
        r = self.body_out(r) + h
        return self.to_rgb(pixel_shuffle(self.upsample(r), 2))

    def __call__(self, x: jax.Array) -> jax.Array:
        """Restore (B, H, W, 1) amplified mosaics to (B, H, W, 3) sRGB in [0, 1]."""
        check_input(x.shape, self.input_multiple, "did")
        rgb = self.unclipped(x)
        return clip_straight_through(rgb.astype(jnp.float32)).astype(x.dtype)

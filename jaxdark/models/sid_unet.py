"""SID's U-Net (Chen, Chen, Xu and Koltun, "Learning to See in the Dark", CVPR 2018).

Written from the paper's description of the network (its Fig. 3 and section 4):

* the RGGB mosaic is packed 2x2 into 4 channels at half resolution, in SID's channel
  order R, G (top right), B, G (bottom left);
* encoder: five levels of 32, 64, 128, 256, 512 channels, each two 3x3 convolutions
  ('same' padding, bias) followed by LeakyReLU(0.2), with 2x2 max-pooling between levels;
* decoder: four levels, each a 2x2, stride-2 transposed convolution (with bias) halving
  the channels, concatenated with the encoder's output of that resolution (upsampled
  first, skip second), then two 3x3 convolutions + LeakyReLU(0.2);
* a 1x1 convolution to 12 channels and a depth-to-space x2 (TensorFlow's
  ``depth_to_space`` channel order) to 3 channels at full resolution.

Parameters: 7,760,748 (convolutions 7,760,268 + the four transposed convolutions' biases
480). Initialisation: Glorot-uniform convolution kernels with zero biases (TF-Slim's
default, which SID's release uses), transposed-convolution kernels drawn from a normal
distribution truncated at two standard deviations, std 0.02, with zero biases.

Output range: SID clips its output to [0, 1] only when it saves an image and trains on
the unclipped output. Here the forward pass always clips (the zoo's contract), and the
gradient passes through the clip unchanged (a straight-through clip), so training sees
the gradient SID's training sees: for an L1 loss against targets in [0, 1] the two agree
wherever the output leaves [0, 1].

Input sides must be multiples of 32 (2 for the packing times 16 for four poolings;
``2 ** len(widths)`` in general).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdark.models.contract import check_input
from jaxdark.models.registry import register

SLOPE = 0.2


@jax.custom_jvp
def clip_straight_through(x: jax.Array) -> jax.Array:
    """``clip(x, 0, 1)`` whose derivative is taken as 1 everywhere."""
    return jnp.clip(x, 0.0, 1.0)


@clip_straight_through.defjvp
def _clip_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return clip_straight_through(x), t


def pack_bayer(x: jax.Array) -> jax.Array:
    """(B, H, W, 1) RGGB mosaic -> (B, H/2, W/2, 4) channels R, G(0, 1), B, G(1, 0)."""
    return jnp.concatenate(
        [x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2], x[:, 1::2, 0::2]], axis=-1
    )


def depth_to_space(x: jax.Array, r: int) -> jax.Array:
    """TensorFlow's ``depth_to_space``: channel ``(i * r + j) * C + c`` -> pixel (i, j), c."""
    b, h, w, crr = x.shape
    c = crr // (r * r)
    x = x.reshape(b, h, w, r, r, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h * r, w * r, c)


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max-pooling, stride 2."""
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class DoubleConv(nnx.Module):
    """Two 3x3 convolutions, each followed by LeakyReLU(0.2)."""

    def __init__(self, in_features: int, out_features: int, *, dtype, rngs: nnx.Rngs):
        kw = dict(
            kernel_size=(3, 3),
            padding="SAME",
            kernel_init=nnx.initializers.xavier_uniform(),
            bias_init=nnx.initializers.zeros_init(),
            dtype=dtype,
            rngs=rngs,
        )
        self.conv1 = nnx.Conv(in_features, out_features, **kw)
        self.conv2 = nnx.Conv(out_features, out_features, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.leaky_relu(self.conv1(x), SLOPE)
        return jax.nn.leaky_relu(self.conv2(x), SLOPE)


class UpConv2x2(nnx.Module):
    """2x2 transposed convolution with stride 2 (each input pixel -> one 2x2 output block)."""

    def __init__(self, in_features: int, out_features: int, *, dtype, rngs: nnx.Rngs):
        init = nnx.initializers.truncated_normal(stddev=0.02)
        self.kernel = nnx.Param(init(rngs.params(), (2, 2, in_features, out_features)))
        self.bias = nnx.Param(jnp.zeros((out_features,), jnp.float32))
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = self.dtype or x.dtype
        k, bias = self.kernel[...].astype(dtype), self.bias[...].astype(dtype)
        y = jnp.einsum("bhwc,ijco->bhiwjo", x.astype(dtype), k)
        b, h, _, w, _, o = y.shape
        return y.reshape(b, 2 * h, 2 * w, o) + bias


@register("sid_unet")
class SIDUNet(nnx.Module):
    """SID's U-Net on the packed Bayer mosaic.

    Args:
      widths: channels per encoder level, finest first (SID: 32, 64, 128, 256, 512);
        the decoder mirrors them.
      dtype: compute dtype (parameters stay float32), e.g. ``jnp.bfloat16``.
      rngs: random streams for initialisation.
    """

    input_multiple = 32

    def __init__(
        self,
        *,
        widths: tuple[int, ...] = (32, 64, 128, 256, 512),
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        widths = tuple(int(c) for c in widths)
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"widths needs >= 2 positive channel counts, got {widths}")
        self.widths = widths
        self.input_multiple = 2 ** len(widths)
        self.dtype = dtype
        kw = dict(dtype=dtype, rngs=rngs)
        ins = (4, *widths[:-1])
        self.down = nnx.List([DoubleConv(i, o, **kw) for i, o in zip(ins, widths, strict=True)])
        pairs = list(zip(widths[:0:-1], widths[-2::-1], strict=True))  # (coarse, finer)
        self.up = nnx.List([UpConv2x2(i, o, **kw) for i, o in pairs])
        self.up_convs = nnx.List([DoubleConv(2 * o, o, **kw) for _, o in pairs])
        self.to_rgb = nnx.Conv(
            widths[0],
            12,
            kernel_size=(1, 1),
            kernel_init=nnx.initializers.xavier_uniform(),
            bias_init=nnx.initializers.zeros_init(),
            dtype=dtype,
            rngs=rngs,
        )

    def config(self) -> dict:
        """The architecture sizes (constructor arguments) that rebuild this network."""
        return {"widths": list(self.widths)}

    def __call__(self, x: jax.Array) -> jax.Array:
        """Restore (B, H, W, 1) amplified mosaics to (B, H, W, 3) sRGB in [0, 1]."""
        check_input(x.shape, self.input_multiple, "sid_unet")
        in_dtype = x.dtype
        h = pack_bayer(x)
        skips = []
        for i, block in enumerate(self.down):
            if i:
                h = max_pool_2x2(h)
            h = block(h)
            skips.append(h)
        for up, block, skip in zip(self.up, self.up_convs, reversed(skips[:-1]), strict=True):
            h = block(jnp.concatenate([up(h), skip.astype(h.dtype)], axis=-1))
        rgb = depth_to_space(self.to_rgb(h), 2)
        return clip_straight_through(rgb.astype(jnp.float32)).astype(in_dtype)

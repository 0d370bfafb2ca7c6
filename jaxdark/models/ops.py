"""Pixel (un)shuffle and channel shuffle in NHWC with PyTorch's channel orders.

The reference (PyTorch's PixelUnshuffle / PixelShuffle and its channel shuffle) fixes
the orders: pixel unshuffle by r puts source pixel (c, y*r + i, x*r + j) in output
channel ``c*r*r + i*r + j``; pixel shuffle is its exact inverse; the 2-group channel
shuffle sends old channel ``g*(C/2) + k`` to ``k*2 + g``. These functions keep those
orders on the last (channel) axis.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def pixel_unshuffle(x: jax.Array, r: int) -> jax.Array:
    """Space-to-depth: (B, H, W, C) -> (B, H/r, W/r, C*r*r), torch channel order."""
    b, h, w, c = x.shape
    if h % r or w % r:
        raise ValueError(f"pixel_unshuffle: spatial size {h}x{w} is not divisible by {r}")
    x = x.reshape(b, h // r, r, w // r, r, c)
    x = jnp.transpose(x, (0, 1, 3, 5, 2, 4))  # (b, h', w', c, i, j)
    return x.reshape(b, h // r, w // r, c * r * r)


def pixel_shuffle(x: jax.Array, r: int) -> jax.Array:
    """Depth-to-space: (B, H, W, C*r*r) -> (B, H*r, W*r, C), inverse of `pixel_unshuffle`."""
    b, h, w, crr = x.shape
    if crr % (r * r):
        raise ValueError(f"pixel_shuffle: {crr} channels are not divisible by {r}*{r}")
    c = crr // (r * r)
    x = x.reshape(b, h, w, c, r, r)
    x = jnp.transpose(x, (0, 1, 4, 2, 5, 3))  # (b, h, i, w, j, c)
    return x.reshape(b, h * r, w * r, c)


def channel_shuffle(x: jax.Array, groups: int = 2) -> jax.Array:
    """Channel shuffle: view channels as (groups, C/groups), transpose, flatten."""
    *lead, c = x.shape
    if c % groups:
        raise ValueError(f"channel_shuffle: {c} channels are not divisible by {groups} groups")
    x = x.reshape(*lead, groups, c // groups)
    x = jnp.swapaxes(x, -1, -2)
    return x.reshape(*lead, c)

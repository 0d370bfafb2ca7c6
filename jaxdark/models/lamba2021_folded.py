"""Fast inference: the network with weight norm folded away and its slow convolutions recast.

`fold_params(model)` runs once at load time. It evaluates every weight-normalised kernel
``g * v / ||v||`` (with the model's own code, so the kernels are the ones the model uses)
and rewrites the convolutions that XLA runs badly into equivalent ones it runs well:

* the grouped ``conv32_8_cat.0`` (128 -> 32, 4 groups, after a channel shuffle) becomes a
  dense convolution with a block-diagonal kernel whose input channels are permuted so
  that it reads ``concat[l8, r8]`` directly (no channel shuffle);
* the grouped ``conv32x.0`` (1024 -> 128, 128 groups of 8) becomes a per-group
  contraction with all nine taps followed by a sum of nine shifted planes;
* the 5x5 convolutions on 4 and 24 channels at half resolution (``conv2x`` and
  ``conv_2_8_32``) are recast on the space-to-depth (factor 2) grid as 3x3 convolutions
  on 16 and 96 channels, which the convolution kernels vectorise well; the pixel
  shuffles around them become one rearrangement each.

`apply_folded(folded, x)` is a pure, jitted function of the folded pytree and a
(B, H, W, 1) mosaic, returning (B, H, W, 3) in [0, 1] like ``model(x)``: within 1e-5 in
float32. The convolutions multiply in the dtype of the folded kernels
(`fold_params(model, jnp.bfloat16)` for bfloat16 on GPU) and accumulate in float32;
the output has the input's dtype. Same shapes and dtypes never recompile.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdark.models.lamba2021 import LRELU_SLOPE, DarkRestorationNet, check_input_shape
from jaxdark.models.layers import WNConv, block_diagonal_kernel
from jaxdark.models.ops import channel_shuffle, pixel_shuffle, pixel_unshuffle
from jaxdark.models.registry import register_inference

Folded = dict[str, Any]


# --------------------------------------------------------------------------- kernels


def grouped_to_dense(w: np.ndarray, groups: int) -> np.ndarray:
    """(kh, kw, in/groups, out) grouped HWIO kernel -> equivalent (kh, kw, in, out) dense one
    (`jaxdark.models.layers.block_diagonal_kernel`, as a host array)."""
    return np.asarray(block_diagonal_kernel(jnp.asarray(w), groups))


def channel_shuffle_permutation(channels: int, groups: int = 2) -> np.ndarray:
    """``perm[new] = old`` for `jaxdark.models.ops.channel_shuffle` on ``channels`` channels."""
    per = channels // groups
    new = np.arange(channels)
    return (new % groups) * per + new // groups


def space_to_depth_kernel(w: np.ndarray, r: int) -> np.ndarray:
    """A 'same' conv kernel recast on the space-to-depth grid of factor ``r``.

    If ``y = conv(x, w)`` (stride 1, zero padding (k-1)/2, H and W multiples of ``r``),
    then ``pixel_unshuffle(y, r) = conv(pixel_unshuffle(x, r), K)`` with ``K`` returned
    here: shape (k', k', in*r*r, out*r*r), k' = 2*ceil(p/r)+1, zero padding (k'-1)/2,
    channel orders those of `jaxdark.models.ops.pixel_unshuffle`.
    """
    k, _, cin, cout = w.shape
    p = (k - 1) // 2
    pb = -(-p // r)  # kernel radius in blocks
    kb = 2 * pb + 1
    out = np.zeros((kb, kb, cin * r * r, cout * r * r), w.dtype)
    ci = np.arange(cin) * r * r
    co = np.arange(cout) * r * r
    for a in range(r):  # output row offset inside the block
        for b in range(r):
            for dy in range(-p, p + 1):
                for dx in range(-p, p + 1):
                    by, i = divmod(a + dy, r)
                    bx, j = divmod(b + dx, r)
                    out[by + pb, bx + pb, (ci + i * r + j)[:, None], (co + a * r + b)[None, :]] += (
                        w[dy + p, dx + p]
                    )
    return out


@jax.jit
def _kernels_of(convs: list[WNConv]) -> list[jax.Array]:
    return [c.kernel() for c in convs]


def effective_kernels(model: DarkRestorationNet) -> dict[int, np.ndarray]:
    """``id(conv) -> g * v / ||v||`` for every `WNConv` of ``model``, in one compiled call.

    The kernels come from the layers' own `WNConv.kernel`, so they are bit for bit the
    ones the model convolves with.
    """
    convs = [node for _, node in nnx.iter_graph(model) if isinstance(node, WNConv)]
    kernels = _kernels_of(convs)
    return {id(c): np.asarray(k, np.float32) for c, k in zip(convs, kernels, strict=True)}


REWRITES = ("dense_cat", "nine_planes", "space_to_depth")
# The rewrites each backend uses by default. They were chosen by measurement on XLA:CPU;
# on GPUs and TPUs they are not measured yet, so those keep the same default until a
# measurement (benchmarks.bench_e2e / the GPU check) says otherwise.
DEFAULT_REWRITES: dict[str, tuple[str, ...]] = {
    "cpu": REWRITES,
    "gpu": REWRITES,
    "tpu": REWRITES,
}


def default_rewrites(backend: str | None = None) -> tuple[str, ...]:
    """The fast-path rewrites used on ``backend`` (default: JAX's default backend)."""
    backend = backend or jax.default_backend()
    return DEFAULT_REWRITES.get(backend, REWRITES)


def fold_params(
    model: DarkRestorationNet,
    dtype: jnp.dtype | None = None,
    rewrites: tuple[str, ...] | None = None,
) -> Folded:
    """The kernels and biases of ``model`` with weight norm folded in, recast for speed.

    Returns a pytree of device arrays for `apply_folded`. ``dtype`` (default float32)
    is the dtype of the kernels and so of the convolutions' operands; biases,
    accumulation and activations stay float32. With ``jnp.bfloat16`` the 4K output is
    within ~0.006 of float32 (docs/performance.md); bfloat16 activations would double that.

    ``rewrites`` picks the recasts (any of `REWRITES`; default `default_rewrites`, per
    backend): ``"dense_cat"`` (block-diagonal dense ``conv32_8_cat.0``, else a grouped
    convolution after the channel shuffle), ``"nine_planes"`` (``conv32x.0`` as a
    contraction and a sum of nine planes, else a grouped convolution),
    ``"space_to_depth"`` (the half-resolution 5x5 convolutions on the space-to-depth
    grid, else as they are). Every choice computes the same function; `apply_folded`
    follows the pytree's keys.
    """
    dtype = jnp.float32 if dtype is None else dtype
    rewrites = default_rewrites() if rewrites is None else tuple(rewrites)
    unknown = set(rewrites) - set(REWRITES)
    if unknown:
        raise ValueError(f"unknown rewrites {sorted(unknown)}; expected some of {REWRITES}")
    kernels = effective_kernels(model)

    def _conv_kernel(conv: WNConv) -> tuple[np.ndarray, np.ndarray | None]:
        b = None if conv.bias is None else np.asarray(conv.bias[...], np.float32)
        return kernels[id(conv)], b

    def plain(conv) -> dict[str, np.ndarray]:
        w, b = _conv_kernel(conv)
        return {"w": w} if b is None else {"w": w, "b": b}

    # conv32x.0: 1024 -> 128 in 128 groups of 8 input channels -> (3, 3, 128, 8) weights.
    w, b = _conv_kernel(model.conv32x[0])
    g0 = model.conv32x[0].groups
    if w.shape[3] != g0:
        raise ValueError(f"conv32x.0: expected one output channel per group, got {w.shape}")
    if "nine_planes" in rewrites:
        conv32x0 = {"w": np.ascontiguousarray(w.transpose(0, 1, 3, 2)), "b": b}
    else:
        conv32x0 = {"w_grouped": w, "b": b}

    # conv32_8_cat.0: grouped conv after channel_shuffle(concat[l8, r8]) -> dense conv on
    # concat[l8, r8] with the shuffle folded into the input-channel order.
    w, b = _conv_kernel(model.conv32_8_cat[0])
    if "dense_cat" in rewrites:
        dense = grouped_to_dense(w, model.conv32_8_cat[0].groups)
        perm = channel_shuffle_permutation(dense.shape[2], 2)
        unshuffled = np.zeros_like(dense)
        unshuffled[:, :, perm, :] = dense
        cat0 = {"w": unshuffled, "b": b}
    else:
        cat0 = {"w_grouped": w, "b": b}

    # Half-resolution 5x5 convs -> 3x3 convs on the factor-2 space-to-depth grid.
    s2d = "space_to_depth" in rewrites
    w, b = _conv_kernel(model.conv2x)
    conv2x = {"w": space_to_depth_kernel(w, 2), "b": np.repeat(b, 4)} if s2d else {"w": w, "b": b}
    w, b = _conv_kernel(model.conv_2_8_32)
    conv_2_8_32 = (
        {"w": space_to_depth_kernel(w, 2), "b": np.repeat(b, 4)} if s2d else {"w": w, "b": b}
    )

    folded = {
        "conv32x0": conv32x0,
        "conv32x1": plain(model.conv32x[1]),
        "rdb": [
            {
                "dense": [plain(layer.conv) for layer in block.dense_layers],
                "conv_1x1": plain(block.conv_1x1),
            }
            for block in model.rdb
        ],
        "rdball": plain(model.rdball),
        "conv_rdb8x": plain(model.conv_rdb8x),
        "res1": plain(model.resblock8x.conv1),
        "res2": plain(model.resblock8x.conv2),
        "cat0": cat0,
        "cat1": plain(model.conv32_8_cat[1]),
        ("conv2x_s2d" if s2d else "conv2x"): conv2x,
        ("conv_2_8_32_s2d" if s2d else "conv_2_8_32"): conv_2_8_32,
    }
    return {
        key: jax.tree_util.tree_map_with_path(
            lambda path, a: jnp.asarray(a, jnp.float32 if path[-1].key == "b" else dtype),
            value,
        )
        for key, value in folded.items()
    }


# --------------------------------------------------------------------------- forward


def _conv(x: jax.Array, p: dict[str, jax.Array], precision: str | None) -> jax.Array:
    """Stride-1 'same' convolution (NHWC, HWIO) plus bias if present.

    The operands are cast to the kernel's dtype; accumulation and the result are float32
    (so bfloat16 kernels mean bfloat16 multiplies, float32 sums and activations).
    """
    w = p["w"] if "w" in p else p["w_grouped"]
    groups = x.shape[-1] // w.shape[2]  # 1 for dense kernels
    pad = (w.shape[0] - 1) // 2
    y = jax.lax.conv_general_dilated(
        x.astype(w.dtype),
        w,
        window_strides=(1, 1),
        padding=((pad, pad), (pad, pad)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
        precision=precision,
        preferred_element_type=jnp.float32,
    )
    return y + p["b"] if "b" in p else y


def _grouped_small(x: jax.Array, p: dict[str, jax.Array], precision: str | None) -> jax.Array:
    """3x3 grouped conv with one output channel per group, in two cheap passes.

    ``p["w"]`` is (3, 3, groups, in_per_group); group g reads input channels
    ``g*in_per_group ... (g+1)*in_per_group - 1``. Pass 1 contracts each group's input
    channels with all nine taps at once (B, H, W, 9, groups); pass 2 adds the nine tap
    planes at their shifts. XLA:CPU runs this in ~30 ms at 4K where its grouped
    convolution takes ~200 ms (docs/performance.md).
    """
    w = p["w"]
    kh, kw, groups, per = w.shape
    b, h, wd, _ = x.shape
    x = x.astype(w.dtype).reshape(b, h, wd, groups, per)
    z = jnp.einsum(
        "bhwgc,tgc->bhwtg",
        x,
        w.reshape(kh * kw, groups, per),
        precision=precision,
        preferred_element_type=jnp.float32,
    )
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    z = jnp.pad(z, ((0, 0), (ph, ph), (pw, pw), (0, 0), (0, 0)))
    acc = p["b"]
    for dy in range(kh):
        for dx in range(kw):
            acc = acc + z[:, dy : dy + h, dx : dx + wd, dy * kw + dx]
    return acc


def _lrelu(x: jax.Array) -> jax.Array:
    return jax.nn.leaky_relu(x, LRELU_SLOPE)


def _forward(folded: Folded, low: jax.Array, precision: str | None = None) -> jax.Array:
    """The network on folded parameters; see the module docstring."""
    check_input_shape(low.shape)
    in_dtype = low.dtype

    def conv(x, p):
        return _conv(x, p, precision)

    low2x = pixel_unshuffle(low.astype(jnp.float32), 2)
    a = pixel_unshuffle(low2x, 16)
    if "w_grouped" in folded["conv32x0"]:
        a = conv(a, folded["conv32x0"])  # a grouped convolution, as the model has it
    else:
        a = _grouped_small(a, folded["conv32x0"], precision)
    x32 = conv(a, folded["conv32x1"])
    r = x32
    outs = []
    for block in folded["rdb"]:
        h = r
        n = len(block["dense"])
        for i, layer in enumerate(block["dense"]):
            # first layer: no activation; middle ones: LeakyReLU 0.2; last: slope 1
            a = h if i == 0 or i == n - 1 else _lrelu(h)
            h = jnp.concatenate([h, conv(a, layer)], axis=-1)
        r = conv(h, block["conv_1x1"]) + r
        outs.append(r)
    r8 = conv(jnp.concatenate(outs, axis=-1), folded["rdball"]) + x32
    r8 = conv(pixel_shuffle(r8, 4), folded["conv_rdb8x"])  # (B, H/8, W/8, 64)
    l8 = pixel_unshuffle(low2x, 4)
    l8 = conv(_lrelu(conv(l8, folded["res1"])), folded["res2"]) + l8
    if "w_grouped" in folded["cat0"]:  # the model's channel shuffle, a grouped convolution
        c = conv(channel_shuffle(jnp.concatenate([l8, r8], axis=-1), 2), folded["cat0"])
    else:  # conv32_8_cat.0 reads concat[l8, r8]: its kernel absorbed the channel shuffle
        c = conv(jnp.concatenate([l8, r8], axis=-1), folded["cat0"])
    c = _lrelu(conv(c, folded["cat1"]))  # (B, H/8, W/8, 192)
    # The half-resolution tail on the H/4 grid: every tensor is pixel_unshuffle(., 2) of
    # the reference's, and unshuffle_2(concat[a, c]) = concat[unshuffle_2(a), unshuffle_2(c)].
    if "conv2x" in folded:  # the 5x5 convolutions on the H/2 grid, as the model has them
        a2 = conv(low2x, folded["conv2x"])
        out2 = conv(jnp.concatenate([a2, pixel_shuffle(c, 4)], axis=-1), folded["conv_2_8_32"])
        return jnp.clip(pixel_shuffle(out2, 2), 0.0, 1.0).astype(in_dtype)
    c4 = pixel_unshuffle(pixel_shuffle(c, 4), 2)  # one rearrangement after fusion
    a4 = conv(pixel_unshuffle(low2x, 2), folded["conv2x_s2d"])
    out4 = conv(jnp.concatenate([a4, c4], axis=-1), folded["conv_2_8_32_s2d"])
    out = pixel_shuffle(pixel_shuffle(out4, 2), 2)  # (B, H, W, 3)
    return jnp.clip(out, 0.0, 1.0).astype(in_dtype)


@partial(jax.jit, static_argnames="precision")
def apply_folded(folded: Folded, low: jax.Array, precision: str | None = None) -> jax.Array:
    """Restore (B, H, W, 1) mosaics with `fold_params` output -> (B, H, W, 3) in [0, 1].

    ``precision`` is passed to every convolution (None: XLA's default, as the model
    uses; ``"highest"`` forces true float32 products on GPUs that would use TF32).
    """
    return _forward(folded, low, precision)


@register_inference("lamba2021")
def folded_inference(model: DarkRestorationNet, dtype: Any = None) -> tuple[Any, Folded]:
    """``(apply_folded, fold_params(model, dtype))``: how ``lamba2021`` restores."""
    return apply_folded, fold_params(model, dtype)

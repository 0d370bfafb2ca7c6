"""Training loss of the reference recipe: ``L1 + 0.2 * (1 - MS-SSIM)``.

MS-SSIM follows ``pytorch_msssim.ms_ssim`` operation for operation (11-tap Gaussian
window with sigma 1.5 applied separably without padding, K = (0.01, 0.03), 2x2
average pooling that zero-pads odd sides, ReLU on the per-level contrast terms,
five scales with the standard weights), so the two agree to float32 rounding. Images
are NHWC here. Where a side is shorter than the window, the Gaussian is skipped along
that side, as ``pytorch_msssim``'s filter does; unlike ``pytorch_msssim.ms_ssim`` we
accept such small images (it refuses sides <= 160), which lets tests train on tiny
crops.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_LOSS_WEIGHT = 0.2


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian taps (float32), centred on ``size // 2``."""
    if size % 2 != 1:
        raise ValueError(f"Gaussian window size must be odd, got {size}")
    coords = np.arange(size, dtype=np.float32) - np.float32(size // 2)
    g = np.exp(-(coords**2) / np.float32(2 * sigma**2)).astype(np.float32)
    return g / g.sum(dtype=np.float32)


def _band_matrix(n: int, taps: np.ndarray) -> np.ndarray:
    """(n - k + 1, n) matrix whose product with a length-n signal is its 'valid'
    correlation with the k ``taps``."""
    k = len(taps)
    m = np.zeros((n - k + 1, n), np.float32)
    for i in range(n - k + 1):
        m[i, i : i + k] = taps
    return m


def _filter_axis(x: jax.Array, taps: np.ndarray, axis: int) -> jax.Array:
    """'Valid' depthwise correlation of NHWC ``x`` with ``taps`` along ``axis`` (1 or 2).

    Computed as a product with a banded matrix: the same sums as a depthwise
    convolution, but forward and gradient are plain matrix products (on XLA:CPU the
    depthwise form's gradient made the loss 80% of a training step; this is ~9x faster).
    """
    n = x.shape[axis]
    if n < len(taps):  # as pytorch_msssim: smoothing along a too-short side is skipped
        return x
    band = jnp.asarray(_band_matrix(n, np.asarray(taps, np.float32)), x.dtype)
    spec = "bhwc,oh->bowc" if axis == 1 else "bhwc,ow->bhoc"
    return jnp.einsum(spec, x, band, precision=jax.lax.Precision.HIGHEST)


def _gaussian_filter(x: jax.Array, taps: np.ndarray) -> jax.Array:
    return _filter_axis(_filter_axis(x, taps, 1), taps, 2)


def _ssim_terms(
    x: jax.Array, y: jax.Array, taps: np.ndarray, data_range: float, k: tuple[float, float]
) -> tuple[jax.Array, jax.Array]:
    """Per-(image, channel) SSIM and contrast-structure means, each (B, C)."""
    c1 = (k[0] * data_range) ** 2
    c2 = (k[1] * data_range) ** 2
    mu1 = _gaussian_filter(x, taps)
    mu2 = _gaussian_filter(y, taps)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = _gaussian_filter(x * x, taps) - mu1_sq
    sigma2_sq = _gaussian_filter(y * y, taps) - mu2_sq
    sigma12 = _gaussian_filter(x * y, taps) - mu1_mu2
    cs_map = (2 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2)
    ssim_map = ((2 * mu1_mu2 + c1) / (mu1_sq + mu2_sq + c1)) * cs_map
    return ssim_map.mean(axis=(1, 2)), cs_map.mean(axis=(1, 2))


def _avg_pool2(x: jax.Array) -> jax.Array:
    """2x2 stride-2 average pooling, zero-padding odd sides by one on each side
    and counting the padding (``F.avg_pool2d(x, 2, padding=s % 2)``)."""
    _, h, w, _ = x.shape
    ph, pw = h % 2, w % 2
    x = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    oh, ow = (h + 2 * ph - 2) // 2 + 1, (w + 2 * pw - 2) // 2 + 1
    x = x[:, : 2 * oh, : 2 * ow, :]
    b, _, _, c = x.shape
    return x.reshape(b, oh, 2, ow, 2, c).sum(axis=(2, 4)) * 0.25


def ms_ssim(
    x: jax.Array,
    y: jax.Array,
    *,
    data_range: float = 1.0,
    win_size: int = 11,
    win_sigma: float = 1.5,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
    k: tuple[float, float] = (0.01, 0.03),
    reduce: bool = True,
) -> jax.Array:
    """Multi-scale SSIM of NHWC images ``x`` and ``y``.

    Returns the mean over images and channels (``reduce=True``), else one value per
    image (B,), like ``pytorch_msssim.ms_ssim(..., size_average=False)``.
    """
    if x.shape != y.shape:
        raise ValueError(f"ms_ssim needs images of equal shape, got {x.shape} and {y.shape}")
    if x.ndim != 4:
        raise ValueError(f"ms_ssim expects NHWC images, got shape {x.shape}")
    levels = len(weights)
    min_side = 2 ** (levels - 1)
    if min(x.shape[1:3]) < min_side:
        raise ValueError(
            f"ms_ssim with {levels} scales needs sides >= {min_side}, got {x.shape[1]}x{x.shape[2]}"
        )
    taps = gaussian_window(win_size, win_sigma)
    x = x.astype(jnp.float32)
    y = y.astype(jnp.float32)
    factors = []
    ssim_pc = None
    for level in range(levels):
        ssim_pc, cs = _ssim_terms(x, y, taps, data_range, k)
        if level < levels - 1:
            factors.append(jax.nn.relu(cs))
            x, y = _avg_pool2(x), _avg_pool2(y)
    factors.append(jax.nn.relu(ssim_pc))
    stacked = jnp.stack(factors, axis=0)  # (levels, B, C)
    w = jnp.asarray(weights, dtype=jnp.float32).reshape(-1, 1, 1)
    per_channel = jnp.prod(stacked**w, axis=0)  # (B, C)
    return per_channel.mean() if reduce else per_channel.mean(axis=1)


def restoration_loss(pred: jax.Array, target: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The reference training loss ``L1 + 0.2 * (1 - MS-SSIM)`` on NHWC images in [0, 1].

    Returns the scalar loss and a dict with ``loss``, ``l1`` and ``ms_ssim``.
    """
    l1 = jnp.mean(jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32)))
    msssim = ms_ssim(pred, target, data_range=1.0)
    loss = l1 + MS_SSIM_LOSS_WEIGHT * (1.0 - msssim)
    return loss, {"loss": loss, "l1": l1, "ms_ssim": msssim}

"""Image-quality metrics on 8-bit images, as the reference evaluates them.

Both the restored image and the ground truth are quantised the same way: clipped to
[0, 1], multiplied by 255 and truncated (not rounded) to uint8. PSNR and SSIM are then
scikit-image's ``peak_signal_noise_ratio`` (computed here in exact integer arithmetic,
equal to it) and ``structural_similarity`` (with ``channel_axis=-1`` for colour) at their
defaults, so the data range is 255 and SSIM uses a 7 x 7 uniform window.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

GT_SCALE = 65535.0  # 16-bit ground truth from rawpy postprocess(output_bps=16)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Quantise an image in [0, 1] to uint8: clip to [0, 1], times 255, truncate.

    Arithmetic is float32, as in the reference. A uint8 array is returned unchanged.
    NaN values are not allowed (they have no 8-bit value).
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"expected a float image in [0, 1] or uint8, got dtype {image.dtype}")
    image = image.astype(np.float32, copy=False)
    if np.isnan(image).any():
        raise ValueError("image contains NaN values")
    return (np.clip(image, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)


def ground_truth_to_unit(gt16: np.ndarray) -> np.ndarray:
    """A 16-bit ground truth (rawpy ``output_bps=16``) as float32 in [0, 1]: ``gt / 65535``."""
    gt16 = np.asarray(gt16)
    if gt16.dtype != np.uint16:
        raise ValueError(f"expected a uint16 ground truth, got dtype {gt16.dtype}")
    return (gt16 / GT_SCALE).astype(np.float32)


def _check_pair(output8: np.ndarray, gt8: np.ndarray) -> None:
    if output8.shape != gt8.shape:
        raise ValueError(
            f"image shapes differ: output {tuple(output8.shape)}, ground truth {tuple(gt8.shape)}"
        )
    if output8.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {output8.shape}")


def psnr(output: np.ndarray, ground_truth: np.ndarray) -> float:
    """PSNR in dB between the 8-bit quantisations of two images (data range 255).

    Float inputs are quantised with `to_uint8`; identical images give ``inf``.
    """
    out8, gt8 = to_uint8(output), to_uint8(ground_truth)
    _check_pair(out8, gt8)
    # scikit-image's formula, 10 * log10(255**2 / mse), with the squared errors summed
    # exactly in integers (skimage sums them in float64: the same value for 8-bit data,
    # 15x slower on a Sony frame); tests/imaging/test_metrics.py compares the two.
    diff = out8.astype(np.int32) - gt8.astype(np.int32)
    total = int(np.sum(diff * diff, dtype=np.int64))
    if total == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / (total / diff.size)))


def ssim(output: np.ndarray, ground_truth: np.ndarray) -> float:
    """SSIM between the 8-bit quantisations of two images (scikit-image defaults).

    Colour images (H, W, C) are compared per channel and averaged (``channel_axis=-1``).
    """
    out8, gt8 = to_uint8(output), to_uint8(ground_truth)
    _check_pair(out8, gt8)
    channel_axis = -1 if out8.ndim == 3 else None
    return float(structural_similarity(gt8, out8, channel_axis=channel_axis))


def image_metrics(output: np.ndarray, ground_truth: np.ndarray) -> dict[str, float]:
    """``{"psnr": ..., "ssim": ...}`` of two images, both quantised to 8 bits first."""
    out8, gt8 = to_uint8(output), to_uint8(ground_truth)
    return {"psnr": psnr(out8, gt8), "ssim": ssim(out8, gt8)}

"""Tests for jaxdark.imaging.metrics: 8-bit quantisation, PSNR and SSIM."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from jaxdark.imaging import metrics


def _ssim_numpy(a: np.ndarray, b: np.ndarray, win: int = 7) -> float:
    """SSIM written out from its definition (Wang et al. 2004, uniform window, sample
    covariance, K1 = 0.01, K2 = 0.03, L = 255), mean over valid windows and channels."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    n = win * win
    vals = []
    for c in range(a.shape[-1]):
        wa = sliding_window_view(a[..., c], (win, win)).reshape(-1, n)
        wb = sliding_window_view(b[..., c], (win, win)).reshape(-1, n)
        ma, mb = wa.mean(1), wb.mean(1)
        va = wa.var(1, ddof=1)
        vb = wb.var(1, ddof=1)
        cov = ((wa - ma[:, None]) * (wb - mb[:, None])).sum(1) / (n - 1)
        s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
        vals.append(s.mean())
    return float(np.mean(vals))


def _pair(seed: int = 0, shape=(40, 56, 3)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0, 1, shape).astype(np.float32)
    out = np.clip(gt + rng.normal(0, 0.05, shape), -0.2, 1.2).astype(np.float32)
    return out, gt


def test_to_uint8_clips_and_truncates():
    x = np.array([-0.5, 0.0, 0.5, 0.999, 1.0, 1.7, 254.9 / 255], np.float32)
    np.testing.assert_array_equal(metrics.to_uint8(x), [0, 0, 127, 254, 255, 255, 254])
    assert metrics.to_uint8(x).dtype == np.uint8
    u8 = np.array([3, 200], np.uint8)
    assert metrics.to_uint8(u8) is u8


def test_to_uint8_rejects_nan_and_integers():
    with pytest.raises(ValueError, match="NaN"):
        metrics.to_uint8(np.array([0.1, np.nan], np.float32))
    with pytest.raises(ValueError, match="uint16"):
        metrics.to_uint8(np.array([1, 2], np.uint16))


def test_ground_truth_to_unit():
    gt = np.array([0, 257, 32768, 65535], np.uint16)
    unit = metrics.ground_truth_to_unit(gt)
    assert unit.dtype == np.float32
    np.testing.assert_allclose(unit, gt / 65535.0, rtol=1e-7)
    np.testing.assert_array_equal(metrics.to_uint8(unit)[[0, 3]], [0, 255])
    with pytest.raises(ValueError, match="uint16"):
        metrics.ground_truth_to_unit(gt.astype(np.float32))


def test_psnr_matches_definition():
    out, gt = _pair()
    o8 = metrics.to_uint8(out).astype(np.float64)
    g8 = metrics.to_uint8(gt).astype(np.float64)
    expected = 10 * np.log10(255.0**2 / np.mean((o8 - g8) ** 2))
    assert metrics.psnr(out, gt) == pytest.approx(expected, abs=1e-9)
    # the metric sees only the 8-bit values: a sub-quantum change leaves it unchanged
    assert metrics.psnr(out + 1e-4 * (out < 0.5), gt) == pytest.approx(
        metrics.psnr(metrics.to_uint8(out + 1e-4 * (out < 0.5)), gt)
    )


def test_psnr_identical_is_inf():
    _, gt = _pair()
    assert metrics.psnr(gt, gt) == float("inf")
    assert metrics.ssim(gt, gt) == pytest.approx(1.0)


def test_ssim_matches_definition():
    out, gt = _pair(1)
    ref = _ssim_numpy(metrics.to_uint8(out), metrics.to_uint8(gt))
    assert metrics.ssim(out, gt) == pytest.approx(ref, abs=1e-9)
    assert 0.0 < metrics.ssim(out, gt) < 1.0


def test_ssim_grayscale_and_symmetry():
    out, gt = _pair(2, shape=(33, 47))
    ref = _ssim_numpy(metrics.to_uint8(out)[..., None], metrics.to_uint8(gt)[..., None])
    assert metrics.ssim(out, gt) == pytest.approx(ref, abs=1e-9)
    assert metrics.ssim(gt, out) == pytest.approx(metrics.ssim(out, gt), abs=1e-12)


def test_image_metrics_and_shape_mismatch():
    out, gt = _pair(3)
    m = metrics.image_metrics(out, gt)
    assert m == {"psnr": metrics.psnr(out, gt), "ssim": metrics.ssim(out, gt)}
    with pytest.raises(ValueError, match=r"output \(40, 55, 3\), ground truth \(40, 56, 3\)"):
        metrics.psnr(out[:, :55], gt)


@pytest.mark.parametrize("shape", [(64, 96, 3), (31, 17), (200, 120, 3)])
def test_psnr_and_ssim_equal_scikit_image(shape):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(sum(shape))
    gt8 = rng.integers(0, 256, shape, dtype=np.uint8)
    out8 = np.clip(gt8.astype(int) + rng.integers(-20, 21, shape), 0, 255).astype(np.uint8)
    assert metrics.psnr(out8, gt8) == pytest.approx(peak_signal_noise_ratio(gt8, out8), abs=1e-9)
    channel_axis = -1 if len(shape) == 3 else None
    expected = structural_similarity(gt8, out8, channel_axis=channel_axis)
    assert metrics.ssim(out8, gt8) == pytest.approx(expected, abs=1e-12)

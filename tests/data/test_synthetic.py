"""jaxdark.data.synthetic: noise statistics, rawpy consistency of the target, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rawpy
import scipy.stats

from jaxdark.data import synthetic as syn
from jaxdark.imaging.dng import write_dng

SPAN = syn.WHITE_LEVEL - syn.BLACK_LEVEL


def _develop_with_rawpy(pair: syn.SyntheticPair, path) -> np.ndarray:
    write_dng(
        path,
        pair.clean,
        pattern="RGGB",
        black_levels=syn.BLACK_LEVEL,
        white_level=syn.WHITE_LEVEL,
        as_shot_neutral=tuple(1.0 / pair.gains),
        color_matrix=syn.XYZ_TO_CAMERA,
    )
    with rawpy.imread(str(path)) as raw:
        return raw.postprocess(
            use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16
        )


@pytest.mark.parametrize("read_model", ["tukey-lambda", "gaussian"])
def test_tukey_lambda_and_gaussian_read_variance(read_model):
    for lam in (-0.142857, -0.05, 0.0, 0.057143, 0.128571):
        p = syn.NoiseParams(1.0, read_model, 2.5, 0.0, lam)
        expected = 6.25 if read_model == "gaussian" else scipy.stats.tukeylambda.var(lam, scale=2.5)
        assert p.read_variance() == pytest.approx(expected, rel=1e-6)
        samples = (
            syn.tukey_lambda(np.random.default_rng(0), (400_000,), lam, 2.5)
            if read_model == "tukey-lambda"
            else None
        )
        if samples is not None:
            assert samples.var() == pytest.approx(expected, rel=0.03)
            assert abs(samples.mean()) < 0.02


@pytest.mark.parametrize(
    "noise",
    [
        syn.NoiseParams(k=2.0, read_model="tukey-lambda", read_scale=3.0, row_scale=1.2,
                        tukey_shape=-0.114286),
        syn.NoiseParams(k=0.5, read_model="gaussian", read_scale=2.0, row_scale=0.6),
    ],
)  # fmt: skip
def test_flat_field_variance_follows_the_noise_model(noise):
    """Per CFA channel, over many synthetic frames of flat fields at several levels, the
    mean is the clean signal / ratio and the variance K * mean + read + row + 1/12."""
    ratio = 100.0
    rng = np.random.default_rng(0)
    means, variances, predicted = [], [], []
    for grey in (60, 150, 250):
        photo = np.full((64, 64, 3), grey, np.uint8)
        photo[..., 0] = max(grey - 40, 0)  # not neutral: channels at different levels
        frames, clean = [], None
        for _ in range(120):
            pair = syn.synthesize_pair(photo, rng, noise=noise, ratio=ratio, gains=(2.0, 1.0, 1.6))
            frames.append(pair.mosaic.astype(np.float64) - syn.BLACK_LEVEL)
            clean = pair.clean.astype(np.float64) - syn.BLACK_LEVEL
        stack = np.stack(frames)
        for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):  # R, G, G, B
            values = stack[:, dy::2, dx::2]
            signal = clean[dy::2, dx::2].mean() / ratio  # flat: one clean value per channel
            assert values.mean() == pytest.approx(signal, abs=0.05 + 0.005 * signal)
            means.append(values.mean())
            variances.append(values.var())
            predicted.append(noise.variance(signal))
    np.testing.assert_allclose(variances, predicted, rtol=0.04)
    slope, intercept = np.polyfit(means, variances, 1)
    assert slope == pytest.approx(noise.k, rel=0.05)
    floor = noise.read_variance() + noise.row_scale**2 + 1 / 12
    assert intercept == pytest.approx(floor, rel=0.1)


def test_calibration_sampling_follows_eld_fits():
    rng = np.random.default_rng(1)
    cal = syn.SONY_A7S2_ELD
    draws = [cal.sample(rng) for _ in range(4000)]
    log_k = np.log([d.k for d in draws])
    assert log_k.min() >= math.log(cal.k_min) and log_k.max() <= math.log(cal.k_max)
    assert abs(log_k.mean() - 0.5 * (math.log(cal.k_min) + math.log(cal.k_max))) < 0.1
    resid = np.log([d.read_scale for d in draws]) - (
        cal.tukey_scale.slope * log_k + cal.tukey_scale.bias
    )
    assert abs(resid.mean()) < 0.02 and resid.std() == pytest.approx(
        cal.tukey_scale.sigma, rel=0.05
    )
    assert {d.tukey_shape for d in draws} <= set(cal.tukey_shapes)
    gauss = [cal.sample(rng, "gaussian", read_noise_scale=2.0) for _ in range(2000)]
    log_k = np.log([d.k for d in gauss])
    resid = np.log([d.read_scale / 2.0 for d in gauss]) - (
        cal.gaussian_scale.slope * log_k + cal.gaussian_scale.bias
    )
    assert abs(resid.mean()) < 0.03
    with pytest.raises(ValueError, match="read_model"):
        cal.sample(rng, "poisson")


def test_develop_equals_rawpy_on_flat_patches(tmp_path):
    """Away from edges (where demosaicking differs) the target is rawpy's output to a few
    16-bit codes, including LibRaw's white-point adjustment (bright = 0.9 of white)."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
    colours[0, 0] = 253  # linear 0.89 in green: the brightest value, above 0.75 of white
    photo = np.kron(colours, np.ones((24, 24, 1), np.uint8))
    for scale in (1.0, 0.6):
        pair = syn.synthesize_pair(
            (photo * scale).astype(np.uint8), np.random.default_rng(3), gains=(2.5, 1.0, 2.0)
        )
        developed = _develop_with_rawpy(pair, tmp_path / f"flat{scale}.dng")
        inner = np.zeros(photo.shape[:2], bool)
        for i in range(4):
            for j in range(4):
                inner[24 * i + 6 : 24 * i + 18, 24 * j + 6 : 24 * j + 18] = True
        diff = developed.astype(np.int64) - pair.target
        assert np.abs(diff[inner]).max() <= 8, scale
    assert (pair.clean.max() - syn.BLACK_LEVEL) < 0.75 * SPAN  # the 0.6 case: no adjustment


def test_target_is_consistent_with_rawpy_on_a_photo(tmp_path):
    """The recorded consistency check: a real photo, random white balance, DNG, rawpy."""
    import skimage.data

    photo = skimage.data.astronaut()[128:384, 128:384]
    pair = syn.synthesize_pair(photo, np.random.default_rng(7))
    developed = _develop_with_rawpy(pair, tmp_path / "astronaut.dng")
    diff = (developed.astype(np.float64) - pair.target) / 65535.0
    assert np.abs(diff).mean() < 0.015
    assert np.abs(diff.mean(axis=(0, 1))).max() < 2e-3  # no colour shift
    assert np.median(np.abs(diff)) < 0.01


def test_pairs_are_deterministic_and_shaped_like_sid_records():
    photo = (np.random.default_rng(0).random((70, 99, 3)) * 255).astype(np.uint8)
    a = syn.synthesize_pair(photo, np.random.default_rng(42))
    b = syn.synthesize_pair(photo, np.random.default_rng(42))
    c = syn.synthesize_pair(photo, np.random.default_rng(43))
    for field in ("mosaic", "target", "clean"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.noise == b.noise and a.ratio == b.ratio
    assert not np.array_equal(a.mosaic, c.mosaic)
    rec = a.record()
    assert rec["mosaic"].shape == (70, 98) and rec["mosaic"].dtype == np.uint16
    assert rec["target"].shape == (70, 98, 3) and rec["target"].dtype == np.uint16
    assert rec["pattern"] == "RGGB" and rec["ratio"] in syn.SID_RATIOS
    np.testing.assert_array_equal(rec["black_levels"], np.full((2, 2), 512, np.float32))
    assert rec["white_level"] == 16383
    dark = rec["mosaic"].astype(np.float64) - 512
    clean = a.clean.astype(np.float64) - 512
    assert dark.mean() == pytest.approx(clean.mean() / a.ratio, rel=0.05)  # 1/ratio as bright
    assert clean.mean() > 0.05 * SPAN and dark.mean() < 0.01 * SPAN
    # a fixed ratio or range
    cfg = syn.SynthesisConfig(ratio_range=(120.0, 130.0))
    assert 120 <= syn.synthesize_pair(photo, np.random.default_rng(0), cfg).ratio <= 130
    with pytest.raises(ValueError, match="ratio_range"):
        syn.SynthesisConfig(ratio_range=(300.0, 100.0))


def test_photo_formats_and_white_balance_range():
    grey16 = np.full((8, 8), 30000, np.uint16)
    lin = syn.photo_to_linear(grey16)
    assert lin.shape == (8, 8, 3) and np.allclose(lin, lin[..., :1])
    lin_f = syn.photo_to_linear(np.full((8, 8, 3), 30000 / 65535, np.float32))
    np.testing.assert_allclose(lin_f, lin, atol=1e-6)
    rgba = np.zeros((8, 8, 4), np.uint8)
    assert syn.photo_to_linear(rgba).shape == (8, 8, 3)
    with pytest.raises(ValueError, match="photo must be"):
        syn.photo_to_linear(np.zeros((8, 8, 2), np.uint8))
    # sRGB code 128 without the tone curve: 0.2158 linear
    assert syn.photo_to_linear_lut(256, tone_curve=False)[128] == pytest.approx(0.2158, abs=1e-3)
    rng = np.random.default_rng(0)
    gains = np.array([syn.sample_white_balance(rng) for _ in range(2000)])
    assert (gains[:, 1] == 1).all() and (gains >= 1).all()
    assert 1.5 < gains[:, 0].min() and gains[:, 0].max() < 3.3  # red, tungsten..daylight
    assert 1.2 < gains[:, 2].min() and gains[:, 2].max() < 3.1  # blue

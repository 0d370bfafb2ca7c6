"""jaxdark.data.device_synthesis against the NumPy reference (jaxdark.data.synthetic).

Tolerances (stated here, measured on these photos):
* target: with the same white balance and colour matrix, at least 99.5% of the 16-bit
  codes equal and 99.9% within 64 codes (float32 rounding moves a pixel one DN before
  LibRaw's steep dark curve);
* noise: the variance of a flat patch over its model variance ``K*mean + Var(read) +
  row^2 + 1/12`` averages to 1 within 6% on both paths, and the paths within 6% of
  each other;
* per-CFA-channel means of the amplified input and per-channel means of the target over
  many draws: within 5% relative (the white-balance and ratio draws move a single image's
  means by tens of percent);
* the Poisson sampler: mean and variance within 2% of the law's over its whole range.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from jaxdark.data.device_synthesis import (
    DeviceSynthesis,
    PhotoCrop,
    poisson,
    synthesize_batch,
)
from jaxdark.data.noise import NoiseParams
from jaxdark.data.synthetic import BLACK_LEVEL, WHITE_LEVEL, SynthesisConfig, synthesize_pair
from jaxdark.imaging.raw import normalise

SPAN = WHITE_LEVEL - BLACK_LEVEL


def _photo(size=64, at=(180, 200)):
    import skimage.data

    top, left = at
    return skimage.data.astronaut()[top : top + size, left : left + size]


def _numpy_path(photo, seeds, config):
    out = []
    for s in seeds:
        pair = synthesize_pair(photo, np.random.default_rng([7, int(s)]), config)
        x = normalise(pair.mosaic, np.full((2, 2), BLACK_LEVEL), WHITE_LEVEL) * pair.ratio
        out.append((x, pair.target / 65535.0, pair))
    return out


def _device_path(photo, n, config, with_params=False):
    photos = np.repeat(photo[None], n, axis=0)
    seeds = np.stack([np.arange(n), np.full(n, 11)], axis=1).astype(np.uint32)
    out = synthesize_batch(photos, seeds, DeviceSynthesis(config), with_params=with_params)
    return jax.tree.map(np.asarray, out)


def _cfa_means(x):
    return np.array([x[..., 0::2, 0::2].mean(), x[..., 0::2, 1::2].mean(),
                     x[..., 1::2, 0::2].mean(), x[..., 1::2, 1::2].mean()])  # fmt: skip


@pytest.mark.slow
def test_target_matches_the_numpy_development():
    config = SynthesisConfig(color_matrix_spread=0.0)
    photo = _photo()
    dev = _device_path(photo, 4, config, with_params=True)
    for i in range(4):
        gains = dev["params"]["gains"][i].astype(np.float64)
        ref = synthesize_pair(photo, np.random.default_rng(i), config, gains=gains).target
        got = np.rint(dev["target"][i] * 65535.0)
        diff = np.abs(got - ref)
        print("target equal", (diff == 0).mean(), "within 64", (diff <= 64).mean())
        assert (diff == 0).mean() >= 0.995 and (diff <= 64).mean() >= 0.999, diff.max()


@pytest.mark.slow
def test_noise_variance_follows_the_model_on_both_paths():
    config = SynthesisConfig(ratios=(100.0,), color_matrix_spread=0.0, white_balance_spread=0.0)
    flat = np.full((64, 64, 3), 200, np.uint8)
    n = 48

    def ratio(dn, p: NoiseParams, mean):
        return float(dn.var() / p.variance(mean))

    ref = []
    for x, _, pair in _numpy_path(flat, range(n), config):
        dn = x[0::2, 1::2] / pair.ratio * SPAN  # a green plane, DN above black
        mean = pair.clean[0::2, 1::2].astype(np.float64).mean() - BLACK_LEVEL
        ref.append(ratio(dn, pair.noise, mean / pair.ratio))
    dev = _device_path(flat, n, config, with_params=True)
    got = []
    for i in range(n):
        p = {k: float(np.asarray(v[i]).ravel()[0]) for k, v in dev["params"].items()
             if k in ("k", "read_scale", "row_scale", "tukey_shape", "ratio")}  # fmt: skip
        noise = NoiseParams(p["k"], "tukey-lambda", p["read_scale"], p["row_scale"],
                            p["tukey_shape"])  # fmt: skip
        x = dev["input"][i, ..., 0] / dev["amplification"][i]
        dn = x[0::2, 1::2] * SPAN
        # the expected signal: the noise-free green DN of a flat patch over the ratio
        gains, to_camera = dev["params"]["gains"][i], dev["params"]["to_camera"][i]
        mean = _flat_green_dn(flat, gains, to_camera) / p["ratio"]
        got.append(ratio(dn, noise, mean))
    print("variance / model: numpy", np.mean(ref), "device", np.mean(got))
    assert abs(np.mean(ref) - 1) < 0.06 and abs(np.mean(got) - 1) < 0.06, (ref, got)
    assert abs(np.mean(ref) - np.mean(got)) < 0.06


def _flat_green_dn(flat, gains, to_camera):
    from jaxdark.data.synthetic import photo_to_linear

    lin = photo_to_linear(flat[:1, :1]).reshape(3).astype(np.float64)
    camera = (np.asarray(to_camera, np.float64) / np.asarray(gains)[:, None] * SPAN) @ lin
    return float(np.clip(camera[1], 0, SPAN))


@pytest.mark.slow
def test_channel_means_match_over_many_draws():
    config = SynthesisConfig()
    photo = _photo(32)
    n = 192
    ref = _numpy_path(photo, range(n), config)
    ref_in = np.mean([_cfa_means(x) for x, _, _ in ref], axis=0)
    ref_t = np.mean([t.reshape(-1, 3).mean(0) for _, t, _ in ref], axis=0)
    dev = _device_path(photo, n, config)
    got_in = _cfa_means(dev["input"][..., 0])
    got_t = dev["target"].reshape(-1, 3).mean(0)
    print("input", got_in / ref_in, "target", got_t / ref_t)
    np.testing.assert_allclose(got_in, ref_in, rtol=0.05)
    np.testing.assert_allclose(got_t, ref_t, rtol=0.05)
    assert set(np.unique(dev["amplification"]).tolist()) <= {100.0, 250.0, 300.0}


@pytest.mark.parametrize("lam", [0.05, 1.0, 6.0, 9.9, 10.5, 40.0, 700.0])
def test_poisson_moments(lam):
    x = np.asarray(poisson(jax.random.key(3), np.full((400_000,), lam, np.float32)))
    assert (x == np.floor(x)).all() and x.min() >= 0
    assert abs(x.mean() / lam - 1) < 0.02 and abs(x.var() / lam - 1) < 0.02


def test_photo_crop_is_deterministic_and_sized():
    photo = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    t = PhotoCrop(16, hflip_prob=1.0, vflip_prob=0.0)
    a = t.random_map({"photo": photo}, np.random.default_rng(5))
    b = t.random_map({"photo": photo}, np.random.default_rng(5))
    assert a["photo"].shape == (16, 16, 3) and a["photo"].dtype == np.uint8
    assert a["seed"].dtype == np.uint32 and a["seed"].shape == (2,)
    np.testing.assert_array_equal(a["photo"], b["photo"])
    # a left-right flip of a window of the photo
    rows = [(i, j) for i in range(25) for j in range(35)
            if np.array_equal(photo[i:i + 16, j:j + 16, :][:, ::-1], a["photo"])]  # fmt: skip
    assert len(rows) == 1
    with pytest.raises(ValueError, match="smaller than crop 64"):
        PhotoCrop(64).random_map({"photo": photo, "name": "p.png"}, np.random.default_rng(0))


def test_setting_is_checked():
    with pytest.raises(ValueError, match="amplification"):
        DeviceSynthesis(SynthesisConfig(), amplification="x")
    assert dataclasses.is_dataclass(DeviceSynthesis(SynthesisConfig()))

"""Validation on held-out synthetic pairs (`jaxdark.evaluation.synthetic`) and its wiring."""

from __future__ import annotations

import numpy as np
import pytest

from configs import synthetic as synthetic_config
from jaxdark.data.naive import naive_brighten
from jaxdark.errors import JaxdarkError
from jaxdark.evaluation import synthetic as sv
from jaxdark.imaging import metrics
from tests.support.tiny_model import TINY, numpy_model


@pytest.fixture(scope="module")
def model():
    return numpy_model(0, **TINY)


def _config(**fields):
    c = synthetic_config.get_config("local")
    for k, v in fields.items():
        c[k] = v
    return c


def test_held_out_pairs_are_fixed_whole_validation_photos():
    pairs = sv.held_out_pairs(num_pairs=4)
    assert [p.name.split("#")[0] for p in pairs] == [
        "chelsea.png", "coffee.png", "rocket.jpg", "chelsea.png",
    ]  # fmt: skip
    assert pairs[0].mosaic.shape == (300, 450) and pairs[2].mosaic.shape == (426, 640)
    assert pairs[0].target.shape == (300, 450, 3) and pairs[0].target.dtype == np.float32
    assert not np.array_equal(pairs[0].mosaic, pairs[3].mosaic)  # own draws per pair
    again = sv.held_out_pairs(num_pairs=1)
    np.testing.assert_array_equal(again[0].mosaic, pairs[0].mosaic)  # deterministic
    assert pairs[0].mosaic.max() < 0.1 and pairs[0].ratio in (100.0, 250.0, 300.0)
    small = sv.held_out_pairs(num_pairs=2, window=64, seed=5)
    assert small[1].mosaic.shape == (64, 64)
    with pytest.raises(JaxdarkError, match="num_pairs must be >= 1"):
        sv.held_out_pairs(num_pairs=0)


def test_evaluator_scores_like_the_metrics(model):
    ev = sv.SyntheticEvaluator(_config(), num_pairs=3, window=64)
    values = dict(ev.run(model))
    images = ev.restore(model)
    assert len(ev._restorer.compiled_shapes) == 1  # one shape, reused by the second call
    psnrs = [metrics.psnr(im, p.target) for im, p in zip(images, ev.items, strict=True)]
    ssims = [metrics.ssim(im, p.target) for im, p in zip(images, ev.items, strict=True)]
    assert values["psnr"] == pytest.approx(np.mean(psnrs))
    assert values["ssim"] == pytest.approx(np.mean(ssims))
    keys = {f"psnr_x{r:g}" for r in {p.ratio for p in ev.items}}
    assert keys <= set(values) and all(np.isfinite(list(values.values())))
    naive = dict(ev.naive())
    plain = [
        metrics.psnr(
            naive_brighten(p.mosaic, p.ratio, p.gains, data_maximum=p.clean_maximum), p.target
        )
        for p in ev.items
    ]
    assert naive["psnr"] == pytest.approx(np.mean(plain)) and dict(ev.naive()) == naive
    assert min(plain) > 8  # plain brightening by the true ratio: noisy, but the right image


def test_noise_profile_and_estimated_amplification(model):
    base = sv.SyntheticEvaluator(_config(), num_pairs=3, window=64)
    noisy = sv.SyntheticEvaluator(_config(synthetic_read_noise_scale=3.0), num_pairs=3, window=64)
    assert noisy.synthesis.read_noise_scale == 3.0
    # same photos, same draws, more noise: plain brightening gets worse
    assert dict(noisy.naive())["psnr"] < dict(base.naive())["psnr"]
    est = sv.SyntheticEvaluator(_config(amplification="estimated"), num_pairs=1, window=64)
    assert np.isfinite(dict(est.run(model))["psnr"])
    with pytest.raises(JaxdarkError, match="amplification must be one of"):
        sv.SyntheticEvaluator(_config(amplification="nope"), num_pairs=1)


def test_make_evaluator_picks_the_source(monkeypatch):
    import jaxdark.evaluation.validation as validation

    class FakeSID:
        def __init__(self, config):
            self.config = config

    monkeypatch.setattr(validation, "Evaluator", FakeSID)
    assert isinstance(sv.make_evaluator(_config()), sv.SyntheticEvaluator)
    assert len(sv.make_evaluator(_config()).items) == 3  # configs/synthetic.py: 3 photos
    assert isinstance(sv.make_evaluator(_config(data_dir="/data/SID")), FakeSID)
    assert isinstance(sv.make_evaluator(_config(synthetic_fraction=0.0)), FakeSID)

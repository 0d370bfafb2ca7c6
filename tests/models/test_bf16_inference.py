"""bfloat16 inference: `Restorer(..., dtype=...)` and ``jaxdark restore --dtype``."""

from __future__ import annotations

import cv2
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.bf16_error import compare, demo_input
from jaxdark.cli import main
from jaxdark.errors import JaxdarkError
from jaxdark.imaging.dng import write_dng
from jaxdark.models.lamba2021_folded import apply_folded, fold_params
from jaxdark.restorer import Restorer
from jaxdark.weights.load import load_model
from tests.support.random_weights import random_model


@pytest.fixture(scope="module")
def model():
    return random_model(seed=0)


def _dark(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random(shape, dtype=np.float32) ** 4 * 0.03).astype(np.float32)


def test_bf16_restorer_folds_bf16_kernels_and_stays_close_to_fp32(model):
    r16 = Restorer(model, dtype="bfloat16")
    r32 = Restorer(model)
    assert r16.params["conv32x1"]["w"].dtype == jnp.bfloat16
    assert r16.params["conv32x1"]["b"].dtype == jnp.float32  # biases stay float32
    assert r32.params["conv32x1"]["w"].dtype == jnp.float32
    x = _dark((96, 130))
    y16, y32 = r16.restore(x), r32.restore(x)
    assert y16.shape == (96, 130, 3) and y16.dtype == np.float32
    e = compare(y16, y32)
    # random weights (tests/support/random_weights.py), 96x130: measured max 0.012, mean 0.0009,
    # PSNR 55.6 dB; the official weights: see test_official_weights_bf16_error
    assert 0 < e["max_abs"] < 0.05 and e["mean_abs"] < 4e-3 and e["psnr_db"] > 45


def test_restorer_bf16_equals_apply_folded_with_bf16_kernels(model):
    x = _dark((64, 96), seed=2)
    y = Restorer(model, dtype=jnp.bfloat16).restore(x, amplification=40.0)
    direct = apply_folded(fold_params(model, jnp.bfloat16), jnp.asarray(40.0 * x)[None, ..., None])
    np.testing.assert_allclose(y, np.asarray(direct)[0], atol=1e-6)


def test_bad_dtype_is_a_one_line_error(model):
    with pytest.raises(JaxdarkError) as e:
        Restorer(model, dtype="float16")
    assert "\n" not in str(e.value) and "'float16'" in str(e.value)
    with pytest.raises(ValueError, match="not to apply_fn"):
        Restorer(None, apply_fn=lambda p, x: x, params={}, dtype="bfloat16")


def test_cli_dtype_flag(tmp_path):
    from jaxdark.weights.convert import save_converted

    weights = tmp_path / "ckpt"
    save_converted(random_model(seed=1), weights)
    raw = (np.random.default_rng(0).poisson(20, (64, 96)) + 512).astype(np.uint16)
    write_dng(tmp_path / "a.dng", raw, pattern="RGGB")
    args = ["restore", str(tmp_path / "a.dng"), "--weights", str(weights), "--format", "png16"]
    outs = {}
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / dtype
        assert main([*args, "--out-dir", str(out), "--dtype", dtype]) == 0
        outs[dtype] = cv2.imread(str(out / "a.png"), cv2.IMREAD_UNCHANGED).astype(np.int64)
    diff = np.abs(outs["bfloat16"] - outs["float32"]) / 65535.0
    assert 0 < diff.max() < 0.02 and diff.mean() < 3e-3
    with pytest.raises(SystemExit) as e:  # argparse: not one of the choices
        main([*args, "--out-dir", str(tmp_path / "x"), "--dtype", "float16"])
    assert e.value.code == 2


def test_official_weights_bf16_error_on_the_demo_scene(official_weights):
    model = load_model(official_weights)
    x = demo_input(128, 192)[0, :, :, 0]  # already amplified
    y16 = Restorer(model, dtype="bfloat16").restore(x, amplification=1.0)
    y32 = Restorer(model).restore(x, amplification=1.0)
    e = compare(y16, y32)
    # measured at 128x192: max 0.0010, mean 0.0002, PSNR 71.4 dB (512x768: 0.0023, 0.0003, 68.3)
    assert 0 < e["max_abs"] < 2 / 255 and e["mean_abs"] < 1e-3 and e["psnr_db"] > 60

"""Mixed precision training: bfloat16 compute over float32 parameters, loss and gradients.

The steps run in subprocesses (tests/workers/mixed_precision_worker.py, run by
`tests.support.workers.run_workers`; the simulated device
count is fixed when JAX starts): one process with 1 device runs float32 and bfloat16
steps from the same state on the same batch, one with 8 devices runs bfloat16 steps.
Tolerances come from measurements of this setup (small network with random weights
from tests/support/random_weights.py, batch 8 x 32x32, Adam at lr 1e-3): the first bf16 step
against the fp32 one: cosine 0.981, relative difference 0.195, signs agreeing on 99.0% of
the parameters, loss at the start 4.3e-4 apart; after 15 steps the loss fell 0.581 -> 0.300
in bf16 and 0.581 -> 0.312 in fp32; 8 devices against 1 in bf16: relative difference of
the updates 0.012 and 0.015 after steps 1 and 2 (cosine 0.9999), losses equal and 4e-5
apart.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxdark.errors import JaxdarkError
from jaxdark.models.layers import WNConv
from jaxdark.models.precision import resolve_dtype, set_compute_dtype
from tests.support.random_weights import random_model
from tests.support.workers import run_workers

LR = 1e-3  # the worker's learning rate


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_workers("mixed_precision_worker", (1, 8), tmp_path_factory.mktemp("mp"))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _rel(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


@pytest.mark.slow
def test_one_bf16_step_moves_params_like_the_fp32_step(runs):
    one = runs[1]
    p0 = one["params0"]
    d32 = one["float32_params_step1"] - p0
    d16 = one["bfloat16_params_step1"] - p0
    assert _rel(d16, d32) > 1e-3, "bf16 step equals the fp32 one: was bf16 used at all?"
    assert _cos(d16, d32) > 0.9  # measured 0.981
    assert _rel(d16, d32) < 0.4  # measured 0.195 (Adam's first step is about lr * sign(g))
    assert np.mean(np.sign(d16) == np.sign(d32)) > 0.95  # measured 0.990
    assert np.abs(d16).max() <= 1.05 * LR  # Adam's first step is at most lr per parameter
    # the loss at the shared starting point, computed in bf16 and in fp32
    l32, l16 = one["float32_losses"][0], one["bfloat16_losses"][0]
    assert abs(l16 - l32) < 3e-3 * l32  # measured 4.3e-4


@pytest.mark.slow
def test_bf16_loss_decreases_on_an_overfitting_batch_like_fp32(runs):
    l32, l16 = runs[1]["float32_losses"], runs[1]["bfloat16_losses"]
    assert len(l16) == len(l32) == 15
    assert l16[-1] < 0.7 * l16[0]  # measured 0.581 -> 0.300
    assert (l16[0] - l16[-1]) > 0.8 * (l32[0] - l32[-1])  # fp32: 0.581 -> 0.312
    assert l16[-1] < l16[:3].min()


@pytest.mark.slow
def test_parameters_and_adam_state_stay_float32(runs):
    for dtype in ("float32", "bfloat16"):
        assert set(runs[1][f"{dtype}_state_dtypes"]) == {"float32", "int32"}
    assert set(runs[8]["bfloat16_state_dtypes"]) == {"float32", "int32"}


@pytest.mark.slow
def test_8_device_bf16_step_equals_the_1_device_bf16_step(runs):
    one, eight = runs[1], runs[8]
    np.testing.assert_array_equal(one["params0"], eight["params0"])
    np.testing.assert_allclose(eight["bfloat16_losses"][0], one["bfloat16_losses"][0], rtol=1e-5)
    np.testing.assert_allclose(eight["bfloat16_losses"][1], one["bfloat16_losses"][1], rtol=3e-4)
    p0 = one["params0"]
    for step in (1, 2):
        u1 = one[f"bfloat16_params_step{step}"] - p0
        u8 = eight[f"bfloat16_params_step{step}"] - p0
        u32 = one[f"float32_params_step{step}"] - p0
        # measured 0.012 / 0.015: bf16 rounding differs with the per-device batch size
        assert _rel(u8, u1) < 0.06
        assert _cos(u8, u1) > 0.998
        assert _rel(u8, u1) < 0.25 * _rel(u32, u1)  # far closer than fp32 is to bf16


def test_resolve_dtype_accepts_names_and_dtypes_and_rejects_others():
    assert resolve_dtype(None) == np.float32
    assert resolve_dtype("bfloat16") == jnp.bfloat16
    assert resolve_dtype(" Float32 ") == np.float32
    assert resolve_dtype(jnp.bfloat16) == jnp.bfloat16
    for bad in ("float16", "bf16", np.float64, 3):
        with pytest.raises(JaxdarkError) as e:
            resolve_dtype(bad)
        assert "\n" not in str(e.value) and "float32, bfloat16" in str(e.value)


def test_set_compute_dtype_changes_the_layers_not_the_parameters():
    model = random_model(features=16, growth=8, dense_layers=(2, 2))
    x = jnp.asarray(np.random.default_rng(0).random((1, 64, 64, 1), dtype=np.float32))
    run = jax.jit(lambda m, v: m(v))  # the layers' dtype is static: a new trace per dtype
    y32 = np.asarray(run(model, x))
    before = [np.asarray(v) for v in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))]
    set_compute_dtype(model, "bfloat16")
    convs = [n for _, n in nnx.iter_graph(model) if isinstance(n, WNConv)]
    assert convs and all(c.dtype == jnp.bfloat16 for c in convs)
    y16 = run(model, x)
    assert y16.dtype == jnp.float32  # output in the input's dtype
    diff = np.abs(np.asarray(y16) - y32)
    assert 0 < diff.max() < 0.05 and diff.mean() < 4e-3  # measured 0.011 and 0.001
    after = [np.asarray(v) for v in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))]
    assert all(a.dtype == np.float32 for a in after)
    assert all(np.array_equal(a, b) for a, b in zip(after, before, strict=True))
    set_compute_dtype(model, "float32")
    assert all(c.dtype is None for c in convs)
    np.testing.assert_array_equal(np.asarray(run(model, x)), y32)

"""The shard_map step on 8 simulated devices equals the 1-device step and plain jax.grad.

Each device count needs its own process (XLA_FLAGS must be set before jax is imported),
so tests/workers/train_step_worker.py runs in subprocesses.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.workers import run_workers


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_workers("train_step_worker", (1, 8), tmp_path_factory.mktemp("train_step"))


def _assert_params_close(a, b):
    # rtol 1e-5 on parameters. A weight whose gradient is at float-rounding level
    # (~1e-9 here) gets an Adam update of lr * g / (|g| + eps) whose size and sign are
    # decided by the order of the device-dependent sums, so it can move by up to lr
    # (1e-4) differently; atol 1e-5 (10% of one step) covers those few weights, and the
    # fraction check below keeps them few. (Adam cannot see an N-times gradient anyway:
    # the SGD test below is the one that checks the gradient's scale.)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert np.mean(np.abs(a - b) > 1e-5 * np.abs(b)) < 1e-3


@pytest.mark.slow
def test_8_devices_equal_1_device_after_adam_steps(runs):
    one, eight = runs[1], runs[8]
    np.testing.assert_array_equal(one["params0"], eight["params0"])
    for step in (1, 2):
        _assert_params_close(eight[f"adam_params_step{step}"], one[f"adam_params_step{step}"])
        for m in ("loss", "l1", "ms_ssim"):
            np.testing.assert_allclose(
                eight[f"adam_{m}_step{step}"], one[f"adam_{m}_step{step}"], rtol=1e-5
            )
    assert int(one["adam_step"]) == int(eight["adam_step"]) == 2
    assert not np.allclose(one["adam_params_step1"], one["params0"])


@pytest.mark.slow
def test_gradient_is_the_mean_not_n_times_the_mean(runs):
    """SGD(lr=1) moves parameters by minus the gradient: compare it with jax.grad of the
    global mean loss (no shard_map). Adam alone would hide an N-times gradient."""
    one, eight = runs[1], runs[8]
    plain = one["plain_grad"]
    scale = np.abs(plain).max()
    for run in (one, eight):
        grad = run["params0"] - run["sgd_params_step1"]
        np.testing.assert_allclose(grad, plain, rtol=1e-4, atol=1e-5 * scale)
    np.testing.assert_allclose(eight["sgd_loss_step1"], one["plain_loss"], rtol=1e-6)

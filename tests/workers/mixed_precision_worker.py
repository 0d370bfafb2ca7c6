"""Subprocess worker for tests/training/test_mixed_precision.py: training steps in float32 and
bfloat16.

Usage: python tests/workers/mixed_precision_worker.py DEVICES OUT.npz
Sets the simulated CPU device count before importing jax, then runs the data-parallel
step (`jaxdark.training.step.make_train_step`) with Adam on one fixed global batch of a
small network: with 1 device, STEPS steps in float32 and STEPS in bfloat16 compute; with
more devices, 2 steps in bfloat16 only. Saves the flattened parameters after each step
and the losses.
"""

from __future__ import annotations

import os
import sys

devices = int(sys.argv[1])
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}"
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxdark.training.optim import make_optimizer  # noqa: E402
from jaxdark.training.state import setup_training  # noqa: E402
from jaxdark.training.step import (  # noqa: E402
    host_scalars,
    make_data_mesh,
    make_global_batch,
    split_model,
    to_host,
)
from tests.support.random_weights import random_model  # noqa: E402

NET = {"features": 16, "growth": 8, "dense_layers": (2, 2)}
GLOBAL_BATCH, CROP, STEPS, LR = 8, 32, 15, 1e-3


def make_batch():
    rng = np.random.default_rng(7)
    target = rng.random((GLOBAL_BATCH, CROP, CROP, 3), dtype=np.float32)
    target = (target + np.roll(target, 1, 1) + np.roll(target, 1, 2)) / 3  # some structure
    mosaic = target.mean(-1, keepdims=True) * rng.uniform(0.5, 1.5, (GLOBAL_BATCH, 1, 1, 1))
    return {"input": mosaic.astype(np.float32), "target": target.astype(np.float32)}


def flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(to_host(tree))])


def main():
    assert jax.device_count() == devices, jax.devices()
    _, params0 = split_model(random_model(seed=0, **NET))
    mesh = make_data_mesh()
    batch = make_global_batch(make_batch(), mesh)
    tx, _ = make_optimizer(LR)
    result = {"params0": flat(params0)}
    dtypes = ("float32", "bfloat16") if devices == 1 else ("bfloat16",)
    for dtype in dtypes:
        model = random_model(seed=0, **NET)
        setup = setup_training(model, tx, mesh, compute_dtype=dtype)
        step, state = setup.train_step, setup.state
        losses = []
        for i in range(STEPS if devices == 1 else 2):
            state, metrics = step(state, batch)
            losses.append(host_scalars(metrics)["loss"])
            if i < 2:
                result[f"{dtype}_params_step{i + 1}"] = flat(state.params)
        result[f"{dtype}_losses"] = np.asarray(losses, np.float64)
        leaves = jax.tree_util.tree_leaves(to_host(state.params))
        leaves += jax.tree_util.tree_leaves(to_host(state.opt_state))
        result[f"{dtype}_state_dtypes"] = np.asarray(sorted({str(x.dtype) for x in leaves}))
    np.savez(sys.argv[2], **result)


if __name__ == "__main__":
    main()

"""Subprocess worker for tests/training/test_mixed_precision.py: training steps in float32 and
bfloat16.

Usage: python -m tests.workers.mixed_precision_worker DEVICES OUT.npz
Runs the data-parallel step (`jaxdark.training.step.make_train_step`) with Adam on one
fixed global batch of a small network: with 1 device, STEPS steps in float32 and STEPS in
bfloat16 compute; with more devices, 2 steps in bfloat16 only. Saves the flattened
parameters after each step and the losses.
"""

from __future__ import annotations

from tests.workers._common import check_devices, finish, flat, make_batch, start

ARGS = start(__doc__.split("Usage: ")[1])  # before jax is imported

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxdark.training.optim import make_optimizer  # noqa: E402
from jaxdark.training.state import setup_training  # noqa: E402
from jaxdark.training.step import (  # noqa: E402  # noqa: E402
    host_scalars,
    make_data_mesh,
    make_global_batch,
    split_model,
    to_host,
)
from tests.support.random_weights import random_model  # noqa: E402

NET = {"features": 16, "growth": 8, "dense_layers": (2, 2)}
GLOBAL_BATCH, CROP, STEPS, LR = 8, 32, 15, 1e-3


def main() -> None:
    check_devices(ARGS)
    _, params0 = split_model(random_model(seed=0, **NET))
    mesh = make_data_mesh()
    batch = make_global_batch(make_batch(np.random.default_rng(7), GLOBAL_BATCH, CROP), mesh)
    tx, _ = make_optimizer(LR)
    result = {"params0": flat(params0)}
    dtypes = ("float32", "bfloat16") if ARGS.devices == 1 else ("bfloat16",)
    for dtype in dtypes:
        model = random_model(seed=0, **NET)
        setup = setup_training(model, tx, mesh, compute_dtype=dtype)
        step, state = setup.train_step, setup.state
        losses = []
        for i in range(STEPS if ARGS.devices == 1 else 2):
            state, metrics = step(state, batch)
            losses.append(host_scalars(metrics)["loss"])
            if i < 2:
                result[f"{dtype}_params_step{i + 1}"] = flat(state.params)
        result[f"{dtype}_losses"] = np.asarray(losses, np.float64)
        leaves = jax.tree_util.tree_leaves(to_host(state.params))
        leaves += jax.tree_util.tree_leaves(to_host(state.opt_state))
        result[f"{dtype}_state_dtypes"] = np.asarray(sorted({str(x.dtype) for x in leaves}))
    finish(ARGS, result)


if __name__ == "__main__":
    main()

"""Subprocess worker for tests/models/test_models.py: one data-parallel SGD step per model.

Usage: python tests/workers/model_step_worker.py DEVICES OUT.npz NAME [NAME ...]
Sets the simulated CPU device count before importing jax, builds each named model
(`jaxdark.models.create`, seed 0), runs one step of `jaxdark.training.step` with SGD(lr=1)
(whose update is minus the gradient of the global mean loss) on a fixed global batch and
saves, per model, the flattened gradient and the loss.
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
import optax  # noqa: E402

from jaxdark import models  # noqa: E402
from jaxdark.training.state import setup_training  # noqa: E402
from jaxdark.training.step import (  # noqa: E402
    host_scalars,
    make_data_mesh,
    make_global_batch,
    split_model,
    to_host,
)

GLOBAL_BATCH, CROP = 8, 64


def make_batch() -> dict[str, np.ndarray]:
    """A fixed batch: smooth random targets and a dark mosaic derived from them."""
    rng = np.random.default_rng(1234)
    target = rng.random((GLOBAL_BATCH, CROP, CROP, 3), dtype=np.float32)
    target = (target + np.roll(target, 1, 1) + np.roll(target, 1, 2)) / 3  # some structure
    mosaic = target.mean(-1, keepdims=True) * rng.uniform(0.5, 1.5, (GLOBAL_BATCH, 1, 1, 1))
    return {"input": mosaic.astype(np.float32), "target": target.astype(np.float32)}


def flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(to_host(tree))])


def main() -> None:
    assert jax.device_count() == devices, jax.devices()
    mesh = make_data_mesh()
    batch = make_batch()
    tx = optax.sgd(1.0)
    result = {}
    for name in sys.argv[3:]:
        model = models.create(name, seed=0)
        _, params0 = split_model(model)
        setup = setup_training(model, tx, mesh)
        state, metrics = setup.train_step(setup.state, make_global_batch(batch, mesh))
        result[f"{name}/grad"] = flat(params0) - flat(state.params)
        result[f"{name}/loss"] = np.float64(host_scalars(metrics)["loss"])
    np.savez(sys.argv[2], **result)


if __name__ == "__main__":
    main()

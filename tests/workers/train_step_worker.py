"""Subprocess worker for tests/training/test_train_step.py: one or two data-parallel steps.

Usage: python tests/workers/train_step_worker.py DEVICES OUT.npz
Sets the simulated CPU device count before importing jax, runs the step with Adam and
with SGD(lr=1) (whose update is minus the gradient) on a fixed global batch, and saves
the flattened parameters, update and metrics. With DEVICES=1 it also saves a plain
single-device reference (jax.grad on the whole batch, no shard_map).
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
from flax import nnx  # noqa: E402

from jaxdark.models.lamba2021 import DarkRestorationNet  # noqa: E402
from jaxdark.training.losses import restoration_loss  # noqa: E402
from jaxdark.training.optim import make_optimizer  # noqa: E402
from jaxdark.training.state import setup_training  # noqa: E402
from jaxdark.training.step import (  # noqa: E402
    host_scalars,
    make_data_mesh,
    make_global_batch,
    split_model,
    to_host,
)

GLOBAL_BATCH, CROP = 8, 64


def make_batches(n):
    rng = np.random.default_rng(1234)
    out = []
    for _ in range(n):
        target = rng.random((GLOBAL_BATCH, CROP, CROP, 3), dtype=np.float32)
        # blur a little so MS-SSIM sees structure
        target = (target + np.roll(target, 1, 1) + np.roll(target, 1, 2)) / 3
        mosaic = target.mean(-1, keepdims=True) * rng.uniform(0.5, 1.5, (GLOBAL_BATCH, 1, 1, 1))
        out.append({"input": mosaic.astype(np.float32), "target": target.astype(np.float32)})
    return out


def flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(to_host(tree))])


def main():
    assert jax.device_count() == devices, jax.devices()
    graphdef, params0 = split_model(DarkRestorationNet(rngs=nnx.Rngs(0)))
    mesh = make_data_mesh()
    batches = make_batches(2)
    result = {"params0": flat(params0)}
    adam, _ = make_optimizer(1e-4)
    for name, tx, nsteps in (("adam", adam, 2), ("sgd", optax.sgd(1.0), 1)):
        setup = setup_training(DarkRestorationNet(rngs=nnx.Rngs(0)), tx, mesh)
        step_fn, state = setup.train_step, setup.state
        for i in range(nsteps):
            state, metrics = step_fn(state, make_global_batch(batches[i], mesh))
            result[f"{name}_params_step{i + 1}"] = flat(state.params)
            for k, v in host_scalars(metrics).items():
                result[f"{name}_{k}_step{i + 1}"] = np.float64(v)
        result[f"{name}_step"] = np.int64(to_host(state.step))
    if devices == 1:  # plain reference without shard_map: gradient of the global mean loss

        def loss(p, b):
            return restoration_loss(nnx.merge(graphdef, p)(b["input"]), b["target"])[0]

        b = batches[0]
        lval, grads = jax.jit(jax.value_and_grad(loss))(params0, b)
        result["plain_loss"] = np.float64(lval)
        result["plain_grad"] = flat(grads)
    np.savez(sys.argv[2], **result)


if __name__ == "__main__":
    main()

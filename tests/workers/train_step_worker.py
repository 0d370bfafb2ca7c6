"""Subprocess worker for tests/training/test_train_step.py: one or two data-parallel steps.

Usage: python -m tests.workers.train_step_worker DEVICES OUT.npz
Runs the step with Adam and with SGD(lr=1) (whose update is minus the gradient) on a
fixed global batch, and saves the flattened parameters, update and metrics. With
DEVICES=1 it also saves a plain single-device reference (jax.grad on the whole batch, no
shard_map).
"""

from __future__ import annotations

from tests.workers._common import check_devices, finish, flat, make_batch, start

ARGS = start(__doc__.split("Usage: ")[1])  # before jax is imported

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from jaxdark.models.lamba2021 import DarkRestorationNet  # noqa: E402
from jaxdark.training.losses import restoration_loss  # noqa: E402
from jaxdark.training.optim import make_optimizer  # noqa: E402
from jaxdark.training.state import setup_training  # noqa: E402
from jaxdark.training.step import (  # noqa: E402  # noqa: E402
    host_scalars,
    make_data_mesh,
    make_global_batch,
    split_model,
    to_host,
)

GLOBAL_BATCH, CROP = 8, 64


def main() -> None:
    check_devices(ARGS)
    graphdef, params0 = split_model(DarkRestorationNet(rngs=nnx.Rngs(0)))
    mesh = make_data_mesh()
    rng = np.random.default_rng(1234)
    batches = [make_batch(rng, GLOBAL_BATCH, CROP) for _ in range(2)]
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
    if ARGS.devices == 1:  # plain reference without shard_map: gradient of the global mean loss

        def loss(p, b):
            return restoration_loss(nnx.merge(graphdef, p)(b["input"]), b["target"])[0]

        lval, grads = jax.jit(jax.value_and_grad(loss))(params0, batches[0])
        result["plain_loss"] = np.float64(lval)
        result["plain_grad"] = flat(grads)
    finish(ARGS, result)


if __name__ == "__main__":
    main()

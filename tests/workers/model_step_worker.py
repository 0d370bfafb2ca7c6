"""Subprocess worker for tests/models/test_models.py: one data-parallel SGD step per model.

Usage: python -m tests.workers.model_step_worker DEVICES OUT.npz NAME [NAME ...]
Builds each named model (`jaxdark.models.create`, seed 0), runs one step of
`jaxdark.training.step` with SGD(lr=1) (whose update is minus the gradient of the global
mean loss) on a fixed global batch and saves, per model, the flattened gradient and the
loss.
"""

from __future__ import annotations

from tests.workers._common import check_devices, finish, flat, make_batch, start

ARGS = start(__doc__.split("Usage: ")[1])  # before jax is imported

import numpy as np  # noqa: E402
import optax  # noqa: E402

from jaxdark import models  # noqa: E402
from jaxdark.training.state import setup_training  # noqa: E402
from jaxdark.training.step import (  # noqa: E402
    host_scalars,
    make_data_mesh,
    make_global_batch,
    split_model,  # noqa: E402
)

GLOBAL_BATCH, CROP = 8, 64


def main() -> None:
    check_devices(ARGS)
    mesh = make_data_mesh()
    batch = make_batch(np.random.default_rng(1234), GLOBAL_BATCH, CROP)
    tx = optax.sgd(1.0)
    result = {}
    for name in ARGS.rest:
        models.registry.import_model(name)  # names typed by the test, e.g. the example's
        model = models.create(name, seed=0)
        _, params0 = split_model(model)
        setup = setup_training(model, tx, mesh)
        state, metrics = setup.train_step(setup.state, make_global_batch(batch, mesh))
        result[f"{name}/grad"] = flat(params0) - flat(state.params)
        result[f"{name}/loss"] = np.float64(host_scalars(metrics)["loss"])
    finish(ARGS, result)


if __name__ == "__main__":
    main()

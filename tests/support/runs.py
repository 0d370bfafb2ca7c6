"""Small training runs on disk (a workdir with orbax checkpoints), for tests that read runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from tests.support.tiny_model import TINY, numpy_model


def make_run(workdir: Path, steps: tuple[int, ...] = (1, 2), sizes: dict | None = None) -> Path:
    """A run's workdir: config.json naming the model and checkpoints at ``steps`` (seed =
    step), each recording its architecture, as the training loop writes them."""
    from jaxdark.models import spec_of
    from jaxdark.training.checkpointing import Checkpointer
    from jaxdark.training.optim import make_optimizer
    from jaxdark.training.step import init_train_state, split_model

    sizes = dict(sizes or TINY)
    workdir.mkdir(parents=True, exist_ok=True)
    model = numpy_model(0, **sizes)
    spec = spec_of(model)
    (workdir / "config.json").write_text(json.dumps({"model": spec, "seed": 0}))
    tx, _ = make_optimizer()
    ckpt = Checkpointer(
        workdir / "checkpoints", every_steps=1, async_save=False, model_spec=spec, max_to_keep=10
    )
    for step in steps:
        _, params = split_model(numpy_model(step, **sizes))
        state = init_train_state(params, tx)
        ckpt.save(step, dataclasses.replace(state, step=np.int32(step)), None)
    ckpt.close()
    return workdir

"""Small training runs on disk (a workdir with orbax checkpoints), for tests that read runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np

from tests.support.tiny_model import TINY, numpy_model


def make_run(
    workdir: Path,
    steps: tuple[int, ...] = (1, 2),
    sizes: dict | None = None,
    nan_steps: tuple[int, ...] = (),
) -> Path:
    """A run's workdir: config.json naming the model and checkpoints at ``steps`` (seed =
    step), each recording its architecture, as the training loop writes them; the
    parameters of ``nan_steps`` hold a NaN (written directly, past the loop's guard)."""
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
        state = dataclasses.replace(state, step=np.int32(step))
        if step in nan_steps:
            leaves, tree = jax.tree_util.tree_flatten(state.params)
            leaves[0] = np.asarray(leaves[0]).copy()
            leaves[0].flat[0] = np.nan
            state = dataclasses.replace(state, params=jax.tree_util.tree_unflatten(tree, leaves))
            ckpt._manager.save(  # noqa: SLF001 - the public save refuses non-finite states
                step, args=_save_args(state, spec), force=True
            )
            ckpt.wait()
            continue
        ckpt.save(step, state, None)
    ckpt.close()
    return workdir


def _save_args(state, spec):
    import orbax.checkpoint as ocp

    from jaxdark.weights.load import MODEL_ITEM, STATE_ITEM

    tree = {"step": state.step, "params": state.params, "opt_state": state.opt_state}
    return ocp.args.Composite(
        **{STATE_ITEM: ocp.args.StandardSave(tree), MODEL_ITEM: ocp.args.JsonSave(spec)}
    )


def truncate_step(workdir: Path, step: int) -> None:
    """Cut every data file of checkpoint ``step``'s state to 100 bytes (a disk that
    filled up, a copy that stopped)."""
    for f in (workdir / "checkpoints" / str(step) / "state").rglob("*"):
        if f.is_file() and f.parent.name == "d":
            f.write_bytes(f.read_bytes()[:100])

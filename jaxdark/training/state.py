"""One call from a network to a ready data-parallel training setup."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import optax
from flax import nnx
from jax.sharding import Mesh

from jaxdark.training.step import (
    TrainState,
    init_train_state,
    make_data_mesh,
    make_train_step,
    replicate,
    split_model,
)


@dataclasses.dataclass
class TrainSetup:
    """What a training loop needs: the graph, the mesh, the replicated state, the step."""

    graphdef: nnx.GraphDef
    mesh: Mesh
    tx: optax.GradientTransformation
    state: TrainState
    train_step: Callable[[TrainState, Any], tuple[TrainState, dict]]


def setup_training(
    model: nnx.Module,
    tx: optax.GradientTransformation,
    mesh: Mesh | None = None,
    *,
    donate: bool = True,
    compute_dtype: str | Any = None,
) -> TrainSetup:
    """Split ``model``, build its step-0 state replicated on ``mesh`` (default: all
    devices) and the jitted data-parallel step (`jaxdark.training.step`), computing in
    ``compute_dtype`` (float32 by default, or bfloat16; see `jaxdark.models.precision`)."""
    graphdef, params = split_model(model)
    mesh = make_data_mesh() if mesh is None else mesh
    state = replicate(init_train_state(params, tx), mesh)
    step = make_train_step(graphdef, tx, mesh, donate=donate, compute_dtype=compute_dtype)
    return TrainSetup(graphdef, mesh, tx, state, step)

"""The data-parallel training step: ``jax.jit`` over ``jax.shard_map`` on a 1-D mesh.

Parameters and optimiser state are replicated (``P()``); a batch is split along its
leading axis over the mesh axis ``"data"``. Each device computes the loss and the
gradient of its shard, gradients and metrics are averaged with ``lax.pmean``, and
every device applies the same optimiser update. The same code runs on one CPU, on
simulated CPU devices, on a GPU and across hosts after ``jax.distributed.initialize()``.

Under ``shard_map``'s default ``check_vma=True`` the replicated parameters are
*device-invariant*; differentiating a per-device loss with respect to them makes JAX
insert a ``psum`` in the backward pass, so a further ``pmean`` would leave N times the
mean gradient. We therefore cast the parameters to *device-varying*
(``lax.pcast(..., to="varying")``) before differentiating, so each device gets the
gradient of its own shard only and ``pmean`` gives the true gradient of the global
mean loss (tests/training/test_train_step.py checks this against a single device).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdark.models.precision import resolve_dtype, set_compute_dtype
from jaxdark.training.losses import restoration_loss

DATA_AXIS = "data"

Batch = Mapping[str, Any]  # {"input": (B, H, W, 1) float32, "target": (B, H, W, 3) float32}


@flax.struct.dataclass
class TrainState:
    """Everything a step updates: step counter, parameters (pure dict), optimiser state."""

    step: jax.Array
    params: Any
    opt_state: Any


def make_data_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh named ``"data"`` over ``num_devices`` (default: all global devices)."""
    n = jax.device_count() if num_devices is None else int(num_devices)
    if n < 1 or n > jax.device_count():
        raise ValueError(f"num_devices must be in [1, {jax.device_count()}], got {n}")
    return jax.make_mesh((n,), (DATA_AXIS,), devices=jax.devices()[:n])


def split_model(model: nnx.Module) -> tuple[nnx.GraphDef, dict]:
    """The model's graph definition and its parameters as a pure (nested dict) pytree."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    if jax.tree_util.tree_leaves(rest):
        raise ValueError("the training step supports models whose state is parameters only")
    return graphdef, nnx.to_pure_dict(params)


def init_train_state(params: Any, tx: optax.GradientTransformation) -> TrainState:
    """A host-side train state at step 0 (NumPy leaves, to be placed with `replicate`)."""
    params = jax.tree_util.tree_map(lambda x: np.asarray(x, dtype=np.float32), params)
    opt_state = jax.tree_util.tree_map(np.asarray, tx.init(params))
    return TrainState(step=np.zeros((), np.int32), params=params, opt_state=opt_state)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place a pytree of host arrays, identical on every process, replicated on ``mesh``.

    Uses ``jax.make_array_from_callback`` from NumPy data, which works when each
    process holds one device or many (a ``device_put`` of an existing jax array to a
    multi-process replicated sharding does not save with orbax on one-device hosts).
    """
    sharding = NamedSharding(mesh, P())

    def place(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree_util.tree_map(place, tree)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Batch arrays: leading axis split over the data axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def make_global_batch(local_batch: Batch, mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble each process's batch (its slice of the global batch) into global arrays."""
    sharding = batch_sharding(mesh)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in local_batch.items()
    }


def make_train_step(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    mesh: Mesh,
    *,
    donate: bool = True,
    compute_dtype: str | Any = None,
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
    """The jitted data-parallel step ``(state, batch) -> (state, metrics)``.

    ``metrics`` holds the global-batch means of ``loss``, ``l1`` and ``ms_ssim``.
    With ``donate`` the input state's buffers are reused for the new state.
    ``compute_dtype`` (``"float32"``, default, or ``"bfloat16"``) is the dtype the
    network computes in (`jaxdark.models.precision`); parameters, Adam state, loss, MS-SSIM
    and the gradient all-reduce stay float32.
    """
    dtype = None if compute_dtype is None else resolve_dtype(compute_dtype)

    def loss_fn(params, batch):
        model = nnx.merge(graphdef, params)
        if dtype is not None:
            set_compute_dtype(model, dtype)
        pred = model(batch["input"]).astype(jnp.float32)  # the loss is float32 throughout
        loss, parts = restoration_loss(pred, batch["target"])
        return loss, parts

    def per_device(state: TrainState, batch: Batch):
        # Differentiate w.r.t. device-varying params: the local gradient, no implicit psum.
        local_params = jax.lax.pcast(state.params, DATA_AXIS, to="varying")
        (_, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(local_params, batch)
        grads = jax.lax.pmean(grads, DATA_AXIS)
        metrics = jax.lax.pmean(parts, DATA_AXIS)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state, metrics

    sharded = jax.shard_map(
        per_device,
        mesh=mesh,
        in_specs=(P(), P(DATA_AXIS)),
        out_specs=(P(), P()),
    )
    return jax.jit(sharded, donate_argnums=(0,) if donate else ())


def make_predict_fn(graphdef: nnx.GraphDef, mesh: Mesh) -> Callable[[Any, jax.Array], jax.Array]:
    """A jitted, data-parallel ``(params, batch input) -> restored batch``."""

    def predict(params, x):
        return nnx.merge(graphdef, params)(x)

    sharded = jax.shard_map(
        predict, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=P(DATA_AXIS)
    )
    return jax.jit(sharded)


def to_host(tree: Any) -> Any:
    """NumPy copies of replicated (or process-local) arrays, also on multi-host meshes."""

    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_shards[0].data)
        return np.asarray(x)

    return jax.tree_util.tree_map(fetch, tree)


def host_scalars(metrics: Mapping[str, jax.Array]) -> dict[str, float]:
    """Replicated scalar metrics as Python floats."""
    return {k: float(v) for k, v in to_host(dict(metrics)).items()}

"""Pure inference functions for registered models: the fast path where there is one."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
from flax import nnx

from jaxdark.models.precision import resolve_dtype
from jaxdark.models.registry import inference_factory

ApplyFn = Callable[[Any, jax.Array], jax.Array]


def _merged_apply(graphdef: nnx.GraphDef, state: nnx.State, x: jax.Array) -> jax.Array:
    return nnx.merge(graphdef, state)(x)


def inference_apply(model: nnx.Module, dtype: Any = None) -> tuple[ApplyFn, Any]:
    """``(apply_fn, params)`` with ``apply_fn(params, x) == model(x)`` for (B, H, W, 1) ``x``.

    A model whose name has a registered inference factory (`register_inference`; the
    published network's is `jaxdark.models.lamba2021_folded`, weight norm folded and slow
    convolutions recast, equal within 1e-5) restores through it. Any other model runs its
    own ``__call__`` on its split state (`nnx.split` / `nnx.merge`), unchanged. ``dtype``
    (``"float32"``, default, or ``"bfloat16"``): the compute dtype
    (`jaxdark.models.precision`); models without a factory run in float32 only.
    """
    dtype = resolve_dtype(dtype)
    factory = inference_factory(model)
    if factory is not None:
        return factory(model, dtype)
    if dtype != resolve_dtype("float32"):
        raise ValueError(f"{type(model).__name__} restores in float32 only, got dtype {dtype}")
    graphdef, state = nnx.split(model)
    return partial(_merged_apply, graphdef), state

"""Pure inference functions for registered models: the fast path where there is one."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
from flax import nnx

ApplyFn = Callable[[Any, jax.Array], jax.Array]


def _merged_apply(graphdef: nnx.GraphDef, state: nnx.State, x: jax.Array) -> jax.Array:
    return nnx.merge(graphdef, state)(x)


def inference_apply(model: nnx.Module, dtype: Any = None) -> tuple[ApplyFn, Any]:
    """``(apply_fn, params)`` with ``apply_fn(params, x) == model(x)`` for (B, H, W, 1) ``x``.

    For the published network (`jaxdark.model.DarkRestorationNet`, ``lamba2021``) this is
    `jaxdark.inference.apply_folded` on `jaxdark.inference.fold_params` (weight norm folded,
    slow convolutions recast; equal within 1e-5). Any other model runs its own
    ``__call__`` on its split state (`nnx.split` / `nnx.merge`), unchanged. ``dtype``
    (``"float32"``, default, or ``"bfloat16"``): the folded kernels' dtype
    (`jaxdark.precision`); other models run in float32 only.
    """
    from jaxdark.model import DarkRestorationNet
    from jaxdark.precision import resolve_dtype

    dtype = resolve_dtype(dtype)
    if type(model) is DarkRestorationNet:
        from jaxdark.inference import apply_folded, fold_params

        return apply_folded, fold_params(model, dtype)
    if dtype != resolve_dtype("float32"):
        raise ValueError(f"{type(model).__name__} restores in float32 only, got dtype {dtype}")
    graphdef, state = nnx.split(model)
    return partial(_merged_apply, graphdef), state

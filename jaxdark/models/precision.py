"""Compute dtypes: float32, or bfloat16 activations over float32 parameters.

Mixed precision here means: the network's convolutions take bfloat16 operands (XLA
accumulates them in float32 and rounds the result to bfloat16), while the parameters,
the optimiser state, the loss, MS-SSIM and the gradient all-reduce stay float32. The
parameters never change dtype; `set_compute_dtype` only changes what the layers cast
their inputs and kernels to, so a float32 and a bfloat16 run share checkpoints.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdark.errors import JaxdarkError
from jaxdark.models.lamba2021 import DarkRestorationNet
from jaxdark.models.layers import WNConv

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def resolve_dtype(dtype: str | np.dtype | type | None) -> np.dtype:
    """``"float32"`` / ``"bfloat16"`` (or such a dtype; None is float32) -> a NumPy dtype.

    Raises a one-line `JaxdarkError` for any other name or dtype.
    """
    if dtype is None:
        return np.dtype(jnp.float32)
    if isinstance(dtype, str):
        key = dtype.strip().lower()
        if key not in COMPUTE_DTYPES:
            raise JaxdarkError(
                f"compute dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {dtype!r}"
            )
        return np.dtype(COMPUTE_DTYPES[key])
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in COMPUTE_DTYPES:
        raise JaxdarkError(
            f"compute dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {dtype!r}"
        )
    return resolved


def set_compute_dtype(model: nnx.Module, dtype: str | np.dtype | type | None) -> nnx.Module:
    """Make every layer of ``model`` compute in ``dtype``; parameters are not touched.

    float32 (or None) restores plain float32 computation. Returns ``model`` (changed in
    place), so it can be used on a freshly merged model inside a jitted function.
    """
    resolved = resolve_dtype(dtype)
    layer_dtype = None if resolved == np.float32 else resolved
    for _, node in nnx.iter_graph(model):
        if isinstance(node, WNConv | DarkRestorationNet):
            node.dtype = layer_dtype
    return model

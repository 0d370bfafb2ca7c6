"""A network with random weights built without JAX compilations (test helper).

`jaxdark.create_model` draws its weights with JAX: about 60 small eager computations,
each compiled once per process, which takes minutes on a loaded 2-core machine. Tests
that only need *some* weights build the abstract model and fill it from NumPy instead
(the same scheme: Kaiming-normal ``v`` with slope 1, ``g = ||v||``, uniform biases).
"""

from __future__ import annotations

import math

import numpy as np
from flax import nnx

from jaxdark.models.lamba2021 import DarkRestorationNet, create_model
from jaxdark.models.layers import WNConv, kaiming_std
from jaxdark.weights.convert import assign_params, flat_key


def random_model(seed: int = 0, **sizes) -> DarkRestorationNet:
    """A `DarkRestorationNet` of the given sizes with NumPy-drawn random weights."""
    model = create_model(abstract=True, **sizes)
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for path, node in nnx.iter_graph(model):
        if not isinstance(node, WNConv):
            continue
        kh, kw, cin, cout = node.v.shape
        fan_in = kh * kw * cin
        v = (rng.standard_normal((kh, kw, cin, cout)) * kaiming_std(fan_in, 1.0)).astype(np.float32)
        params[flat_key((*path, "v"))] = v
        params[flat_key((*path, "g"))] = np.sqrt((v * v).sum(axis=(0, 1, 2)))
        if node.bias is not None:
            bound = 1.0 / math.sqrt(fan_in)
            params[flat_key((*path, "bias"))] = rng.uniform(-bound, bound, cout).astype(np.float32)
    assign_params(model, params)
    return model

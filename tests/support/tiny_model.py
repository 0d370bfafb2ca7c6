"""Small networks with NumPy-drawn weights, for tests that need a checkpoint quickly.

`jaxdark.create_model` draws with JAX eagerly, which compiles one random-number program
per layer shape (about a minute on a busy 2-core machine); these draw in NumPy instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY = {"features": 16, "growth": 8, "dense_layers": (2,)}


def _draw(tree, rng: np.random.Generator):
    if hasattr(tree, "shape"):
        fan_in = int(np.prod(tree.shape[:-1])) or 1
        return (rng.standard_normal(tree.shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    return {k: _draw(v, rng) for k, v in tree.items()}


def numpy_model(seed: int = 0, **sizes):
    """A `DarkRestorationNet` of ``sizes`` with Kaiming-normal NumPy weights (all leaves)."""
    from flax import nnx

    import jaxdark

    graphdef, state = nnx.split(jaxdark.create_model(abstract=True, **sizes))
    nnx.replace_by_pure_dict(state, _draw(nnx.to_pure_dict(state), np.random.default_rng(seed)))
    return nnx.merge(graphdef, state)


def save_tiny(path: Path, seed: int = 0, **sizes) -> Path:
    """Write a converted checkpoint of `numpy_model` (default sizes `TINY`) at ``path``."""
    from jaxdark.weights.convert import save_converted

    save_converted(numpy_model(seed, **(sizes or TINY)), path)
    return path

"""DID, SGN and LLPackNet against our PyTorch renderings of their layer tables
(convert_weights/zoo_torch.py): the same weights give the same output within 1e-5, and
both count the reference definitions' parameters exactly."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdark import models
from jaxdark.models.lamba2021 import count_params

torch = pytest.importorskip("torch")

TOL = 1e-5
# sum(p.numel() for p in net.parameters()) of the authors' definitions with their training
# scripts' defaults (notes/table1.md says how they were counted)
REFERENCE_PARAMS = {"did": 2_570_691, "sgn": 3_604_963, "llpacknet": 1_170_640}


@pytest.fixture(scope="module")
def pairs():
    from convert_weights.zoo_torch import torch_rendering

    out = {}
    for i, name in enumerate(REFERENCE_PARAMS):
        model = models.create(name, seed=10 + i)
        out[name] = (model, torch_rendering(model))
    return out


def _input(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((2, 64, 96, 1), dtype=np.float32) * 3.0).astype(np.float32)


def _torch_out(net, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("name", list(REFERENCE_PARAMS))
def test_exact_reference_parameter_count(pairs, name):
    model, net = pairs[name]
    assert count_params(model) == REFERENCE_PARAMS[name]
    assert sum(p.numel() for p in net.parameters()) == REFERENCE_PARAMS[name]


@pytest.mark.parametrize("name", list(REFERENCE_PARAMS))
def test_forward_pass_matches_the_pytorch_rendering(pairs, name):
    model, net = pairs[name]
    x = _input(seed=len(name))
    ref = _torch_out(net, x)
    forward = model.unclipped if name != "llpacknet" else model  # llpacknet ends in a sigmoid
    with jax.default_matmul_precision("highest"):
        ours = np.asarray(jax.jit(lambda v: forward(v))(jnp.asarray(x)))
    assert ours.shape == ref.shape == (2, 64, 96, 3)
    assert np.ptp(ref) > 1e-3  # not a constant output
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL)
    # the zoo's output is the reference's clipped to [0, 1]
    clipped = np.asarray(jax.jit(lambda v: model(v))(jnp.asarray(x)))
    np.testing.assert_allclose(clipped, np.clip(ref, 0, 1), rtol=0, atol=TOL)


def test_did_keeps_the_references_unused_squeeze_excitation_parameters(pairs):
    model, _ = pairs["did"]
    from flax import nnx

    se = sum(count_params(block.squeeze_excite) for block in model.body)
    assert se == 18_560
    x = jnp.asarray(_input(seed=3)[:1])
    graphdef, state = nnx.split(model)
    grads = jax.grad(lambda s: jnp.sum(nnx.merge(graphdef, s).unclipped(x)))(state)
    se_grads = [g for path, g in nnx.to_flat_state(grads) if "squeeze_excite" in path]
    assert se_grads and all(float(jnp.abs(g[...]).max()) == 0.0 for g in se_grads)

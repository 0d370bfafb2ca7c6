"""Parity with the official weights: jaxdark against our PyTorch rendering of the reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdark import load_model
from jaxdark.weights.convert import save_converted

torch = pytest.importorskip("torch")

TOL = 1e-5


@pytest.fixture(scope="module")
def official_pair(official_weights):
    from convert_weights.reference_torch import reference_from_state_dict

    obj = torch.load(official_weights, map_location="cpu", weights_only=True)
    net = reference_from_state_dict(obj["model"])  # strict key matching
    return load_model(official_weights), net


def _inputs(shape, kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return rng.random(shape, dtype=np.float32)
    # a dark frame amplified by a typical factor: mostly small values, a few bright ones
    return (rng.random(shape, dtype=np.float32) ** 6 * 100 * 0.05).astype(np.float32)


def _max_diff(model, net, x_nchw):
    with torch.no_grad():
        ref = net(torch.from_numpy(x_nchw)).numpy().transpose(0, 2, 3, 1)
    with jax.default_matmul_precision("highest"):  # true float32 on GPU/TPU too (no-op on CPU)
        ours = jax.jit(lambda m, v: m(v))(model, jnp.asarray(x_nchw.transpose(0, 2, 3, 1)))
    return float(np.abs(np.asarray(ours) - ref).max())


def test_official_state_dict_loads_strictly(official_weights):
    from convert_weights.reference_torch import ReferenceNet

    obj = torch.load(official_weights, map_location="cpu", weights_only=True)
    net = ReferenceNet()
    result = net.load_state_dict(obj["model"], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert sum(p.numel() for p in net.parameters()) == 784_768


@pytest.mark.parametrize(
    ("shape", "kind"),
    [
        ((1, 1, 32, 32), "uniform"),
        ((2, 1, 64, 64), "uniform"),  # batch 2
        ((1, 1, 96, 160), "dark"),  # non-square
        ((1, 1, 256, 192), "dark"),
    ],
    ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v,
)
def test_official_parity(official_pair, shape, kind):
    model, net = official_pair
    diff = _max_diff(model, net, _inputs(shape, kind))
    assert diff <= TOL, f"max |jaxdark - PyTorch| = {diff:.3e}"


def test_converted_checkpoint_bit_identical_to_pth(official_weights, tmp_path):
    direct = load_model(official_weights)
    save_converted(direct, tmp_path / "official", source=official_weights)
    converted = load_model(tmp_path / "official")
    x = jnp.asarray(_inputs((1, 96, 128, 1), "dark", seed=3))
    np.testing.assert_array_equal(np.asarray(direct(x)), np.asarray(converted(x)))


def test_verify_cli(official_weights, capsys):
    from convert_weights.verify import main

    assert main([str(official_weights), "--size", "64x96", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "parameters (jaxdark): 784,768" in out
    assert "PASS" in out

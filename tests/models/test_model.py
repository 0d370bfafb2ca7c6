"""The NNX network: shapes, parameter count, errors, variants and reference initialisation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxdark
from jaxdark.models.lamba2021 import DarkRestorationNet, count_params
from jaxdark.models.layers import WNConv, kaiming_std


@pytest.fixture(scope="module")
def model():
    return jaxdark.create_model(seed=0)


def test_parameter_count(model):
    assert count_params(model) == 784_768
    assert len(jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))) == 63


def test_forward_shape_and_range(model):
    x = jnp.asarray(np.random.default_rng(0).random((2, 64, 96, 1), dtype=np.float32) * 4)
    y = model(x)
    assert y.shape == (2, 64, 96, 3)
    assert y.dtype == jnp.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((1, 64, 48, 1), "multiples of 32, got 64x48"),
        ((1, 30, 64, 1), "multiples of 32, got 30x64"),
        ((1, 64, 64, 3), r"\(B, H, W, 1\)"),
        ((64, 64, 1), r"\(B, H, W, 1\)"),
    ],
)
def test_bad_input_shape(model, shape, match):
    with pytest.raises(ValueError, match=match):
        model(jnp.zeros(shape))


def test_jit_and_bf16_compute():
    m = DarkRestorationNet(dtype=jnp.bfloat16, rngs=nnx.Rngs(1))
    y = nnx.jit(lambda m, x: m(x))(m, jnp.ones((1, 32, 64, 1)))
    assert y.shape == (1, 32, 64, 3) and y.dtype == jnp.float32


def test_research_variant_builds_and_runs():
    m = jaxdark.create_model(seed=0, features=32, growth=16, dense_layers=(3, 3))
    assert len(m.rdb) == 2 and len(m.rdb[0].dense_layers) == 3
    assert m(jnp.ones((1, 32, 32, 1))).shape == (1, 32, 32, 3)


def test_variant_argument_errors():
    with pytest.raises(ValueError, match="divisible by 16"):
        DarkRestorationNet(features=40, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=">= 2 dense layers"):
        DarkRestorationNet(dense_layers=(1,), rngs=nnx.Rngs(0))


def _convs(model):
    return [(p, m) for p, m in nnx.iter_graph(model) if isinstance(m, WNConv)]


def test_init_effective_kernel_equals_v(model):
    for path, conv in _convs(model):
        np.testing.assert_allclose(conv.kernel(), conv.v[...], rtol=1e-5, atol=1e-7, err_msg=path)


# reference init slope `a` per layer (the reference initialisation, docs/models.md)
EXPECTED_A = {
    ("conv32x", 0): 1.0,
    ("conv32x", 1): 1.0,
    ("rdball",): 1.0,
    ("resblock8x", "conv1"): 0.2,
    ("resblock8x", "conv2"): 1.0,
    ("conv32_8_cat", 1): 0.2,
    ("rdb", 0, "dense_layers", 0, "conv"): 0.2,
    ("rdb", 1, "dense_layers", 2, "conv"): 0.2,
    ("rdb", 2, "dense_layers", 4, "conv"): 1.0,
    ("rdb", 2, "conv_1x1"): 1.0,
}


@pytest.mark.parametrize("path", list(EXPECTED_A), ids=lambda p: ".".join(map(str, p)))
def test_init_kaiming_std_and_bias_bound(model, path):
    conv = dict(_convs(model))[path]
    v = np.asarray(conv.v[...])
    kh, kw, cin, _ = v.shape
    fan_in = kh * kw * cin
    expected = kaiming_std(fan_in, EXPECTED_A[path])
    # sample std of n normals has relative error ~ 1/sqrt(2n); allow 6 sigma
    tol = 6 / math.sqrt(2 * v.size)
    assert abs(v.std() / expected - 1) < tol, (v.std(), expected)
    assert abs(v.mean()) < 6 * expected / math.sqrt(v.size)
    if conv.bias is not None:
        b = np.asarray(conv.bias[...])
        assert np.all(np.abs(b) <= 1 / math.sqrt(fan_in))
        assert b.std() > 0.3 / math.sqrt(fan_in)  # uniform(-k, k) has std k/sqrt(3) ~ 0.58k


def test_init_matches_torch_reference_statistics(model):
    torch = pytest.importorskip("torch")
    from convert_weights.reference_torch import ReferenceNet
    from jaxdark.weights.convert import params_to_state_dict

    torch.manual_seed(0)
    ref = {k: v.detach().numpy() for k, v in ReferenceNet().state_dict().items()}
    ours = params_to_state_dict(model)
    assert set(ref) == set(ours)
    for key, value in ref.items():
        assert value.shape == ours[key].shape, key
        if key.endswith("weight_v") and value.size >= 4096:
            assert abs(ours[key].std() / value.std() - 1) < 0.1, key


def test_seed_determinism():
    a = jaxdark.weights.convert.model_params(jaxdark.create_model(seed=3))
    b = jaxdark.weights.convert.model_params(jaxdark.create_model(seed=3))
    c = jaxdark.weights.convert.model_params(jaxdark.create_model(seed=4))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_grouped_conv_impls_agree():
    """The block-diagonal dense form of the grouped convs equals XLA's grouped conv."""
    dense = jaxdark.create_model(seed=5)
    native = jaxdark.create_model(seed=5, grouped_conv_impl="native")
    assert dense.conv32x[0].grouped_impl == "dense"
    assert native.conv32_8_cat[0].grouped_impl == "native"
    x = jnp.asarray(np.random.default_rng(1).random((1, 64, 96, 1), dtype=np.float32) * 3)
    np.testing.assert_allclose(np.asarray(dense(x)), np.asarray(native(x)), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="grouped_impl must be one of"):
        WNConv(8, 8, 3, groups=2, grouped_impl="fast", rngs=nnx.Rngs(0))


def test_block_diagonal_kernel_layout():
    from jaxdark.models.layers import block_diagonal_kernel

    w = jnp.arange(1, 25, dtype=jnp.float32).reshape(1, 1, 2, 12)  # 3 groups: 2 in, 4 out each
    d = np.array(block_diagonal_kernel(w, 3))
    assert d.shape == (1, 1, 6, 12)
    for g in range(3):
        block = d[0, 0, 2 * g : 2 * g + 2, 4 * g : 4 * g + 4]
        np.testing.assert_array_equal(block, np.asarray(w)[0, 0, :, 4 * g : 4 * g + 4])
        d[0, 0, 2 * g : 2 * g + 2, 4 * g : 4 * g + 4] = 0
    assert not d.any()

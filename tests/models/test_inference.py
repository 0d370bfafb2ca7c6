"""The fast inference path equals the model, its kernel rewrites are exact, no recompiles."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdark import create_model, load_model
from jaxdark.models.lamba2021_folded import (
    _grouped_small,
    apply_folded,
    channel_shuffle_permutation,
    fold_params,
    grouped_to_dense,
    space_to_depth_kernel,
)
from jaxdark.models.ops import channel_shuffle, pixel_unshuffle

TOL = 1e-5


def conv(x, w, groups=1):
    p = (w.shape[0] - 1) // 2
    return jax.lax.conv_general_dilated(
        jnp.asarray(x),
        jnp.asarray(w),
        (1, 1),
        ((p, p), (p, p)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
        precision="highest",
    )


def mosaic(shape, seed=0, scale=1.0):
    return jnp.asarray(np.random.default_rng(seed).random(shape, dtype=np.float32) * scale)


def assert_matches_model(model, x):
    ref = np.asarray(jax.jit(lambda m, v: m(v))(model, x))
    out = np.asarray(apply_folded(fold_params(model), x))
    assert out.shape == ref.shape == (*x.shape[:3], 3)
    assert out.dtype == np.float32
    # the comparison means something only if most outputs are not clipped
    assert np.mean((ref > 0) & (ref < 1)) > 0.5
    np.testing.assert_array_less(np.abs(out - ref), TOL)


@pytest.mark.parametrize("shape", [(1, 64, 96, 1), (2, 96, 64, 1)])
def test_fast_path_equals_model_random_init(shape):
    assert_matches_model(create_model(seed=3), mosaic(shape, seed=shape[1], scale=0.5))


def test_fast_path_equals_model_official_weights(official_weights):
    model = load_model(official_weights)
    assert_matches_model(model, mosaic((2, 64, 160, 1), seed=7, scale=1.0))


def test_fast_path_variant_architecture():
    model = create_model(seed=1, features=32, growth=16, dense_layers=(3, 2))
    assert_matches_model(model, mosaic((1, 64, 64, 1), seed=2, scale=0.5))


@pytest.mark.parametrize(
    "k,r,cin,cout", [(5, 2, 4, 12), (5, 2, 24, 12), (3, 2, 8, 5), (5, 4, 3, 2)]
)
def test_space_to_depth_kernel_is_exact(k, r, cin, cout):
    rng = np.random.default_rng(k * 100 + r)
    w = rng.standard_normal((k, k, cin, cout)).astype(np.float32)
    x = rng.standard_normal((2, 8 * r, 4 * r, cin)).astype(np.float32)
    direct = pixel_unshuffle(conv(x, w), r)
    recast = conv(pixel_unshuffle(jnp.asarray(x), r), space_to_depth_kernel(w, r))
    np.testing.assert_allclose(np.asarray(recast), np.asarray(direct), atol=1e-4, rtol=1e-5)


def test_grouped_to_dense_with_shuffle_folded():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 3, 8, 12)).astype(np.float32)  # 32 -> 12, 4 groups
    x = rng.standard_normal((1, 10, 12, 32)).astype(np.float32)
    direct = conv(channel_shuffle(jnp.asarray(x), 2), w, groups=4)
    dense = grouped_to_dense(w, 4)
    assert dense.shape == (3, 3, 32, 12)
    folded = np.zeros_like(dense)
    folded[:, :, channel_shuffle_permutation(32, 2), :] = dense
    np.testing.assert_allclose(
        np.asarray(conv(x, folded)), np.asarray(direct), atol=1e-4, rtol=1e-5
    )


def test_channel_shuffle_permutation_matches_ops():
    x = jnp.arange(24.0).reshape(1, 1, 1, 24)
    perm = channel_shuffle_permutation(24, 2)
    np.testing.assert_array_equal(np.asarray(channel_shuffle(x, 2))[0, 0, 0], perm)


def test_grouped_small_matches_grouped_conv():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 3, 8, 16)).astype(np.float32)  # 128 -> 16, 16 groups of 8
    b = rng.standard_normal(16).astype(np.float32)
    x = rng.standard_normal((2, 5, 7, 128)).astype(np.float32)
    direct = conv(x, w, groups=16) + b
    p = {"w": jnp.asarray(w.transpose(0, 1, 3, 2)), "b": jnp.asarray(b)}
    np.testing.assert_allclose(
        np.asarray(_grouped_small(jnp.asarray(x), p, None)),
        np.asarray(direct),
        atol=1e-4,
        rtol=1e-5,
    )


def test_no_recompiles_for_same_shape():
    x = mosaic((1, 64, 64, 1), seed=5)
    first = fold_params(create_model(seed=0))
    apply_folded(first, x).block_until_ready()
    size = apply_folded._cache_size()
    # new input values, new weights with the same shapes: no new compilation
    second = fold_params(create_model(seed=1))
    for i in range(3):
        apply_folded(second, mosaic((1, 64, 64, 1), seed=10 + i)).block_until_ready()
    assert apply_folded._cache_size() == size
    apply_folded(first, mosaic((1, 96, 64, 1))).block_until_ready()  # a new shape compiles once
    assert apply_folded._cache_size() == size + 1


def test_highest_precision_matches_default_on_cpu():
    folded = fold_params(create_model(seed=2))
    x = mosaic((1, 64, 64, 1), scale=0.5)
    hi = apply_folded(folded, x, precision="highest")
    np.testing.assert_allclose(np.asarray(hi), np.asarray(apply_folded(folded, x)), atol=TOL)


def test_bfloat16_fold_is_close_and_keeps_input_dtype():
    model = create_model(seed=0)
    x = mosaic((1, 64, 64, 1), scale=0.5)
    f32 = apply_folded(fold_params(model), x)
    bf = fold_params(model, jnp.bfloat16)
    dtypes = {path[-1].key: leaf.dtype for path, leaf in jax.tree_util.tree_leaves_with_path(bf)}
    assert dtypes == {"w": jnp.bfloat16, "b": jnp.float32}
    out = apply_folded(bf, x)
    assert out.dtype == jnp.float32
    assert 0 < float(jnp.max(jnp.abs(out - f32))) < 0.02


@pytest.mark.parametrize("shape", [(1, 60, 64, 1), (1, 64, 64, 3), (64, 64, 1)])
def test_bad_input_shape_is_a_one_line_error(shape):
    folded = fold_params(create_model(seed=0))
    with pytest.raises(ValueError, match=r"multiples of 32|expected input of shape"):
        apply_folded(folded, jnp.zeros(shape, jnp.float32))

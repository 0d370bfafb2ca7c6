"""estimate_amplification against a straightforward NumPy rendering of the reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from convert_weights.reference_amplifier import reference_amplification, reference_weights
from jaxdark.imaging.amplifier import (
    BIN_EDGES,
    BIN_WEIGHTS,
    AmplifiedNet,
    Amplifier,
    _t,
    bin_weights,
    estimate_amplification,
)

REL_TOL = 1e-5


def _frames():
    rng = np.random.default_rng(0)
    raw = rng.poisson(25, (301, 257)) + 512 + np.rint(rng.normal(0, 3, (301, 257)))
    yield "raw-like 14-bit", (np.maximum(raw - 512, 0) / (16383 - 512)).astype(np.float32)
    raw12 = rng.poisson(8, (64, 96)) + 256
    yield "raw-like 12-bit", (np.maximum(raw12 - 256, 0) / (4095 - 256)).astype(np.float32)
    yield "continuous dark", (rng.random((123, 77), dtype=np.float32) ** 4 * 0.05)
    yield "uniform [0, 1.2)", rng.random((50, 51), dtype=np.float32) * 1.2
    around = np.concatenate(
        [BIN_EDGES, np.nextafter(BIN_EDGES, -1), np.nextafter(BIN_EDGES, 2)]
    ).astype(np.float32)
    yield "edges and neighbours", np.tile(around, 7)
    yield "one edge value", np.full((40, 40), BIN_EDGES[37], np.float32)
    yield "just under an edge", np.full((40, 40), np.nextafter(BIN_EDGES[90], 0), np.float32)
    yield "with negatives", rng.normal(0.002, 0.003, (33, 65)).astype(np.float32)
    yield "single pixel", np.array([[0.0123]], np.float32)
    yield "gradient", np.linspace(0, 1.1, 5000, dtype=np.float32).reshape(50, 100)


@pytest.mark.parametrize("m", [1.0, 5.0, 8.0])
@pytest.mark.parametrize(("name", "x"), list(_frames()), ids=[n for n, _ in _frames()])
def test_matches_reference(name, x, m):
    expected = reference_amplification(x, m)
    got = float(estimate_amplification(x, m))
    assert abs(got / expected - 1) <= REL_TOL, (name, got, expected)


def test_multi_chunk_frame_with_tail():
    # > 2 chunks of 2**20 pixels and a size that is not a multiple of 16
    rng = np.random.default_rng(1)
    x = (rng.random((1517, 1499), dtype=np.float32) ** 3 * 0.03).astype(np.float32)
    x[::97, ::89] = 1.5  # some saturated pixels
    expected = reference_amplification(x, 5.0)
    assert abs(float(estimate_amplification(x, 5.0)) / expected - 1) <= REL_TOL


def test_bin_membership_exact_at_every_edge():
    x = np.concatenate(
        [
            BIN_EDGES,
            np.nextafter(BIN_EDGES, -1),
            np.nextafter(BIN_EDGES, 2),
            np.array([-1.0, -1e-30, -1e-45, -0.0, 0.0, 1e-45, 1.0, 1.5, 300.0], np.float32),
        ]
    ).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(bin_weights(jnp.asarray(x))), reference_weights(x))


def test_bin_coordinate_error_is_far_below_half_a_bin():
    # The exact pass relies on t being within 1e-4 of the edge index at every edge.
    k = np.arange(128)
    t = np.asarray(_t(jnp.asarray(BIN_EDGES)))
    assert np.abs(t - k).max() < 1e-4
    assert BIN_EDGES[0] == 0 and BIN_EDGES[-1] == 1
    assert BIN_WEIGHTS[0] == 1 and BIN_WEIGHTS[-1] == pytest.approx(1e-5)


def test_all_black_and_all_saturated_are_finite():
    black = np.zeros((64, 64), np.float32)
    saturated = np.ones((64, 64), np.float32)
    assert float(estimate_amplification(black, 5.0)) == 300.0  # the reference: 300 too
    assert np.isnan(reference_amplification(saturated))  # the reference's NaN
    assert float(estimate_amplification(saturated, 5.0)) == 1.0
    assert float(estimate_amplification(np.full((8, 8), 7.0, np.float32))) == 1.0
    mixed = saturated.copy()
    mixed[:, :32] = 0
    assert float(estimate_amplification(mixed)) == 300.0


def test_result_is_clipped_to_range():
    assert float(estimate_amplification(np.full((16, 16), 0.9, np.float32), 1.0)) == 1.0
    tiny = np.full((16, 16), 1e-6, np.float32)
    assert float(estimate_amplification(tiny, 1.0)) == 300.0


def test_jit_and_vmap():
    rng = np.random.default_rng(2)
    batch = (rng.random((3, 64, 96), dtype=np.float32) ** 4 * 0.03).astype(np.float32)
    jitted = jax.jit(lambda x, m: estimate_amplification(x, m))
    batched = jax.vmap(lambda x: estimate_amplification(x, 5.0))(jnp.asarray(batch))
    for i in range(3):
        expected = reference_amplification(batch[i], 5.0)
        assert abs(float(jitted(batch[i], 5.0)) / expected - 1) <= REL_TOL
        assert abs(float(batched[i]) / expected - 1) <= REL_TOL


def test_empty_frame_is_refused():
    with pytest.raises(ValueError, match="non-empty"):
        estimate_amplification(np.zeros((0, 5), np.float32))


def test_amplifier_module_scales_each_image():
    rng = np.random.default_rng(3)
    x = (rng.random((2, 32, 64, 1), dtype=np.float32) ** 4 * 0.03).astype(np.float32)
    y = np.asarray(Amplifier(m=5.0)(jnp.asarray(x)))
    for i in range(2):
        a = reference_amplification(x[i], 5.0)
        np.testing.assert_allclose(y[i], a * x[i], rtol=2e-5)
    fixed = np.asarray(Amplifier()(jnp.asarray(x), amplification=7.0))
    np.testing.assert_allclose(fixed, 7.0 * x, rtol=1e-6)


class _Pointwise(nnx.Module):
    """A stand-in network: (B, H, W, 1) -> (B, H, W, 3), clip(x) in every channel."""

    def __call__(self, x):
        return jnp.clip(jnp.concatenate([x, 0.5 * x, 0.25 * x], axis=-1), 0.0, 1.0)


def test_amplified_net_runs_as_one_jitted_function():
    rng = np.random.default_rng(4)
    x = (rng.random((1, 64, 96, 1), dtype=np.float32) ** 4 * 0.03).astype(np.float32)
    net = AmplifiedNet(_Pointwise(), m=5.0)
    out = nnx.jit(lambda model, v: model(v))(net, jnp.asarray(x))
    a = reference_amplification(x[0], 5.0)
    expected = np.clip(np.concatenate([a * x, 0.5 * a * x, 0.25 * a * x], -1), 0, 1)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=2e-5, atol=1e-7)

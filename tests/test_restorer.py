"""jaxdark.Restorer: agreement with the network, shapes, Bayer phases, caching, tiling."""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxdark
from convert_weights.reference_amplifier import reference_amplification
from jaxdark.imaging.dng import write_dng
from jaxdark.imaging.raw import read_raw
from jaxdark.restorer import Restorer


@pytest.fixture(scope="module")
def model():
    return jaxdark.create_model(seed=0)


@pytest.fixture(scope="module")
def restorer(model):
    return Restorer(model)


def _dark(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random(shape, dtype=np.float32) ** 4 * 0.03).astype(np.float32)


def _network(model, x_padded, amplification):
    out = model(jnp.asarray(amplification * x_padded)[None, :, :, None])
    return np.asarray(out)[0]


def test_restore_equals_network_on_amplified_padded_mosaic(model, restorer):
    x = _dark((70, 99))
    y = restorer.restore(x)
    assert y.shape == (70, 99, 3) and y.dtype == np.float32
    assert 0.0 <= y.min() and y.max() <= 1.0
    a = reference_amplification(x, 5.0)  # default m = 5
    padded = np.pad(x, ((0, 26), (0, 29)), mode="reflect")
    expected = _network(model, padded, a)[:70, :99]
    np.testing.assert_allclose(y, expected, atol=2e-5)


def test_given_amplification_is_used_unchanged(model, restorer):
    x = _dark((96, 128), seed=1)
    r = restorer.restore_mosaic(x, amplification=37.5)
    assert r.amplification == 37.5
    np.testing.assert_allclose(r.image, _network(model, x, 37.5), atol=2e-5)
    m8 = restorer.restore_mosaic(x, m=8.0)
    assert m8.amplification == pytest.approx(reference_amplification(x, 8.0), rel=1e-5)


def test_one_compilation_per_frame_shape():
    from tests.support.tiny_model import TINY, numpy_model

    r = Restorer(numpy_model(0, **TINY))
    for shape in [(70, 99), (96, 128), (70, 99)]:
        r.restore(_dark(shape))
    assert r.compiled_shapes == [(70, 99), (96, 128)]
    r.restore(_dark((70, 99)), amplification=3.0)  # a given factor: another function
    r.restore(_dark((96, 128), seed=2))
    assert r.compiled_shapes == [(70, 99), (96, 128), (70, 99)]


def _echo_restorer(**kwargs):
    """A Restorer around a pointwise stand-in network that exposes its input.

    Channel 0: the network input itself; channel 1: the value at the R site of the
    pixel's 2x2 cell (the top-left of each cell of the RGGB grid it was given).
    """

    def apply_fn(params, x):
        r_site = jnp.repeat(jnp.repeat(x[:, ::2, ::2], 2, axis=1), 2, axis=2)
        return jnp.concatenate([x, r_site, params * x], axis=-1)

    return Restorer(None, apply_fn=apply_fn, params=jnp.float32(0.0), **kwargs)


CODE = {"R": 0.1, "G": 0.5, "B": 0.9}


def _coded(pattern, shape):
    x = np.empty(shape, np.float32)
    for i in range(2):
        for j in range(2):
            x[i::2, j::2] = CODE[pattern[2 * i + j]]
    return x


@pytest.mark.parametrize("pattern", ["RGGB", "GRBG", "GBRG", "BGGR"])
def test_every_bayer_phase_reaches_the_network_as_rggb_and_maps_back(pattern):
    x = _coded(pattern, (67, 97))
    y = _echo_restorer().restore(x, amplification=1.0, pattern=pattern)
    assert y.shape == (67, 97, 3)
    np.testing.assert_array_equal(y[..., 0], x)  # pixel-aligned with the input
    np.testing.assert_array_equal(y[..., 1], np.float32(CODE["R"]))  # the network saw RGGB


@pytest.mark.parametrize("pattern", ["GRBG", "BGGR"])
def test_restore_file_matches_restore_of_read_mosaic(tmp_path, model, restorer, pattern):
    rng = np.random.default_rng(2)
    raw = (rng.poisson(30, (70, 99)) + 512).astype(np.uint16)
    path = write_dng(tmp_path / "f.dng", raw, pattern=pattern, white_level=16383)
    frame = read_raw(path)
    y = restorer.restore_file(path)
    assert y.shape == (70, 99, 3)
    a = reference_amplification(frame.mosaic, 5.0)
    dy, dx = (1, 0) if pattern == "GBRG" else (0, 1) if pattern == "GRBG" else (1, 1)
    rggb = np.pad(frame.mosaic, ((dy, 0), (dx, 0)), mode="reflect")
    padded = np.pad(rggb, ((0, 96 - rggb.shape[0]), (0, 128 - rggb.shape[1])), mode="reflect")
    expected = _network(model, padded, a)[dy : dy + 70, dx : dx + 99]
    np.testing.assert_allclose(y, expected, atol=2e-5)
    np.testing.assert_array_equal(y, restorer.restore(frame.mosaic, pattern=pattern))


def test_tiles_reassemble_exactly_for_a_pointwise_network():
    x = _dark((150, 230), seed=3)
    whole = _echo_restorer().restore(x, amplification=3.0)
    tiled_restorer = _echo_restorer(tile_size=64, tile_overlap=32)
    tiled = tiled_restorer.restore(x, amplification=3.0)
    np.testing.assert_array_equal(tiled[..., 0], whole[..., 0])
    np.testing.assert_array_equal(tiled[..., 1], whole[..., 1])
    assert tiled_restorer.compiled_shapes == [(128, 128)]


def test_tiled_network_output_shape_and_range(model):
    x = _dark((96, 160), seed=4)
    r = Restorer(model, tile_size=64, tile_overlap=32)
    tiled = r.restore(x, amplification=40.0)
    assert tiled.shape == (96, 160, 3) and tiled.dtype == np.float32
    assert 0.0 <= tiled.min() and tiled.max() <= 1.0
    assert r.compiled_shapes == [(128, 128)]


@pytest.mark.slow
def test_tiled_official_output_is_close_to_whole_frame(official_weights):
    from jaxdark.data.chart import simulate_raw, synthetic_scene

    raw = simulate_raw(synthetic_scene(384, 512), seed=1)
    x = np.maximum(raw.astype(np.float32) - 512, 0) / (16383 - 512)
    model = jaxdark.load_model(official_weights)
    whole = Restorer(model).restore(x)
    tiled = Restorer(model, tile_size=256, tile_overlap=128).restore(x)
    diff = np.abs(tiled - whole)
    # docs/restoring.md ("Tiling") reports the measured deviation; this guards against tiling bugs
    # (misplaced tiles or phase shifts give errors of order 0.1 on average).
    assert diff.mean() < 0.02 and diff.max() < 0.5


def test_restorer_from_converted_checkpoint_path(tmp_path, model, restorer):
    from jaxdark.weights.convert import save_converted

    save_converted(model, tmp_path / "ckpt")
    x = _dark((64, 96), seed=5)
    from_path = Restorer(tmp_path / "ckpt")
    np.testing.assert_allclose(from_path.restore(x), restorer.restore(x), atol=1e-6)


def test_bad_arguments(model, restorer):
    with pytest.raises(ValueError, match="too small"):
        restorer.restore(np.zeros((31, 64), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        restorer.restore(np.full((64, 64), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        restorer.restore(np.zeros((2, 64, 64), np.float32))
    with pytest.raises(ValueError, match="amplification"):
        restorer.restore(np.zeros((64, 64), np.float32), amplification=0.0)
    with pytest.raises(ValueError, match="m must"):
        restorer.restore(np.zeros((64, 64), np.float32), m=-1.0)
    with pytest.raises(ValueError, match="tile_size"):
        Restorer(model, tile_size=100)
    with pytest.raises(ValueError, match="apply_fn"):
        Restorer(model, apply_fn=lambda p, x: x)
    with pytest.raises(FileNotFoundError):
        Restorer("/nonexistent/weights.pth")

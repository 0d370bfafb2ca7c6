"""The whole-frame device path against the host path it replaced (tiny network)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdark.fileio import to_uint
from jaxdark.imaging.amplifier import estimate_amplification
from jaxdark.imaging.raw import from_rggb, normalise, pad_to_multiple, reflect_pad, to_rggb
from jaxdark.restorer import Restorer
from tests.support.tiny_model import TINY, numpy_model


@pytest.fixture(scope="module")
def restorer():
    return Restorer(numpy_model(1, **TINY))


def _counts(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.poisson(25, shape) + 500 + rng.integers(0, 30, shape)).astype(np.uint16)


def _host_path(r, counts, blacks, white, pattern, m=5.0):
    """Yesterday's path: host normalisation, a host estimate, NumPy phase and padding,
    the network alone, the crop and the quantisation on the host."""
    x = normalise(counts, blacks, white)
    a = float(estimate_amplification(x, m))
    rggb, offset = to_rggb(x, pattern)
    padded = pad_to_multiple(rggb, r.input_multiple)
    y = np.asarray(r.apply_fn(r.params, jnp.asarray(a * padded)[None, :, :, None]))[0]
    return from_rggb(y, offset, x.shape), a


@pytest.mark.parametrize("pattern", ["RGGB", "GBRG"])
def test_device_path_matches_the_host_path(restorer, pattern):
    counts = _counts((70, 99))
    blacks, white = (512.0, 500.0, 508.0, 520.0), 16383.0
    y, a = _host_path(restorer, counts, blacks, white, pattern)
    r8 = restorer.restore_counts(counts, blacks, white, pattern=pattern, out="uint8")
    assert r8.image.dtype == np.uint8 and r8.image.shape == (70, 99, 3)
    assert abs(r8.amplification - a) <= 1e-6 * a
    diff = np.abs(r8.image.astype(int) - to_uint(y, 8).astype(int))
    assert diff.max() <= 1
    r16 = restorer.restore_counts(counts, blacks, white, pattern=pattern, out="uint16")
    assert r16.image.dtype == np.uint16
    np.testing.assert_allclose(r16.image / 65535.0, y, atol=2e-4)
    rf = restorer.restore_counts(counts, blacks, white, pattern=pattern)
    np.testing.assert_allclose(rf.image, y, atol=2e-5)
    # a normalised mosaic through the device path is the same frame
    x = normalise(counts, blacks, white)
    np.testing.assert_allclose(restorer.restore(x, pattern=pattern), rf.image, atol=2e-5)


def test_device_normalisation_is_the_hosts_bit_for_bit():
    counts = _counts((64, 66), 3)
    blacks, white = np.array([512, 500, 508, 520], np.float32), np.float32(4095)
    host = normalise(counts, blacks, white)
    device = jax.jit(normalise)(counts, blacks, white)
    np.testing.assert_array_equal(np.asarray(device), host)


def test_padding_has_one_home_for_host_and_device():
    x = np.arange(40 * 34, dtype=np.float32).reshape(40, 34)
    np.testing.assert_array_equal(np.asarray(pad_to_multiple(jnp.asarray(x), 32)),
                                  pad_to_multiple(x, 32))  # fmt: skip
    big = reflect_pad(x, (60, 2), (4, 70))  # pads larger than the sides: mirrored again
    assert big.shape == (102, 108)
    np.testing.assert_array_equal(big[60:100, 4:38], x)
    np.testing.assert_array_equal(big[60 - 2, 4:38], x[2])  # the mirror keeps the parity


def test_batch_equals_frames_one_by_one(restorer):
    blacks, white = (512.0,) * 4, 16383.0
    frames = [_counts((64, 96), s) for s in range(3)]
    batch = restorer.submit_batch(
        [
            {"mosaic": c, "black_levels": blacks, "white_level": white, "out": "uint8"}
            for c in frames
        ]  # fmt: skip
    )
    for c, pending in zip(frames, batch, strict=True):
        one = restorer.restore_counts(c, blacks, white, out="uint8")
        got = pending.result()
        assert got.amplification == pytest.approx(one.amplification, rel=1e-6)
        assert np.abs(got.image.astype(int) - one.image.astype(int)).max() <= 1


def test_bad_levels_and_outputs_are_one_line(restorer):
    counts = _counts((64, 64))
    with pytest.raises(ValueError, match="white level"):
        restorer.restore_counts(counts, (512,) * 4, 100.0)
    with pytest.raises(ValueError, match="out must be"):
        restorer.restore_counts(counts, (512,) * 4, 4095.0, out="int8")
    with pytest.raises(ValueError, match="too small"):
        restorer.restore_counts(counts[:20], (512,) * 4, 4095.0)

"""Pixel (un)shuffle and channel shuffle against PyTorch's definitions."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxdark.models.ops import channel_shuffle, pixel_shuffle, pixel_unshuffle

torch = pytest.importorskip("torch")
F = torch.nn.functional


def nchw_to_nhwc(a):
    return np.transpose(a, (0, 2, 3, 1))


@pytest.mark.parametrize(("c", "r", "h", "w"), [(1, 2, 8, 12), (4, 16, 32, 64), (4, 4, 8, 16)])
def test_pixel_unshuffle_matches_torch(c, r, h, w):
    x = np.random.default_rng(0).random((2, c, h, w), dtype=np.float32)
    expected = nchw_to_nhwc(F.pixel_unshuffle(torch.from_numpy(x), r).numpy())
    got = np.asarray(pixel_unshuffle(jnp.asarray(nchw_to_nhwc(x)), r))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(("c", "r", "h", "w"), [(4, 2, 4, 6), (12, 2, 3, 5), (192, 4, 2, 3)])
def test_pixel_shuffle_matches_torch(c, r, h, w):
    x = np.random.default_rng(1).random((2, c, h, w), dtype=np.float32)
    expected = nchw_to_nhwc(F.pixel_shuffle(torch.from_numpy(x), r).numpy())
    got = np.asarray(pixel_shuffle(jnp.asarray(nchw_to_nhwc(x)), r))
    np.testing.assert_array_equal(got, expected)


def test_shuffle_inverts_unshuffle():
    x = jnp.asarray(np.random.default_rng(2).random((1, 32, 64, 3), dtype=np.float32))
    np.testing.assert_array_equal(pixel_shuffle(pixel_unshuffle(x, 4), 4), x)


def test_unshuffle_of_raw_gives_rggb_order():
    # a 2x2 RGGB cell with R=1, G=2 (row 0), G=3 (row 1), B=4
    cell = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    mosaic = np.tile(cell, (2, 3))[None, :, :, None]
    out = np.asarray(pixel_unshuffle(jnp.asarray(mosaic), 2))
    assert out.shape == (1, 2, 3, 4)
    np.testing.assert_array_equal(out[0, 1, 2], [1.0, 2.0, 3.0, 4.0])


def test_channel_shuffle_order():
    x = jnp.arange(8, dtype=jnp.float32).reshape(1, 1, 1, 8)
    # new channel k*2 + g takes old channel g*(C/2) + k
    np.testing.assert_array_equal(
        np.asarray(channel_shuffle(x, 2)).ravel(), [0, 4, 1, 5, 2, 6, 3, 7]
    )


def test_channel_shuffle_matches_reference_torch():
    from convert_weights.reference_torch import channel_shuffle as torch_channel_shuffle

    x = np.random.default_rng(3).random((2, 128, 4, 5), dtype=np.float32)
    expected = nchw_to_nhwc(torch_channel_shuffle(torch.from_numpy(x), 2).numpy())
    got = np.asarray(channel_shuffle(jnp.asarray(nchw_to_nhwc(x)), 2))
    np.testing.assert_array_equal(got, expected)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="not divisible by 2"):
        pixel_unshuffle(jnp.zeros((1, 5, 4, 1)), 2)
    with pytest.raises(ValueError, match=r"not divisible by 2\*2"):
        pixel_shuffle(jnp.zeros((1, 2, 2, 6)), 2)
    with pytest.raises(ValueError, match="not divisible by 2 groups"):
        channel_shuffle(jnp.zeros((1, 1, 1, 5)), 2)

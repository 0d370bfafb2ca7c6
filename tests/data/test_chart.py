"""`jaxdark.data.chart`: the colour-chart scene and its dark sensor simulation."""

import numpy as np

from jaxdark.data.chart import (
    BLACK_LEVEL,
    NEUTRAL,
    simulate_raw,
    srgb_to_camera_matrix,
    synthetic_scene,
)


def test_simulated_raw_is_dark_noisy_rggb():
    scene = synthetic_scene(64, 96)
    assert scene.shape == (64, 96, 3) and 0 <= scene.min() and scene.max() <= 1
    raw = simulate_raw(scene, seed=0)
    assert raw.dtype == np.uint16 and raw.shape == (64, 96)
    level = raw.astype(np.float64) - BLACK_LEVEL
    assert 0 < level.mean() < 0.01 * (16383 - BLACK_LEVEL)
    assert not np.array_equal(raw, simulate_raw(scene, seed=1))  # noise
    np.testing.assert_array_equal(raw, simulate_raw(scene, seed=0))  # a seed fixes it


def test_white_maps_to_the_neutral_raw_colour():
    np.testing.assert_allclose(srgb_to_camera_matrix() @ np.ones(3), NEUTRAL, rtol=1e-12)

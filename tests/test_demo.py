"""``jaxdark demo``: a real DNG of a synthetic dark scene, restored like ``jaxdark restore``."""

import cv2
import numpy as np
import pytest

import jaxdark
from jaxdark.cli import main
from jaxdark.cli.demo import (
    BLACK_LEVEL,
    naive_brighten,
    side_by_side,
    simulate_raw,
    synthetic_scene,
)
from jaxdark.raw import read_raw


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from jaxdark.convert import save_converted

    path = tmp_path_factory.mktemp("weights") / "ckpt"
    save_converted(jaxdark.create_model(seed=0), path)
    return path


def test_demo_writes_dng_and_three_pngs(weights, tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--weights", str(weights), "--out-dir", str(out)]
    assert main([*args, "--height", "64", "--width", "96"]) == 0
    frame = read_raw(out / "dark_scene.dng")
    assert frame.pattern == "RGGB" and frame.shape == (64, 96)
    assert frame.black_levels == (BLACK_LEVEL,) * 4 and frame.white_level == 16383
    assert frame.mosaic.mean() < 0.01  # extremely dark
    naive = cv2.imread(str(out / "naive.png"))
    restored = cv2.imread(str(out / "restored.png"))
    both = cv2.imread(str(out / "side_by_side.png"))
    assert naive.shape == restored.shape == (64, 96, 3)
    assert both.shape == (64, 2 * 96 + 8, 3)
    np.testing.assert_array_equal(both[:, 104:], restored)
    expected = jaxdark.Restorer(weights).restore_file(out / "dark_scene.dng")
    np.testing.assert_array_equal(restored[..., ::-1], np.rint(expected * 255).astype(np.uint8))
    assert "restored.png" in capsys.readouterr().out


def test_simulated_raw_is_dark_noisy_rggb():
    scene = synthetic_scene(64, 96)
    assert scene.shape == (64, 96, 3) and 0 <= scene.min() and scene.max() <= 1
    raw = simulate_raw(scene, seed=0)
    assert raw.dtype == np.uint16 and raw.shape == (64, 96)
    level = raw.astype(np.float64) - BLACK_LEVEL
    assert 0 < level.mean() < 0.01 * (16383 - BLACK_LEVEL)
    assert not np.array_equal(raw, simulate_raw(scene, seed=1))  # noise


def test_naive_brightening_and_side_by_side():
    mosaic = np.full((64, 96), 0.01, np.float32)
    image = naive_brighten(mosaic, 20.0)
    assert image.shape == (64, 96, 3) and 0 <= image.min() and image.max() <= 1
    pair = side_by_side(image, image, gap=4)
    assert pair.shape == (64, 196, 3) and (pair[:, 96:100] == 1).all()

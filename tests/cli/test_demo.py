"""``jaxdark demo``: a real photo made dark, written as a DNG, restored like ``jaxdark restore``."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

import jaxdark
from jaxdark.cli import main
from jaxdark.cli.demo import (
    CAPTION_HEIGHT,
    DEMO_GAINS,
    GAP,
    caption,
    load_photo,
    sample_photo_path,
    side_by_side,
)
from jaxdark.constants import SID_BLACK_LEVEL
from jaxdark.data.naive import bilinear_demosaic, naive_brighten
from jaxdark.data.synthetic import mosaic_rggb, synthesize_pair
from jaxdark.imaging import metrics
from jaxdark.imaging.raw import read_raw
from tests.support.tiny_model import save_tiny

TRAINING_MODULES = ("grain", "tensorflow_datasets", "tensorboardX", "ml_collections")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("weights") / "ckpt")  # a small network


def _rgb(path):
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]


def test_demo_writes_dng_pngs_and_scores(weights, tmp_path):
    """One run in a fresh process (so its imports can be checked): files, sizes, the
    restoration equals `Restorer` on the DNG, printed scores equal `jaxdark.imaging.metrics`."""
    out = tmp_path / "demo"
    code = (
        "import sys; from jaxdark.cli import main; "
        f"rc = main(['demo', '--weights', {str(weights)!r}, '--out-dir', {str(out)!r}, "
        "'--crop', '64', '--ratio', '100', '--seed', '3']); "
        f"print('TRAINING', sorted(m for m in {TRAINING_MODULES!r} if m in sys.modules)); "
        "sys.exit(rc)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    stdout = run.stdout
    assert "TRAINING []" in stdout  # the demo stays on the core install
    assert "astronaut.png" in stdout and "100x darker" in stdout

    frame = read_raw(out / "dark_scene.dng")
    assert frame.pattern == "RGGB" and frame.shape == (64, 64)
    assert frame.black_levels == (SID_BLACK_LEVEL,) * 4 and frame.white_level == 16383
    assert frame.mosaic.mean() < 0.02  # extremely dark
    original, naive, restored = (_rgb(out / f"{n}.png") for n in ("original", "naive", "restored"))
    assert original.shape == naive.shape == restored.shape == (64, 64, 3)
    both = _rgb(out / "side_by_side.png")
    assert both.shape == (64 + CAPTION_HEIGHT, 3 * 64 + 2 * GAP, 3)
    np.testing.assert_array_equal(both[CAPTION_HEIGHT:, -64:], restored)
    np.testing.assert_array_equal(both[CAPTION_HEIGHT:, :64], original)

    restorer = jaxdark.Restorer(weights)
    expected = restorer.restore_file(out / "dark_scene.dng", amplification=100.0)
    np.testing.assert_array_equal(restored, np.rint(expected * 255).astype(np.uint8))
    # the printed scores are jaxdark.imaging.metrics of the float images against the original,
    # which the same draws rebuild exactly
    photo, _ = load_photo("astronaut", crop=64)
    pair = synthesize_pair(photo, np.random.default_rng(3), ratio=100.0, gains=DEMO_GAINS)
    truth = metrics.ground_truth_to_unit(pair.target)
    np.testing.assert_array_equal(original, np.rint(truth * 255).astype(np.uint8))
    mosaic = frame.mosaic
    naive_f = naive_brighten(mosaic, 100.0, pair.gains, data_maximum=float(pair.clean.max()) - 512)
    np.testing.assert_array_equal(naive, np.rint(naive_f * 255).astype(np.uint8))
    rows = {line.split()[0]: line.split()[-2:] for line in stdout.splitlines() if "  " in line}
    for name, image in (("naive", naive_f), ("restored", expected)):
        m = metrics.image_metrics(image, truth)
        assert rows[name] == [f"{m['psnr']:.2f}", f"{m['ssim']:.3f}"], stdout


def test_demo_estimated_amplification_and_bad_input(weights, tmp_path, capsys):
    photo = np.random.default_rng(0).integers(0, 256, (40, 50, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "p.png"), photo)
    out = tmp_path / "demo"
    args = ["demo", "--weights", str(weights), "--out-dir", str(out), "--photo"]
    assert main([*args, str(tmp_path / "p.png"), "--m", "5"]) == 0
    stdout = capsys.readouterr().out
    assert "(m=5)" in stdout and read_raw(out / "dark_scene.dng").shape == (40, 50)
    for extra, message in (
        (["nosuchphoto"], "no such file and not a scikit-image sample photo"),
        ([str(tmp_path / "p.png"), "--ratio", "400"], "--ratio must be in [1, 300]"),
        ([str(tmp_path / "p.png"), "--crop", "48"], "--crop 48 is larger than the photo"),
        ([str(tmp_path / "p.png"), "--crop", "33"], "even number >= 32"),
    ):
        assert main([*args, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_sample_photos_and_crop():
    assert sample_photo_path("astronaut").name == "astronaut.png"
    assert sample_photo_path("rocket.jpg").name == "rocket.jpg"
    assert sample_photo_path("../astronaut.png") is None and sample_photo_path("nope") is None
    image, what = load_photo("astronaut", crop=100)
    assert image.shape == (100, 100, 3) and image.dtype == np.uint8 and "astronaut" in what
    full, _ = load_photo("astronaut")
    np.testing.assert_array_equal(image, full[206:306, 206:306])


def test_naive_brightening_develops_like_the_target():
    """A noiseless mosaic of a smooth scene, brightened by 1, develops to (almost) the
    target that `jaxdark.data.synthetic.develop` makes of its true colours."""
    from jaxdark.data.synthetic import develop

    yy, xx = np.mgrid[0:64, 0:96].astype(np.float32)
    camera = np.stack([0.2 + 0.002 * xx, 0.3 + 0.001 * yy, 0.25 + 0.001 * (xx + yy)], -1)
    span = 16383 - SID_BLACK_LEVEL
    mosaic = mosaic_rggb(camera)  # normalised: white level 1
    naive = naive_brighten(mosaic / 4, 4.0, DEMO_GAINS)
    target = develop(camera * span, DEMO_GAINS) / 65535.0
    assert naive.shape == (64, 96, 3) and naive.dtype == np.float32
    # bilinear interpolation of a linear ramp is exact away from the borders
    np.testing.assert_allclose(naive[2:-2, 2:-2], target[2:-2, 2:-2], atol=2e-3)
    assert np.abs(naive - target).max() < 0.02
    rgb = bilinear_demosaic(mosaic)
    np.testing.assert_array_equal(rgb[0::2, 0::2, 0], mosaic[0::2, 0::2])  # known samples kept
    np.testing.assert_array_equal(rgb[1::2, 0::2, 1], mosaic[1::2, 0::2])
    with pytest.raises(ValueError, match="even sides"):
        bilinear_demosaic(np.zeros((5, 6)))


def test_caption_and_side_by_side():
    image = np.zeros((40, 300, 3), np.float32)
    captioned = caption(image, "hello")
    assert captioned.shape == (40 + CAPTION_HEIGHT, 300, 3)
    assert captioned[:CAPTION_HEIGHT].min() == 0 and captioned[0].min() == 1  # text drawn
    row = side_by_side([image, image, image], gap=4)
    assert row.shape == (40, 908, 3) and (row[:, 300:304] == 1).all()

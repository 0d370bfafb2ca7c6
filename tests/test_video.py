"""RAW video: the smoothed amplification (no flicker, light changes followed), the MP4."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from jaxdark import video
from jaxdark.data.synthetic_clip import ClipSpec, dark_clip
from jaxdark.imaging.raw import RawCounts
from jaxdark.restorer import Restorer


def _pointwise_restorer():
    """A stand-in network whose output brightness is its input's: clip(x), three times."""

    def apply_fn(params, x):
        return jnp.clip(jnp.concatenate([x, x, x], axis=-1) * params, 0.0, 1.0)

    return Restorer(None, apply_fn=apply_fn, params=jnp.float32(1.0))


def _photo():
    import skimage.data

    return skimage.data.astronaut()


def _frames(counts):
    return [RawCounts("f", c, "RGGB", "synthetic", (512.0,) * 4, 16383.0) for c in counts]


def _mean_changes(images):
    means = np.array([im.astype(np.float64).mean() for im in images])
    return np.abs(np.diff(means)) / means[:-1]


def test_constant_dark_scene_does_not_flicker():
    clip = list(dark_clip(_photo(), ClipSpec((256, 384), frames=24, step=0, ratio=200, seed=1)))
    r = _pointwise_restorer()
    smoothed = list(video.VideoRestorer(r).frames(_frames(clip), out="float32"))
    raw_estimates = [r.amplification(f.normalised().mosaic) for f in _frames(clip)]
    changes = _mean_changes([im for im, _ in smoothed])
    assert changes.max() <= 0.01, changes.max()
    # the per-frame estimates themselves vary more than the smoothed factors
    a = np.array([x for _, x in smoothed])
    assert np.std(np.diff(np.log(a))) < 0.5 * np.std(np.diff(np.log(raw_estimates)))


def test_a_lamp_switched_on_is_followed_at_once_and_small_changes_within_the_stated_frames():
    n, on = 40, 10
    light = [1.0] * on + [4.0] * (n - on)
    clip = _frames(dark_clip(_photo(), ClipSpec((64, 96), n, 0, 200, 2), light=light))
    r = _pointwise_restorer()
    a = np.array([x for _, x in video.VideoRestorer(r).frames(clip, out="float32")])
    estimates = np.array([r.amplification(f.normalised().mosaic) for f in clip])
    assert a[on] == pytest.approx(estimates[on], rel=1e-5)  # the frame of the change itself
    assert a[on - 1] / a[on] > 2.0  # 4x the light: the estimate falls 2.5x
    # a lasting change below the jump threshold: within 1% after FOLLOW_FRAMES frames
    state = video.initial_state()
    state = video.smooth_amplification(state, 100.0)
    for _ in range(video.FOLLOW_FRAMES):
        state = video.smooth_amplification(state, 100.0 * (video.JUMP - 1e-3))
    assert abs(math.exp(float(state[0])) / (100.0 * (video.JUMP - 1e-3)) - 1) <= 0.01
    assert video.FOLLOW_FRAMES == 14  # stated in the docs


def test_restore_video_writes_an_h264_mp4(tmp_path):
    av = pytest.importorskip("av")
    clip = _frames(dark_clip(_photo(), ClipSpec((64, 96), 6, 2, 100, 3)))
    out = tmp_path / "clip.mp4"
    stats = video.restore_video(_pointwise_restorer(), clip, out, fps=12, device_planes=True)
    assert stats.frames == 6 and len(stats.amplifications) == 6
    with av.open(str(out)) as container:
        s = container.streams.video[0]
        assert s.codec_context.name == "h264" and (s.width, s.height) == (96, 64)
        assert sum(1 for _ in container.decode(s)) == 6
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temporary left


def test_rgb_to_i420_uses_bt709_limited_range():
    colours = np.array([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 0, 1]], np.float32)
    image = np.repeat(np.repeat(colours[None], 2, axis=0), 2, axis=1)  # 2 x 8, 2x2 blocks
    planes = np.asarray(video.rgb_to_i420(jnp.asarray(image)))
    y, u, v = planes[0], planes[2, :4], planes[2, 4:]
    assert planes.shape == (3, 8) and planes.dtype == np.uint8
    assert list(y[::2]) == [16, 235, 63, 32]  # 16 + 219 * (0, 1, 0.2126, 0.0722)
    assert (planes[1] == y).all()
    assert list(u) == [128, 128, 102, 240] and list(v) == [128, 128, 240, 118]
    odd = np.asarray(video.rgb_to_i420(jnp.zeros((5, 7, 3))))
    assert odd.shape == (6, 6)  # 4 x 6 kept: odd sides lose a row and a column


def test_device_planes_and_host_rgb_encode_to_the_same_video(tmp_path):
    av = pytest.importorskip("av")
    image = _photo()[:63, :95] / 255.0
    decoded = {}
    for name, frame in [
        ("planes", np.asarray(video.rgb_to_i420(jnp.asarray(image)))),
        ("rgb", np.rint(image * 255).astype(np.uint8)),
    ]:
        writer = video.Mp4Writer(tmp_path / f"{name}.mp4", 12, crf=0)
        writer.write(frame)
        writer.close()
        with av.open(str(tmp_path / f"{name}.mp4")) as c:
            s = c.streams.video[0]
            assert (s.width, s.height, s.codec_context.colorspace) == (94, 62, 1)  # BT.709
            decoded[name] = next(c.decode(s)).to_ndarray(format="rgb24").astype(float)
    ref = image[:62, :94] * 255
    for name, back in decoded.items():
        assert np.abs(back - ref).mean() < 3.0, name  # 4:2:0 chroma loses detail only
    assert np.abs(decoded["planes"] - decoded["rgb"]).mean() < 1.0

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
    stats = video.restore_video(_pointwise_restorer(), clip, out, fps=12)
    assert stats.frames == 6 and len(stats.amplifications) == 6
    with av.open(str(out)) as container:
        s = container.streams.video[0]
        assert s.codec_context.name == "h264" and (s.width, s.height) == (96, 64)
        assert sum(1 for _ in container.decode(s)) == 6
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temporary left

"""A dark RAW clip from one photo: a slow pan with fresh sensor noise in every frame.

The photo is turned once into the clean exposure of the synthetic camera
(`jaxdark.data.synthetic.synthesize_pair`: unprocessing, a Sony a7S II's levels), and
every frame is a window of it, moved by ``step`` pixels per frame (an even number, so the
window keeps the RGGB phase), darkened ``ratio`` times and given its own draw of the
camera's calibrated noise (`jaxdark.data.noise.add_noise`: shot, read, row noise,
quantisation). ``light`` optionally scales the scene's light per frame (a lamp switched
on: a step in ``light``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from jaxdark.constants import SID_BLACK_LEVEL, SID_WHITE_LEVEL
from jaxdark.data.noise import add_noise
from jaxdark.data.synthetic import SynthesisConfig, synthesize_pair


@dataclass(frozen=True)
class ClipSpec:
    """Frame size (H, W), number of frames, pan step (pixels per frame, even), exposure
    ratio and seed of a synthetic clip."""

    size: tuple[int, int]
    frames: int
    step: int = 2
    ratio: float = 100.0
    seed: int = 0


def dark_clip(
    photo: np.ndarray,
    spec: ClipSpec,
    gains: Sequence[float] = (2.0, 1.0, 2.0),
    light: Sequence[float] | None = None,
) -> Iterator[np.ndarray]:
    """(H, W) uint16 RGGB mosaics (black 512, white 16383), one per frame, panning right
    (then down if the photo is not wide enough); ``light[i]`` scales frame i's light."""
    h, w = spec.size
    if spec.step % 2 or spec.step < 0 or h % 2 or w % 2:
        raise ValueError(f"step and the frame's sides must be even, got {spec.step}, {h}x{w}")
    if photo.shape[0] < h or photo.shape[1] < w:
        raise ValueError(f"photo of {photo.shape[1]}x{photo.shape[0]} is smaller than {w}x{h}")
    rng = np.random.default_rng(spec.seed)
    still = SynthesisConfig(white_balance_spread=0.0, color_matrix_spread=0.0)
    pair = synthesize_pair(photo, rng, still, ratio=spec.ratio, gains=gains)
    scene = (pair.clean.astype(np.float32) - np.float32(SID_BLACK_LEVEL)) / np.float32(spec.ratio)
    span_x = scene.shape[1] - w
    span_y = scene.shape[0] - h
    for i in range(spec.frames):
        shift = i * spec.step
        x0 = min(shift, span_x) // 2 * 2
        y0 = min(max(shift - span_x, 0), span_y) // 2 * 2
        signal = scene[y0 : y0 + h, x0 : x0 + w]
        if light is not None:
            signal = signal * np.float32(light[i])
        dark = add_noise(signal, pair.noise, rng) + np.float32(SID_BLACK_LEVEL)
        yield np.clip(dark, 0, SID_WHITE_LEVEL).astype(np.uint16)

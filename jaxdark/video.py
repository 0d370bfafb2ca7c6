"""RAW video: a sequence of dark RAW frames restored into an H.264 MP4, without flicker.

The amplification of every frame is the reference's estimate (`jaxdark.imaging.amplifier`),
smoothed over time on the device (`smooth_amplification`):

* it is averaged exponentially in the log domain, ``L_t = L_{t-1} + ALPHA * (log e_t -
  L_{t-1})`` with ``ALPHA = 0.2``: noise in the per-frame estimate ``e_t`` is damped (its
  standard deviation by ``sqrt(ALPHA / (2 - ALPHA))``, a third), so a scene of constant
  brightness does not flicker;
* a change of the estimate by more than ``JUMP`` (20%) from the running value is a real
  change of light (a lamp switched on), and the running value jumps to the new estimate
  on that very frame;
* a smaller lasting change is followed exponentially: within ``FOLLOW_FRAMES`` (14)
  frames the factor is within 1% of the new estimate (``0.8**14 * log 1.2 < 0.01``).

The first frame uses its own estimate. The smoothing state lives on the device and is
passed from one frame's compiled function to the next, so no frame waits for the host.
Frames are read by a thread pool, restored with ``in_flight`` frames outstanding
(asynchronous dispatch) and encoded by PyAV (libx264, yuv420p) in a writer thread; the
MP4 is written to a temporary file and renamed (`jaxdark.fileio.write_atomic`).
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdark.fileio import write_atomic
from jaxdark.imaging.amplifier import check_m, estimate_amplification
from jaxdark.imaging.device_frame import FrameSpec, abstract_args, frame_function
from jaxdark.imaging.raw import normalise
from jaxdark.streaming import io_nice, lower_thread_priority

ALPHA = 0.2  # weight of the newest estimate in the log-domain moving average
JUMP = 1.2  # an estimate this many times above or below the running value resets it
KR, KB = 0.2126, 0.0722  # BT.709 luma weights of red and blue (the video's colour matrix)
# FFmpeg's codes for BT.709 matrix, limited ("MPEG") range, BT.709 primaries, BT.709 curve:
# the curve our images carry (SID's targets: LibRaw's BT.709 gamma, 2.222 with slope 4.5)
BT709_TAGS = (1, 1, 1, 1)
FOLLOW_FRAMES = math.ceil(math.log(0.01 / math.log(JUMP)) / math.log(1.0 - ALPHA))


def initial_state() -> jax.Array:
    """The smoothing state before the first frame: (log factor, seen any frame yet)."""
    return jnp.zeros((2,), jnp.float32)


def smooth_amplification(
    state: jax.Array, estimate: jax.Array, alpha: float = ALPHA, jump: float = JUMP
) -> jax.Array:
    """The next smoothing state after a frame whose estimate is ``estimate`` (see the
    module docstring); ``exp(state[0])`` is the factor the frame is restored with."""
    log_e = jnp.log(jnp.asarray(estimate, jnp.float32))
    running, seen = state[0], state[1]
    reset = (seen == 0) | (jnp.abs(log_e - running) > math.log(jump))
    new = jnp.where(reset, log_e, running + alpha * (log_e - running))
    return jnp.stack([new, jnp.float32(1.0)])


def rgb_to_i420(image: jax.Array) -> jax.Array:
    """(H, W, 3) RGB in [0, 1] -> (3H'/2, W') uint8 I420 planes (Y, then U, then V) for
    yuv420p video: BT.709 matrix, limited range (Y 16-235, chroma 16-240), each chroma
    sample from the mean colour of a 2x2 block. Odd sides lose their last row or column."""
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    rgb = jnp.clip(image[:h, :w].astype(jnp.float32), 0.0, 1.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]

    def luma(r, g, b):
        return KR * r + (1.0 - KR - KB) * g + KB * b

    def block_mean(c):  # strided slices: cheaper than a reshape and mean on XLA's CPU
        return 0.25 * (c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2])

    mr, mg, mb = block_mean(r), block_mean(g), block_mean(b)
    planes = (
        16.0 + 219.0 * luma(r, g, b),
        128.0 + 112.0 * (mb - luma(mr, mg, mb)) / (1.0 - KB),
        128.0 + 112.0 * (mr - luma(mr, mg, mb)) / (1.0 - KR),
    )
    flat = [jnp.rint(p).astype(jnp.uint8).reshape(-1) for p in planes]
    return jnp.concatenate(flat).reshape(h * 3 // 2, w)


def video_frame_function(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    spec: FrameSpec,
    alpha: float,
    jump: float,
    yuv: bool = False,
) -> Callable[..., tuple[jax.Array, jax.Array, jax.Array]]:
    """``(params, raw, black, white, m, state) -> (image, factor, state)``: the estimate,
    its smoothing and the whole frame (`jaxdark.imaging.device_frame`) in one function;
    with ``yuv`` the image is `rgb_to_i420` of the float32 result (``spec.out`` float32)."""
    inner = frame_function(apply_fn, replace(spec, estimate=False, batch=None))

    def step(params, raw, black, white, m, state):
        x = raw if spec.normalised else normalise(raw, black, white)
        state = smooth_amplification(state, estimate_amplification(x, m), alpha, jump)
        image, a = inner(params, raw, black, white, jnp.exp(state[0]))
        return (rgb_to_i420(image) if yuv else image), a, state

    return step


@dataclass
class VideoStats:
    """What `restore_video` did."""

    frames: int
    seconds: float  # from the start to the last frame written, compilation included
    amplifications: list[float]
    first_seconds: float = float("nan")  # until the first frame came back (compiles)

    @property
    def fps(self) -> float:
        """Frames per second over the whole run."""
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    @property
    def steady_fps(self) -> float:
        """Frames per second after the first frame (compilation left out)."""
        rest = self.seconds - self.first_seconds
        return (self.frames - 1) / rest if self.frames > 1 and rest > 0 else float("nan")


class VideoRestorer:
    """Restore a clip frame by frame with the smoothed amplification, k frames in flight.

    Args:
      restorer: a `jaxdark.Restorer` (its network, parameters and input multiple).
      m: brightness of the estimate (5, as the reference trained).
      alpha: weight of the newest estimate in the log-domain moving average (module
        docstring).
      jump: an estimate this many times above or below the running value resets it.
    """

    def __init__(self, restorer: Any, m: float = 5.0, alpha: float = ALPHA, jump: float = JUMP):
        check_m(m)
        if not 0 < alpha <= 1 or jump <= 1:
            raise ValueError(f"need 0 < alpha <= 1 and jump > 1, got {alpha} and {jump}")
        if restorer.tile_size is not None:
            raise ValueError("video frames are restored whole; give a Restorer without tiles")
        self.restorer, self.m, self.alpha, self.jump = restorer, np.float32(m), alpha, jump
        self._compiled: dict[tuple[FrameSpec, bool], Any] = {}

    def _fn(self, spec: FrameSpec, yuv: bool) -> Any:
        fn = self._compiled.get((spec, yuv))
        if fn is None:
            step = video_frame_function(self.restorer.apply_fn, spec, self.alpha, self.jump, yuv)
            state = jax.ShapeDtypeStruct((2,), jnp.float32)
            args = abstract_args(spec)
            fn = jax.jit(step).lower(self.restorer.params, *args, state).compile()
            self._compiled[(spec, yuv)] = fn
        return fn

    def frames(
        self, frames: Iterable[Any], in_flight: int = 2, out: str = "uint8"
    ) -> Iterator[tuple[np.ndarray, float]]:
        """(image, factor) per frame, in order; frames as `jaxdark.streaming` takes them
        (paths are read by the caller's iterator: give loaded frames or paths). ``out``
        is ``"uint8"``, ``"uint16"``, ``"float32"`` (H, W, 3) RGB, or ``"yuv420p"``: the
        (3H/2, W) I420 planes of `rgb_to_i420`, made on the device for the encoder."""
        from jaxdark.streaming import frame_arguments

        yuv = out == "yuv420p"
        out = "float32" if yuv else out
        state = initial_state()
        pending: deque[tuple[Any, Any]] = deque()
        for frame in frames:
            args = frame_arguments(frame)
            x, black, white, _, spec = self.restorer._prepare(
                args["mosaic"],
                args.get("black_levels"),
                args.get("white_level"),
                None,
                float(self.m),
                args["pattern"],
                out,
            )
            fn = self._fn(spec, yuv)
            image, a, state = fn(
                self.restorer.params, jax.device_put(x), black, white, self.m, state
            )
            pending.append((image, a))
            if len(pending) > in_flight:
                image, a = pending.popleft()
                yield np.asarray(image), float(a)
        while pending:
            image, a = pending.popleft()
            yield np.asarray(image), float(a)


class Mp4Writer:
    """H.264 (libx264, yuv420p, flagged BT.709 limited range) MP4 frames, encoded by PyAV
    in a thread of its own (a bounded queue feeds it) at `jaxdark.streaming.io_nice`
    (``nice``; x264's own threads inherit it).

    A frame is (3H/2, W) uint8 I420 planes (`rgb_to_i420`, the fast way: no conversion on
    the host) or (H, W, 3) uint8 RGB (converted by libswscale with the same matrix; odd
    sides are cropped by one pixel, as yuv420p needs even sides)."""

    def __init__(
        self,
        path: Path,
        fps: float,
        crf: int = 18,
        preset: str = "veryfast",
        nice: int | None = None,
    ):
        from jaxdark.extras import require_extra

        require_extra("video", "jaxdark video")
        import av

        self._av = av
        self._container = av.open(str(path), "w", format="mp4")
        self._stream = None
        self._fps, self._crf, self._preset = fps, crf, preset
        self._nice = io_nice(nice)
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="jaxdark-mp4", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        lower_thread_priority(self._nice)
        try:
            while (image := self._queue.get()) is not None:
                self._encode(image)
            if self._stream is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            self._error = e
            while self._queue.get() is not None:  # drain so put() never blocks
                pass
        finally:
            self._container.close()

    def _encode(self, image: np.ndarray) -> None:
        av = self._av
        if image.ndim == 2:  # I420 planes
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="yuv420p")
        else:
            h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
            rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="rgb24")
            frame = rgb.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
        if self._stream is None:
            from fractions import Fraction

            s = self._container.add_stream("libx264", rate=Fraction(self._fps).limit_denominator())
            s.width, s.height, s.pix_fmt = frame.width, frame.height, "yuv420p"
            s.options = {"crf": str(self._crf), "preset": self._preset}
            cc = s.codec_context  # tell players the matrix, range, primaries and curve
            cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = BT709_TAGS
            self._stream = s
        elif (frame.width, frame.height) != (self._stream.width, self._stream.height):
            raise ValueError(
                f"frame of {frame.width}x{frame.height} in a "
                f"{self._stream.width}x{self._stream.height} video"
            )
        frame.colorspace, frame.color_range = BT709_TAGS[:2]
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def write(self, image: np.ndarray) -> None:
        """Queue one frame (blocks while the encoder is 4 frames behind)."""
        if self._error is not None:
            raise self._error
        self._queue.put(image)

    def close(self) -> None:
        """Flush the encoder and close the file; re-raises an encoding error."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise OSError(f"video encoding failed: {self._error}") from None


def restore_video(
    restorer: Any,
    frames: Iterable[Any],
    out: str | os.PathLike,
    *,
    fps: float = 24.0,
    m: float = 5.0,
    in_flight: int = 2,
    crf: int = 18,
    on_frame: Callable[[int, float], None] | None = None,
    nice: int | None = None,
    device_planes: bool | None = None,
) -> VideoStats:
    """Restore ``frames`` (loaded frames: `jaxdark.imaging.raw.RawCounts`, RawFrame or
    normalised mosaics) into the H.264 MP4 ``out``, written atomically.

    ``on_frame(index, factor)`` is called as each frame comes back. The encoder runs at
    `jaxdark.streaming.io_nice` (``nice``). With ``device_planes`` (default: on a GPU or
    TPU) the device converts each frame to yuv420p planes (`rgb_to_i420`: half the bytes
    to copy back, no conversion on the host); otherwise libswscale converts uint8 RGB on
    the encoder's thread, which is cheaper on XLA's CPU backend (4K: 0.045 s on one core
    against 0.08 s on two)."""
    if device_planes is None:
        device_planes = jax.default_backend() != "cpu"
    out_type = "yuv420p" if device_planes else "uint8"
    video = VideoRestorer(restorer, m)
    amplifications: list[float] = []
    start = time.perf_counter()
    first: list[float] = []

    def write(tmp: Path) -> None:
        writer = Mp4Writer(tmp, fps, crf, nice=nice)
        try:
            for i, (image, a) in enumerate(video.frames(frames, in_flight, out_type)):
                writer.write(image)
                amplifications.append(a)
                if not first:
                    first.append(time.perf_counter() - start)
                if on_frame is not None:
                    on_frame(i, a)
        finally:
            writer.close()
        if not amplifications:
            raise ValueError("no frames to write")

    write_atomic(out, write)
    seconds = time.perf_counter() - start
    return VideoStats(len(amplifications), seconds, amplifications, first[0])

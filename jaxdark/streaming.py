"""Streaming restoration: an iterable of frames in, restored images out, k in flight.

    from jaxdark import Restorer
    from jaxdark.streaming import restore_stream

    for r in restore_stream(Restorer(weights), paths_or_mosaics, in_flight=2, out="uint8"):
        use(r.image, r.amplification)

Frames may be RAW file paths (read by a pool of ``read_workers`` threads, at most
``read_ahead`` ahead), `jaxdark.imaging.raw.RawCounts` (sensor integers, normalised on the
device), `jaxdark.imaging.raw.RawFrame` or normalised (H, W) float mosaics (RGGB unless
``pattern`` says otherwise). Each frame is one call of `jaxdark.Restorer.submit`, which
returns before the device has finished (JAX's asynchronous dispatch), so while frame i is
copied back and handed out, frames i+1 ... i+k are uploaded and computed. With
``batch`` > 1, runs of consecutive frames of one shape are restored as one batched call.

Memory is bounded: at most ``in_flight`` calls (of ``batch`` frames) wait on the device
and ``read_ahead`` frames wait in host memory. Results come out in input order. A file
that cannot be read raises its one-line `jaxdark.errors.RawFileError` at its turn.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from jaxdark.imaging.device_frame import PendingRestoration, Restoration
from jaxdark.imaging.raw import RawCounts, RawFrame, read_raw_counts

FrameInput = str | os.PathLike | np.ndarray | RawCounts | RawFrame


def read_ahead(
    items: Iterable[Any], read: Any, workers: int = 2, ahead: int = 4
) -> Iterator[tuple[Any, Future]]:
    """``(item, future of read(item))`` in input order, with at most ``ahead`` reads
    submitted to a pool of ``workers`` threads ahead of the consumer."""
    if workers < 1 or ahead < 1:
        raise ValueError(f"workers and ahead must be >= 1, got {workers} and {ahead}")
    with ThreadPoolExecutor(workers, thread_name_prefix="jaxdark-read") as pool:
        window: deque[tuple[Any, Future]] = deque()
        for item in items:
            window.append((item, pool.submit(read, item)))
            if len(window) >= ahead:
                yield window.popleft()
        while window:
            yield window.popleft()


def frame_arguments(frame: Any, pattern: str = "RGGB") -> dict[str, Any]:
    """`jaxdark.Restorer.submit`'s arguments for one loaded frame (counts, RawFrame or a
    normalised mosaic)."""
    if isinstance(frame, RawCounts):
        return {
            "mosaic": frame.counts,
            "pattern": frame.pattern,
            "black_levels": frame.black_levels,
            "white_level": frame.white_level,
        }
    if isinstance(frame, RawFrame):
        return {"mosaic": frame.mosaic, "pattern": frame.pattern}
    return {"mosaic": np.asarray(frame), "pattern": pattern}


def _load(item: Any) -> Any:
    if isinstance(item, str | os.PathLike):
        return read_raw_counts(item)
    return item


def _key(args: dict[str, Any]) -> tuple:
    x = args["mosaic"]
    return (x.shape, x.dtype.str, args["pattern"])


def restore_stream(
    restorer: Any,
    frames: Iterable[FrameInput],
    *,
    in_flight: int = 2,
    batch: int = 1,
    out: str = "uint8",
    m: float = 5.0,
    amplification: float | None = None,
    pattern: str = "RGGB",
    read_workers: int = 2,
    read_ahead_frames: int | None = None,
) -> Iterator[Restoration]:
    """Restore ``frames`` in order with ``in_flight`` device calls outstanding.

    Args:
      restorer: a `jaxdark.Restorer`.
      frames: paths, `RawCounts`, `RawFrame` or normalised (H, W) float mosaics.
      in_flight: device calls submitted ahead of the one being handed out (k >= 1).
      batch: frames per device call; consecutive frames of one shape, dtype and Bayer
        phase are stacked (a shorter run is restored frame by frame).
      out: ``"uint8"`` (default), ``"uint16"`` or ``"float32"``.
      m: brightness of the estimated amplification, as `jaxdark.Restorer.restore`.
      amplification: a fixed factor instead of the estimate, as `jaxdark.Restorer.restore`.
      pattern: Bayer layout of bare mosaics (files and frames carry their own).
      read_workers: threads reading files.
      read_ahead_frames: how many loaded frames may wait (default
        ``in_flight * batch + read_workers``).

    Yields:
      One `jaxdark.imaging.device_frame.Restoration` per frame, in input order; its
      ``seconds`` run from the frame's submission to its arrival on the host.
    """
    if in_flight < 1 or batch < 1:
        raise ValueError(f"in_flight and batch must be >= 1, got {in_flight} and {batch}")
    ahead = read_ahead_frames or in_flight * batch + read_workers
    pending: deque[PendingRestoration] = deque()
    group: list[dict[str, Any]] = []
    common = {"m": m, "amplification": amplification, "out": out}

    def flush() -> None:
        if len(group) == batch and batch > 1:
            pending.extend(restorer.submit_batch([{**g, **common} for g in group]))
        else:
            for g in group:
                pending.append(restorer.submit(**g, **common))
        group.clear()

    for _, future in read_ahead(frames, _load, read_workers, ahead):
        args = frame_arguments(future.result(), pattern)
        if group and _key(group[0]) != _key(args):
            flush()
        group.append(args)
        if len(group) == batch:
            flush()
        while len(pending) > in_flight * batch:
            yield pending.popleft().result()
    flush()
    while pending:
        yield pending.popleft().result()

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

Worker priority: when the network runs on the CPU, reading, encoding and writing threads
compete with XLA's threads for the same cores, and a convolution split over every core
waits for its slowest part, so one busy worker slows the network by more than the core it
takes. Workers therefore run at a lower priority: `io_nice` adds 19 to their niceness on
a CPU backend (0 on an accelerator; Linux only), so they fill the network's idle moments
instead (measured in docs/performance.md).
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from jaxdark.imaging.device_frame import PendingRestoration, Restoration
from jaxdark.imaging.raw import RawCounts, RawFrame, read_raw_counts

FrameInput = str | os.PathLike | np.ndarray | RawCounts | RawFrame

CPU_IO_NICE = 19  # workers' niceness above the network's when both share the CPU


def io_nice(nice: int | None = None, what: str = "niceness") -> int:
    """The niceness to add to I/O worker threads: ``nice`` if given (0 to 19, else a
    one-line ValueError naming it as ``what``), else `CPU_IO_NICE` when JAX computes on
    the CPU and 0 on an accelerator."""
    if nice is None:
        import jax

        return CPU_IO_NICE if jax.default_backend() == "cpu" else 0
    if not 0 <= nice <= 19:
        raise ValueError(f"{what} must be in [0, 19], got {nice}")
    return nice


def lower_thread_priority(nice: int) -> None:
    """Add ``nice`` to the calling thread's niceness (Linux, where niceness is per thread;
    elsewhere, or for 0, nothing). Threads it starts later inherit it."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError:  # not permitted here: the thread keeps its priority
        pass


def worker_pool(workers: int, name: str, nice: int | None = None) -> ThreadPoolExecutor:
    """A pool of ``workers`` threads named ``name``, each at `io_nice` (``nice``)."""
    nice = io_nice(nice)
    return ThreadPoolExecutor(
        workers, thread_name_prefix=name, initializer=lower_thread_priority, initargs=(nice,)
    )


def read_ahead(
    items: Iterable[Any], read: Any, workers: int = 2, ahead: int = 4, nice: int | None = None
) -> Iterator[tuple[Any, Future]]:
    """``(item, future of read(item))`` in input order, with at most ``ahead`` reads
    submitted to a pool of ``workers`` threads ahead of the consumer, each thread at
    `io_nice` (``nice``)."""
    if workers < 1 or ahead < 1:
        raise ValueError(f"workers and ahead must be >= 1, got {workers} and {ahead}")
    with worker_pool(workers, "jaxdark-read", nice) as pool:
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
    read_nice: int | None = None,
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
      read_nice: niceness added to the reading threads (default `io_nice`).

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

    for _, future in read_ahead(frames, _load, read_workers, ahead, read_nice):
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

"""jaxdark.streaming: order, equality with one-by-one restoration, batching, bounds."""

import sys

import numpy as np
import pytest

from jaxdark.imaging.dng import write_dng
from jaxdark.imaging.raw import read_raw_counts
from jaxdark.restorer import Restorer
from jaxdark.streaming import CPU_IO_NICE, io_nice, read_ahead, restore_stream, worker_pool
from tests.support.tiny_model import TINY, numpy_model


@pytest.fixture(scope="module")
def restorer():
    return Restorer(numpy_model(2, **TINY))


def _counts(seed, shape=(64, 96)):
    rng = np.random.default_rng(seed)
    return (rng.poisson(20 + 10 * seed, shape) + 512).astype(np.uint16)


def test_stream_of_files_and_frames_matches_one_by_one(restorer, tmp_path):
    paths = [write_dng(tmp_path / f"f{i}.dng", _counts(i), pattern="GRBG") for i in range(3)]
    mosaic = np.random.default_rng(9).random((64, 96), dtype=np.float32) * 0.02
    frames = [*paths, read_raw_counts(paths[0]), mosaic]
    got = list(restore_stream(restorer, frames, in_flight=2, out="uint8"))
    assert len(got) == 5
    for frame, r in zip(frames, got, strict=True):
        if isinstance(frame, np.ndarray):
            expected = restorer.restore_mosaic(frame, out="uint8")
        else:
            counts = frame if not isinstance(frame, type(paths[0])) else read_raw_counts(frame)
            expected = restorer.restore_frame(counts, out="uint8")
        np.testing.assert_array_equal(r.image, expected.image)
        assert r.amplification == expected.amplification
    np.testing.assert_array_equal(got[0].image, got[3].image)  # a file = its counts


def test_batched_stream_equals_unbatched(restorer):
    frames = [_counts(i) for i in range(5)] + [_counts(7, (64, 64))]
    from jaxdark.imaging.raw import RawCounts

    raws = [RawCounts("x", c, "RGGB", "cam", (512.0,) * 4, 16383.0) for c in frames]
    one = list(restore_stream(restorer, raws, in_flight=1, out="uint8"))
    two = list(restore_stream(restorer, raws, in_flight=2, batch=2, out="uint8"))
    assert [r.image.shape for r in two] == [(64, 96, 3)] * 5 + [(64, 64, 3)]
    for a, b in zip(one, two, strict=True):
        assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1
        assert b.amplification == pytest.approx(a.amplification, rel=1e-6)


def test_in_flight_and_read_ahead_are_bounded(restorer):
    class Counting:
        def __init__(self, inner):
            self.inner, self.open, self.most = inner, 0, 0

        def submit(self, **kw):
            pending = self.inner.submit(**kw)
            self.open += 1
            self.most = max(self.most, self.open)
            outer = self

            class Wrapped:
                def result(self):
                    outer.open -= 1
                    return pending.result()

            return Wrapped()

    counting = Counting(restorer)
    frames = [np.full((64, 64), 0.01 * (i + 1), np.float32) for i in range(6)]
    assert len(list(restore_stream(counting, frames, in_flight=2))) == 6
    assert counting.most == 3  # k frames ahead of the one being handed out

    started = []
    reads = read_ahead(range(10), lambda i: started.append(i) or i, workers=1, ahead=3)
    first = next(reads)
    assert first[1].result() == 0 and len(started) <= 3
    assert [f.result() for _, f in reads] == list(range(1, 10))


def test_a_bad_file_raises_its_one_line_error(restorer, tmp_path):
    bad = tmp_path / "bad.dng"
    bad.write_text("not raw")
    from jaxdark.errors import RawFileError

    with pytest.raises(RawFileError, match="bad.dng"):
        list(restore_stream(restorer, [bad]))


def _niceness() -> int:
    import os
    import threading

    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_workers_run_at_a_lower_priority_and_the_caller_keeps_its_own():
    base = _niceness()
    reads = [f.result() for _, f in read_ahead(range(3), lambda _: _niceness(), 2, 2, nice=5)]
    assert reads == [min(19, base + 5)] * 3
    with worker_pool(1, "t", nice=0) as pool:
        assert pool.submit(_niceness).result() == base
    assert _niceness() == base  # the consumer's thread is untouched
    assert io_nice() == CPU_IO_NICE  # these tests run JAX on the CPU
    with pytest.raises(ValueError, match=r"niceness must be in \[0, 19\], got 20"):
        io_nice(20)

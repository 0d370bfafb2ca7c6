"""End to end: the bare network against everything around it, in one run.

    python -m benchmarks.bench_e2e [--smoke] [--weights PATH] [--size HxW] [--files N]
                                   [--frames N] [--video-frames N] [--repeats R] [--jobs N]
                                   [--io-nice N] [--no-record]

Rows (median of ``--repeats`` after a warm-up; seconds and rates on this machine):

* bare network: the compiled network on a device-resident padded frame (batch 1);
* one frame host to host: `jaxdark.Restorer.restore_counts` (raw uint16 in, uint8 out:
  upload, normalisation, amplification, phase, padding, network, crop, quantisation,
  download), and the path it replaced (host normalisation and estimate, NumPy padding,
  float32 back, crop and quantisation on the host), each against the bare network;
* streaming: `jaxdark.streaming.restore_stream` over ``--frames`` frames in memory, k = 2
  in flight, batch 1 and 2;
* the CLI on a folder of ``--files`` DNGs: each stage alone (reading with ``--jobs``
  threads; the device step on frames in memory; PNG encoding and writing with ``--jobs``
  threads) and ``jaxdark restore`` as a whole, in files/s, and the whole against its
  slowest stage;
* video: `jaxdark.video.restore_video` on ``--video-frames`` frames in memory (frames/s
  after the first, the encoder's flush at the end included), against the bare network's
  rate. x264 holds a dozen frames in its lookahead and encodes them after the last one
  arrives, with nothing left to overlap, so short clips understate the steady rate.

Results go to benchmarks/results/bench_e2e[_smoke].json (`benchmarks.results_io`).
`gpu_rows` gives the GPU check's rows (the H100 targets of issue 20); off a GPU it runs
the same code at a tiny size and marks every row "not measured yet".
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from benchmarks.results_io import NOT_MEASURED, load_average, write_results

SONY = (2848, 4256)
UHD = (2160, 3840)
COLUMNS = ["measurement", "size", "value", "unit", "vs bare network / slowest stage"]


def parse_size(text: str) -> tuple[int, int]:
    """``"HxW"`` -> (H, W) with even sides >= 32 (argparse type)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, got {text!r}") from None
    if h < 32 or w < 32 or h % 2 or w % 2:
        raise argparse.ArgumentTypeError(f"sides must be even and >= 32, got {text}")
    return h, w


def numpy_weights_model(seed: int = 0, **sizes: Any):
    """A `DarkRestorationNet` with NumPy-drawn weights (no JAX random compilations): the
    speed of the network does not depend on its weights."""
    from flax import nnx

    import jaxdark

    graphdef, state = nnx.split(jaxdark.create_model(abstract=True, **sizes))
    rng = np.random.default_rng(seed)

    def draw(tree):
        if hasattr(tree, "shape"):
            fan_in = int(np.prod(tree.shape[:-1])) or 1
            return (rng.standard_normal(tree.shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        return {k: draw(v) for k, v in tree.items()}

    nnx.replace_by_pure_dict(state, draw(nnx.to_pure_dict(state)))
    return nnx.merge(graphdef, state)


def load_network(weights: str | None, smoke: bool):
    """The network to time: ``weights`` if given, else NumPy-drawn weights (tiny for smoke)."""
    if weights:
        from jaxdark.weights.load import load_model

        return load_model(weights)
    sizes = {"features": 16, "growth": 8, "dense_layers": (2,)} if smoke else {}
    return numpy_weights_model(0, **sizes)


def dark_counts(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A dark uint16 RGGB frame (black 512, white 16383) with shot-like noise."""
    rng = np.random.default_rng(seed)
    return (rng.poisson(12, shape) + 500 + rng.integers(0, 25, shape)).astype(np.uint16)


BLACKS, WHITE = (512.0, 512.0, 512.0, 512.0), 16383.0


def median_time(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bare_network_seconds(restorer, shape: tuple[int, int], repeats: int) -> float:
    """The compiled network alone on a device-resident padded frame."""
    import jax
    import jax.numpy as jnp

    from jaxdark.imaging.raw import padded_shape

    ph, pw = padded_shape(shape, restorer.input_multiple)
    x = jax.device_put(jnp.full((1, ph, pw, 1), 0.3, jnp.float32))
    fn = jax.jit(restorer.apply_fn).lower(restorer.params, x).compile()
    return median_time(lambda: fn(restorer.params, x).block_until_ready(), repeats)


def old_path(restorer, counts: np.ndarray) -> np.ndarray:
    """The host path `Restorer` had before: host normalisation and estimate, NumPy phase
    and padding, the network, float32 back to the host, crop and quantisation there."""
    import jax.numpy as jnp

    from jaxdark.fileio import to_uint
    from jaxdark.imaging.raw import normalise, pad_to_multiple

    x = normalise(counts, BLACKS, WHITE)
    a = restorer.amplification(x)
    padded = pad_to_multiple(x, restorer.input_multiple)
    fn = restorer._compiled_tile(padded.shape)
    y = np.asarray(fn(restorer.params, jnp.asarray(padded), np.float32(a)))
    return to_uint(np.ascontiguousarray(y[: x.shape[0], : x.shape[1]]), 8)


def frame_rows(restorer, shape, repeats, bare) -> list[list[Any]]:
    counts = dark_counts(shape, 0)
    size = f"{shape[0]}x{shape[1]}"

    def new():
        return restorer.restore_counts(counts, BLACKS, WHITE, out="uint8").image

    t_new = median_time(new, repeats)
    t_old = median_time(lambda: old_path(restorer, counts), repeats)
    return [
        ["one frame host to host (device path, uint8)", size, t_new * 1e3, "ms", t_new / bare],
        ["one frame host to host (previous host path)", size, t_old * 1e3, "ms", t_old / bare],
    ]


def stream_rows(restorer, shape, frames, bare) -> list[list[Any]]:
    from jaxdark.imaging.raw import RawCounts
    from jaxdark.streaming import restore_stream

    raws = [RawCounts(f"f{i}", dark_counts(shape, i), "RGGB", "bench", BLACKS, WHITE)
            for i in range(frames)]  # fmt: skip
    rows = []
    for batch in (1, 2):
        list(restore_stream(restorer, raws[: 2 * batch], batch=batch))  # compile
        t = time.perf_counter()
        n = sum(1 for _ in restore_stream(restorer, raws, in_flight=2, batch=batch))
        fps = n / (time.perf_counter() - t)
        rows.append(
            [
                f"streaming, 2 in flight, batch {batch} (uint8)",
                f"{shape[0]}x{shape[1]}",
                fps,
                "frames/s",
                (1 / fps) / bare,
            ]  # fmt: skip
        )
    return rows


def cli_rows(
    restorer, weights_dir: Path, shape, files: int, jobs: int, io_nice: int | None = None
) -> list[list[Any]]:
    """Each stage of ``jaxdark restore`` alone, then the whole command (``--io-nice
    io_nice`` when given), in files/s."""
    from concurrent.futures import ThreadPoolExecutor

    from jaxdark.cli import main
    from jaxdark.fileio import write_image
    from jaxdark.imaging.dng import write_dng
    from jaxdark.imaging.raw import read_raw_counts

    size = f"{shape[0]}x{shape[1]}"
    with tempfile.TemporaryDirectory(prefix="bench_e2e_") as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        paths = [write_dng(folder / f"f{i:03d}.dng", dark_counts(shape, i)) for i in range(files)]
        read_raw_counts(paths[0])  # imports and first-use costs left out of every stage
        write_image(Path(tmp) / "warm.png", np.zeros((8, 8, 3), np.uint8), "png")
        with ThreadPoolExecutor(jobs) as pool:
            t = time.perf_counter()
            raws = list(pool.map(read_raw_counts, paths))
            read_rate = files / (time.perf_counter() - t)
        restorer.restore_frame(raws[0], out="uint8")  # compile
        t = time.perf_counter()
        images = [restorer.restore_frame(r, out="uint8").image for r in raws]
        device_rate = files / (time.perf_counter() - t)
        out = Path(tmp) / "w"
        out.mkdir()
        with ThreadPoolExecutor(jobs) as pool:
            t = time.perf_counter()
            list(pool.map(lambda iv: write_image(out / f"{iv[0]}.png", iv[1], "png"),
                          enumerate(images)))  # fmt: skip
            write_rate = files / (time.perf_counter() - t)
        del images, raws
        # the whole command, its Restorer the warm one above (compilation left out; loading
        # the weights is in)
        args = ["restore", "--weights", str(weights_dir), "--jobs", str(jobs)]
        args += [] if io_nice is None else ["--io-nice", str(io_nice)]
        whole_dir = Path(tmp) / "whole"
        with (
            open(os.devnull, "w") as devnull,
            mock.patch("jaxdark.restorer.Restorer", lambda *a, **k: restorer),
            contextlib.redirect_stdout(devnull),
        ):
            t = time.perf_counter()
            code = main([*args, str(folder), "--out-dir", str(whole_dir)])
            whole_rate = files / (time.perf_counter() - t)
        if code != 0:
            raise RuntimeError(f"jaxdark restore exited with {code}")
    slowest = min(read_rate, device_rate, write_rate)
    return [
        [f"CLI stage alone: read ({jobs} threads)", size, read_rate, "files/s", ""],
        ["CLI stage alone: device (frames in memory)", size, device_rate, "files/s", ""],
        [f"CLI stage alone: PNG encode + write ({jobs} threads)", size, write_rate, "files/s", ""],
        [
            f"CLI whole: jaxdark restore --jobs {jobs}, {files} files",
            size,
            whole_rate,
            "files/s",
            whole_rate / slowest,
        ],  # fmt: skip
    ]


def video_rows(restorer, shape, frames, bare, io_nice: int | None = None) -> list[list[Any]]:
    from jaxdark.imaging.raw import RawCounts
    from jaxdark.video import restore_video

    raws = [RawCounts(f"f{i}", dark_counts(shape, i), "RGGB", "bench", BLACKS, WHITE)
            for i in range(frames)]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench_e2e_video_") as tmp:
        restore_video(restorer, raws[:2], Path(tmp) / "warm.mp4")  # compile
        stats = restore_video(restorer, raws, Path(tmp) / "clip.mp4", nice=io_nice)
    fps = stats.steady_fps
    return [
        [
            "video from frames in memory (H.264)",
            f"{shape[0]}x{shape[1]}",
            fps,
            "frames/s",
            fps * bare,
        ]  # fmt: skip
    ]


def gpu_rows(model, *, on_gpu: bool | None = None, smoke_size=(64, 96)) -> list[list[Any]]:
    """The GPU check's rows for issue 20's H100 targets: [measurement, target, value].

    ``model`` is the network (e.g. `load_network`). On a GPU the rows are measured at
    full size (4K frames, a Sony frame); elsewhere the same code runs at ``smoke_size``
    (so it is known to work) and every value is "not measured yet".
    """
    import jax

    from jaxdark.restorer import Restorer

    if on_gpu is None:
        on_gpu = jax.default_backend() == "gpu"
    uhd, sony = (UHD, SONY) if on_gpu else (smoke_size, smoke_size)
    restorer = Restorer(model)
    bare = bare_network_seconds(restorer, uhd, 5 if on_gpu else 1)
    host = frame_rows(restorer, uhd, 10 if on_gpu else 1, bare)[0][2] / 1e3
    stream = stream_rows(restorer, uhd, 60 if on_gpu else 4, bare)[0][2]
    video = video_rows(restorer, uhd, 60 if on_gpu else 3, bare)[0][2]
    bf16 = Restorer(model, dtype="bfloat16")
    bare_bf16 = bare_network_seconds(bf16, uhd, 5 if on_gpu else 1)
    rows = [
        ["4K network alone, batch 1, float32", "-", f"{1 / bare:.0f} frames/s"],
        ["4K network alone, batch 1, bfloat16", ">= 600 frames/s", f"{1 / bare_bf16:.0f} frames/s"],
        ["4K frame host to host (uint8)", "<= 8 ms", f"{host * 1e3:.2f} ms"],
        ["4K streaming host to host (uint8)", ">= 300 frames/s", f"{stream:.0f} frames/s"],
        ["4K RAW video from frames in memory", ">= 120 frames/s", f"{video:.0f} frames/s"],
    ]
    rows += rewrite_rows(model, uhd, 5 if on_gpu else 1)
    for r in (restorer, bf16):
        gb = device_memory_bytes(r, sony) / 1e9
        rows.append([f"Sony frame device memory, {r.dtype} (XLA's account)", "<= 1.2 GB",
                     f"{gb:.2f} GB"])  # fmt: skip
    if not on_gpu:
        rows = [[name, target, NOT_MEASURED] for name, target, _ in rows]
    return rows


def rewrite_rows(
    model, shape: tuple[int, int], repeats: int, dtypes=("float32", "bfloat16")
) -> list[list[Any]]:
    """The bare network with each choice of the fast path's rewrites
    (`jaxdark.models.lamba2021_folded.REWRITES`: all, none, and all but one) in each of
    ``dtypes`` (the kernels' dtype): the measurement `DEFAULT_REWRITES` is chosen from."""
    import jax.numpy as jnp

    from jaxdark.models.lamba2021_folded import REWRITES, apply_folded, fold_params
    from jaxdark.restorer import Restorer

    choices = [REWRITES, ()] + [tuple(r for r in REWRITES if r != off) for off in REWRITES]
    rows = []
    for dtype in dtypes:
        for choice in choices:
            params = fold_params(model, jnp.dtype(dtype), rewrites=choice)
            r = Restorer(None, apply_fn=apply_folded, params=params)
            seconds = bare_network_seconds(r, shape, repeats)
            rows.append([f"4K network {dtype}, rewrites: {'+'.join(choice) or 'none'}",
                         "fastest wins", f"{seconds * 1e3:.2f} ms"])  # fmt: skip
    return rows


def device_memory_bytes(restorer, shape: tuple[int, int]) -> int:
    """Arguments + outputs + temporaries of the compiled whole-frame function (uint16 in,
    uint8 out) for ``shape``: XLA's own account (``memory_analysis``), no run needed."""
    from jaxdark.imaging.device_frame import FrameSpec

    spec = FrameSpec(tuple(shape), "uint16", "RGGB", restorer.input_multiple, True, "uint8")
    m = restorer.compiled_frame(spec).memory_analysis()
    return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_e2e", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and network (CI)")
    parser.add_argument("--weights", default=None, help="weights (default: NumPy-drawn)")
    parser.add_argument("--size", type=parse_size, default=None, help="frame HxW (4K: 2160x3840)")
    parser.add_argument("--cli-size", type=parse_size, default=None, help="DNG HxW (Sony)")
    parser.add_argument("--files", type=int, default=None, help="DNGs for the CLI rows (8)")
    parser.add_argument("--frames", type=int, default=None, help="frames for streaming (8)")
    parser.add_argument(
        "--video-frames", type=int, default=None, help="frames of the video clip (--frames)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per row (3)")
    parser.add_argument("--jobs", type=int, default=2, help="CLI reader/writer threads (2)")
    parser.add_argument(
        "--io-nice", type=int, default=None, help="workers' niceness (default: jaxdark's)"
    )
    parser.add_argument("--no-record", action="store_true", help="do not write results JSON")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.bench_e2e " + shlex.join(sys.argv[1:] if argv is None else argv)
    smoke = args.smoke
    size = args.size or ((64, 96) if smoke else UHD)
    cli_size = args.cli_size or ((64, 96) if smoke else SONY)
    files = args.files or (3 if smoke else 8)
    frames = args.frames or (3 if smoke else 8)
    repeats = args.repeats or (1 if smoke else 3)

    from jaxdark.restorer import Restorer
    from jaxdark.weights.convert import save_converted

    try:
        model = load_network(args.weights, smoke)
    except (OSError, ValueError) as e:
        print(f"bench_e2e: error: {e}", file=sys.stderr)
        return 2
    restorer = Restorer(model)
    print(f"load average before: {load_average()}", flush=True)
    bare = bare_network_seconds(restorer, size, repeats)
    sz = f"{size[0]}x{size[1]}"
    rows: list[list[Any]] = [["bare network (device-resident input)", sz, bare * 1e3, "ms", 1.0]]
    rows += frame_rows(restorer, size, repeats, bare)
    rows += stream_rows(restorer, size, frames, bare)
    with tempfile.TemporaryDirectory(prefix="bench_e2e_w_") as wdir:
        save_converted(model, Path(wdir) / "ckpt")
        cli_restorer = Restorer(model)
        rows += cli_rows(
            cli_restorer, Path(wdir) / "ckpt", cli_size, files, args.jobs, args.io_nice
        )
    rows += video_rows(restorer, size, args.video_frames or frames, bare, args.io_nice)
    for r in rows:
        ratio = f"{r[4]:.3f}" if isinstance(r[4], float) else r[4]
        print(f"{r[0]:<58} {r[1]:>10} {r[2]:>10.4g} {r[3]:<9} {ratio}", flush=True)
    print(f"load average after: {load_average()}")
    if not args.no_record:
        name = "bench_e2e_smoke" if smoke else "bench_e2e"
        notes = (
            "ratio column: time / bare-network time for frames (rates: bare-network time x "
            "rate for video), whole / slowest stage for the CLI. Weights: "
            + (args.weights or "NumPy-drawn (speed does not depend on them)")
        )
        path = write_results(name, COLUMNS, [[*r[:2], round(r[2], 4), *r[3:4],
                             round(r[4], 4) if isinstance(r[4], float) else r[4]] for r in rows],
                             notes=notes, command=command)  # fmt: skip
        print(f"recorded {path}")
    return 0


def gpu_check_rows(model) -> list[tuple[str, str, str]]:
    """`gpu_rows` as the GPU check's (quantity, value, notes) rows; notes give the target."""
    return [(name, value, f"target {target}") for name, target, value in gpu_rows(model)]


if __name__ == "__main__":
    sys.exit(main())

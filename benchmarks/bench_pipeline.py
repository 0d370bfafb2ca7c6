"""Input-pipeline benchmark: can each data source keep the training step fed?

    python -m benchmarks.bench_pipeline [--crop 512] [--batch 8] [--workers N] [--smoke]

In one run, on this machine:

1. every source's examples/s on one host core (the transform called in a loop, no
   threads) and in total through `jaxdark.data.pipeline.make_iterator` with N grain
   worker processes: SID from the TFDS records (zlib, whole frames), SID from the exported
   frames (`jaxdark.data.sid_frames`), synthetic pairs made on the host (NumPy) and the
   host side of synthetic pairs made on the device (photo crops + seeds);
2. the training step fed batches already in memory, next to the step fed by the real
   pipeline (the loop of `jaxdark.training.loop`: one step in flight), with the share of
   time spent waiting for data; and the step with on-device synthesis;
3. host RSS (this process at its peak, and the worker processes' peak).

SID data is a SID-layout folder of Sony-size frames (2848 x 4256) written with the test
fixture's generator (tests/support/sid_fixture.py) and prepared with `jaxdark.data.sid`.
``--smoke``: 96 x 128 frames, crop 32, batch 2, a small U-Net, no worker processes
(grain threads only; for CI).
Results are printed and written with `benchmarks.results_io.write_results`
(``benchmarks/results/bench_pipeline.json``; ``--smoke`` writes nothing unless
``--results-dir`` is given). `gpu_rows` is the GPU check's section.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS = ("measure", "source / feed", "value", "unit", "note")
GPU_COLUMNS = COLUMNS
NOT_MEASURED = "not measured yet"
SMALL_UNET = (8, 16, 32, 64, 128)


def _rss_mb() -> dict[str, float]:
    """Peak RSS (MiB) of this process and of its largest finished/waited child."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self": own, "children": kids}


def _current_rss_mb() -> float:
    """RSS (MiB) of this process and its live children (grain workers) now."""
    import psutil  # noqa: PLC0415

    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def _per_core(get: Callable[[int], Any], transform: Any, n: int) -> float:
    """Examples/s of ``transform.random_map(get(i), rng)`` on this thread."""
    transform.random_map(get(0), np.random.default_rng(0))  # warm-up (JIT, page cache)
    t = time.perf_counter()
    for i in range(n):
        transform.random_map(get(i + 1), np.random.default_rng(i))
    return n / (time.perf_counter() - t)


def _iterator_rate(source, transform, args, workers: int) -> tuple[float, float]:
    """(examples/s, RSS MiB of the process tree) of the grain iterator with ``workers``."""
    from jaxdark.data.pipeline import make_iterator  # noqa: PLC0415

    it = make_iterator(
        source, global_batch_size=args.batch, crop_size=args.crop, seed=0,
        worker_count=workers, read_threads=max(1, args.threads), transform=transform,
        process_index=0, process_count=1,
    )  # fmt: skip
    try:
        for _ in range(3):  # start-up
            next(it)
        n = args.batches
        t = time.perf_counter()
        for _ in range(n):
            next(it)
        rate = n * args.batch / (time.perf_counter() - t)
        rss = _current_rss_mb()
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
    return rate, rss


def _make_sid(tmp: Path, args) -> Path:
    """A SID-layout folder of ``args.height x args.width`` frames, prepared (TFDS + frames)."""
    from jaxdark.data import sid  # noqa: PLC0415
    from tests.support.sid_fixture import FixtureScene, make_sid_tree  # noqa: PLC0415

    scenes = (
        FixtureScene(1, "train", 10.0, (0.1, 0.04)),
        FixtureScene(2, "train", 30.0, (0.1, 0.1)),
        FixtureScene(20001, "val", 10.0, (0.1,)),
        FixtureScene(10001, "test", 10.0, (0.1,)),
    )
    root = make_sid_tree(tmp / "SID", height=args.height, width=args.width, scenes=scenes)
    sid.prepare(root, tmp / "tfds")
    return tmp / "tfds"


def _step(args):
    """(train_step, state, mesh) of the benchmarked model."""
    from jaxdark.models import build  # noqa: PLC0415
    from jaxdark.training.optim import make_optimizer  # noqa: PLC0415
    from jaxdark.training.state import setup_training  # noqa: PLC0415

    spec = {"name": "sid_unet", "widths": SMALL_UNET} if args.smoke else {"name": "lamba2021"}
    tx, _ = make_optimizer()
    setup = setup_training(build(spec, 0), tx)
    return setup.train_step, setup.state, setup.mesh


def _fed_rate(step, state, mesh, feed: Callable[[], dict], n: int) -> tuple[float, float, Any]:
    """(steps/s, share of time waiting in ``feed``, state) of the training loop's pattern:
    fetch, place, dispatch, wait for the previous step."""
    import jax  # noqa: PLC0415

    state, m = step(state, feed())
    jax.block_until_ready(m)  # compile
    waited, prev = 0.0, None
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        batch = feed()
        waited += time.perf_counter() - t
        state, m = step(state, batch)
        if prev is not None:
            jax.block_until_ready(prev)
        prev = m
    jax.block_until_ready(prev)
    total = time.perf_counter() - t0
    return n / total, waited / total, state


class _Rows(list):
    """Rows, each also printed to stderr as it is measured (a long run shows progress)."""

    def append(self, row: list[Any]) -> None:
        print("row:", " | ".join(str(v) for v in row), file=sys.stderr, flush=True)
        super().append(row)


def run(args) -> list[list[Any]]:
    """All rows of the benchmark (see the module docstring)."""
    import jax  # noqa: PLC0415

    from jaxdark.data import sid  # noqa: PLC0415
    from jaxdark.data.device_synthesis import (  # noqa: PLC0415
        DeviceSynthesis,
        PhotoCrop,
        PhotoSource,
        sharded_synthesis,
    )
    from jaxdark.data.pipeline import CropAmplify, make_iterator  # noqa: PLC0415
    from jaxdark.data.sid_frames import SIDFrames  # noqa: PLC0415
    from jaxdark.data.synthetic_source import SyntheticPairs  # noqa: PLC0415
    from jaxdark.training.step import DATA_AXIS, make_global_batch  # noqa: PLC0415

    rows = _Rows()
    crop_t = CropAmplify(args.crop)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        tfds_dir = _make_sid(Path(tmp), args)
        prep = round(time.perf_counter() - t, 1)
        size = f"{args.height}x{args.width}"
        rows.append(["prepare", "SID TFDS + frames (4 scenes, 6 pairs)", prep, "s", size])
        syn = SyntheticPairs(window=args.crop + 2, seed=0, variants=1000)
        sources = {
            "SID records (TFDS, zlib)": (sid.SIDPairs("train", tfds_dir), crop_t),
            "SID frames (.npy, mmap)": (SIDFrames("train", sid.frames_dir(tfds_dir)), crop_t),
            "synthetic, host (NumPy)": (syn, crop_t),
            "synthetic, device feed (crops+seeds)": (PhotoSource(syn), PhotoCrop(args.crop)),
        }
        for name, (source, transform) in sources.items():
            n = args.records if "records" in name else args.examples
            rate = _per_core(lambda i, s=source: s[i % len(s)], transform, n)
            rows.append(["examples/s per host core", name, round(rate, 1), "ex/s", ""])
        for name, (source, transform) in sources.items():
            if "records" in name and not args.smoke:
                continue  # ~1 ex/s per core: measured above; N workers only multiply it
            rate, rss = _iterator_rate(source, transform, args, args.workers)
            rows.append([f"examples/s, {args.workers} workers", name, round(rate, 1), "ex/s",
                         f"RSS of the process tree {rss:.0f} MiB"])  # fmt: skip

        step, state, mesh = _step(args)
        rng = np.random.default_rng(0)
        x = rng.random((args.batch, args.crop, args.crop, 1), np.float32)
        y = rng.random((args.batch, args.crop, args.crop, 3), np.float32)
        mem = make_global_batch({"input": x, "target": y}, mesh)
        n = args.steps
        rate, wait, state = _fed_rate(step, state, mesh, lambda: mem, n)
        base = rate
        rows.append(["step rate", "batches in memory", round(rate * args.batch, 2), "ex/s",
                     f"{rate:.3f} steps/s, batch {args.batch}, crop {args.crop}"])  # fmt: skip
        for name, source in (
            ("SID frames", sources["SID frames (.npy, mmap)"][0]),
            ("synthetic, host", syn),
        ):
            it = make_iterator(
                source, global_batch_size=args.batch, crop_size=args.crop, seed=1,
                worker_count=args.workers, process_index=0, process_count=1,
            )  # fmt: skip
            try:

                def feed(it=it):
                    b = next(it)
                    return make_global_batch({"input": b["input"], "target": b["target"]}, mesh)

                rate, wait, state = _fed_rate(step, state, mesh, feed, n)
                rss = _current_rss_mb()
            finally:
                it.close() if hasattr(it, "close") else None
            rows.append(["step rate", f"fed by {name} ({args.workers} workers)",
                         round(rate * args.batch, 2), "ex/s",
                         f"{rate / base:.2f}x in-memory; waiting {100 * wait:.0f}%; "
                         f"RSS {rss:.0f} MiB"])  # fmt: skip
        synth = sharded_synthesis(mesh, DeviceSynthesis(syn.config), DATA_AXIS)
        photos = rng.integers(0, 256, (args.batch, args.crop, args.crop, 3), dtype=np.uint8)
        seeds = rng.integers(0, 2**32, (args.batch, 2), dtype=np.uint64).astype(np.uint32)
        g = make_global_batch({"photo": photos, "seed": seeds}, mesh)

        def synth_feed():
            made = synth(g["photo"], g["seed"])
            return {"input": made["input"], "target": made["target"]}

        rate, wait, state = _fed_rate(step, state, mesh, synth_feed, n)
        ratio = f"{rate / base:.2f}x in-memory"
        name = "with on-device synthesis (photos in memory)"
        rows.append(["step rate", name, round(rate * args.batch, 2), "ex/s", ratio])
        rss = _rss_mb()
        rows.append(["host RSS peak", "this process", round(rss["self"]), "MiB", ""])
        rows.append(["host RSS peak", "largest worker process", round(rss["children"]), "MiB", ""])
        rows.append(["devices", jax.devices()[0].platform, jax.device_count(), "",
                     jax.devices()[0].device_kind])  # fmt: skip
    return list(rows)


def gpu_rows(smoke: bool = False, *, crop: int = 512, batch: int = 8, steps: int = 20) -> list:
    """The GPU check's section (columns `GPU_COLUMNS`): on a GPU/TPU, the step rate with
    batches in memory, fed by the real pipeline (SID frames and synthetic pairs on the
    host) and with on-device synthesis, and the projected wall time of the 1M-step
    recipe; without one, the rows say "not measured yet" (``smoke`` still runs the whole
    section at a tiny size on the CPU, so the code is exercised)."""
    import jax  # noqa: PLC0415

    accelerated = jax.devices()[0].platform in ("gpu", "tpu")
    if not accelerated and not smoke:
        return [["pipeline", "all", NOT_MEASURED, "", "no GPU/TPU on this machine"]]
    args = _parse(["--smoke"] if smoke else ["--crop", str(crop), "--batch", str(batch),
                                             "--steps", str(steps)])  # fmt: skip
    return gpu_section(run(args), accelerated, crop=args.crop, batch=args.batch)


def gpu_section(rows: list, accelerated: bool, *, crop: int, batch: int) -> list:
    """The rows of `run` that the GPU check shows; measured values are replaced by "not
    measured yet" when not ``accelerated``; on an accelerator, the projected wall time of
    the 1M-step recipe from the slowest real feed is added."""
    rows = [r for r in rows if r[0] in ("step rate", "host RSS peak", "devices")]
    if not accelerated:
        return [[*r[:2], NOT_MEASURED, r[3], f"CPU smoke: {r[2]} {r[3]} {r[4]}"] for r in rows]
    fed = [float(r[2]) for r in rows if r[1].startswith("fed by")]
    if fed:
        hours = 1_000_000 * batch / min(fed) / 3600
        rows.append(["projected 1M-step recipe", "slowest real feed", round(hours, 2), "h",
                     f"batch {batch}, crop {crop}"])  # fmt: skip
    return rows


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--crop", type=int, default=512)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--threads", type=int, default=4, help="grain read threads")
    p.add_argument("--steps", type=int, default=5, help="timed training steps per feed")
    p.add_argument("--examples", type=int, default=48, help="examples timed per core")
    p.add_argument("--records", type=int, default=4, help="examples timed on TFDS records")
    p.add_argument("--batches", type=int, default=6, help="batches timed per iterator")
    p.add_argument("--height", type=int, default=2848)
    p.add_argument("--width", type=int, default=4256)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--results-dir", default=None, help="where to write the JSON results")
    args = p.parse_args(argv)
    if args.smoke:
        args.crop, args.batch, args.workers, args.steps = 32, 2, 0, 2
        args.examples, args.records, args.batches = 4, 2, 2
        args.height, args.width = 96, 128
    return args


def main(argv: list[str] | None = None) -> int:
    """Run, print a Markdown table and record the results."""
    from benchmarks.results_io import (  # noqa: PLC0415
        load_average,
        machine_description,
        markdown_table,
        write_results,
    )

    args = _parse(argv)
    rows = run(args)
    notes = (
        f"crop {args.crop}, batch {args.batch}, {args.workers} grain workers, "
        f"{os.cpu_count()} cores; frames {args.height}x{args.width}"
    )
    command = "python -m benchmarks.bench_pipeline " + " ".join(argv or sys.argv[1:])
    record = {
        "benchmark": "bench_pipeline", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_description(), "command": command, "load_average": load_average(),
        "columns": list(COLUMNS), "rows": rows, "notes": notes,
    }  # fmt: skip
    if not args.smoke or args.results_dir:
        path = write_results(
            "bench_pipeline_smoke" if args.smoke else "bench_pipeline", COLUMNS, rows,
            notes=notes, directory=Path(args.results_dir) if args.results_dir else None,
        )  # fmt: skip
        print(f"results: {path}")
    print(markdown_table(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def gpu_check_rows(smoke: bool = False) -> list[tuple[str, str, str]]:
    """`gpu_rows` as the GPU check's (quantity, value, notes) rows."""
    return [
        (
            f"{section}: {what}",
            str(value) if value == NOT_MEASURED else f"{value} {unit}".strip(),
            str(notes),
        )
        for section, what, value, unit, notes in gpu_rows(smoke)
    ]

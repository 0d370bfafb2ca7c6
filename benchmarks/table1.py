"""The paper's Table 1 (efficiency) for every network of the zoo, in one run.

    python -m benchmarks.table1 [--size sony|4k|HxW] [--repeats N] [--models a,b] [--smoke]
                                [--cpu-gmacs-limit G] [--no-record]

For each registered model (`jaxdark.models.names()`, seed-0 weights; speed does not depend
on them) it prints one Markdown row: parameters; GMACs for one frame from XLA's cost
analysis of the model's own forward pass (flops / 2); CPU time for the frame, the models
timed on the same input in this process with their runs interleaved (medians after one
warm-up run), and the XLA buffers (arguments, temporaries, output) of each model's
compiled function; and, when JAX sees a GPU, GPU time
(median of 20+ runs) and peak GPU memory, each model in a subprocess of its own so the
peak is its own ("not measured yet" without a GPU). The paper's figures (Lamba & Mitra,
CVPR 2021, Table 1: SID Sony full frame, their GPU and CPU) sit in the adjacent columns.
All five networks of the paper's Table 1 are in the zoo (lamba2021, sid_unet, did, sgn,
llpacknet). A run that is not ``--smoke`` records its table with
`benchmarks.results_io.write_results` in benchmarks/results/table1.json (``--no-record``:
print only). notes/table1.md explains where our figures differ from the paper's.

Each model runs the function `jaxdark.Restorer` runs (`jaxdark.models.inference_apply`):
for ``lamba2021`` the folded fast path (`jaxdark.models.lamba2021_folded`), for the others their own
jitted forward pass. The default size is the full Sony frame, 2848x4256 (DID and SGN take
minutes per frame on two CPU cores). ``--smoke``: a 256x256 frame (GMACs too), one repeat,
for CI. ``--cpu-gmacs-limit G``: models above G GMACs are not CPU-timed (their CPU cells
read "not measured yet"), for machines too slow or too loaded for DID and SGN (7,700 and
2,500 GMACs a Sony frame). `gpu_rows` gives the GPU columns alone, for a GPU check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import results_io
from benchmarks.common import (
    SIZES,
    SMOKE_SIZE,
    available_cores,
    cpu_model,
    fmt_s,
    gmacs,
    median,
    parse_size,
    time_interleaved,
)

# Lamba & Mitra, CVPR 2021, Table 1 (SID Sony, full frame): params (M), GMACs,
# GPU memory (GB), GPU time (ms), CPU time (s).
PAPER: dict[str, tuple[str, str, str, str, str]] = {
    "lamba2021": ("0.78", "59.8", "1.16", "30.37", "1.17"),
    "sid_unet": ("7.7", "562.06", "6.184", "156.85", "9.35"),
    "did": ("2.5", ">2000", "10.72", ">1000", "110.29"),  # Maharjan et al., ICME 2019
    "sgn": ("3.5", ">2000", "9.3", "867.50", "35.20"),  # Gu et al., ICCV 2019
    "llpacknet": ("1.16", "83.46", "2.23", "40.17", "2.75"),  # Lamba et al., BMVC 2020
}
# constructor arguments for counting a model's own arithmetic: lamba2021's grouped
# convolutions as grouped ones (its default runs them as block-diagonal dense ones)
COST_ARGS: dict[str, dict[str, Any]] = {"lamba2021": {"grouped_conv_impl": "native"}}
GPU_MIN_RUNS = 20
HEADER = (
    "| model | params | paper params (M) | GMACs ({size}) | paper GMACs | CPU time | paper CPU (s) "
    "| XLA CPU buffers | GPU time | paper GPU (ms) | GPU peak memory | paper GPU memory (GB) |"
)
# the recorded JSON's columns (times in seconds / milliseconds, sizes in GiB)
RESULT_COLUMNS = [
    "model", "params", "paper params (M)", "GMACs", "paper GMACs", "CPU time (s)",
    "paper CPU (s)", "XLA CPU buffers (GiB)", "GPU time (ms)", "paper GPU (ms)",
    "GPU peak memory (GiB)", "paper GPU memory (GB)",
]  # fmt: skip
RESULT_NOTES = (
    "Random (1, H, W, 1) mosaic, float32, seed-0 weights. GMACs: XLA's cost analysis of the "
    "CPU executable (flops / 2). Paper: Lamba & Mitra, CVPR 2021, Table 1 (their GPU and "
    "CPU). notes/table1.md explains the differences."
)


def model_gmacs(name: str, size: tuple[int, int]) -> float:
    """GMACs of one (1, H, W, 1) frame through model ``name`` (XLA cost analysis)."""
    import jax
    import jax.numpy as jnp

    from jaxdark import models

    model = models.build({"name": name, **COST_ARGS.get(name, {})}, abstract=True)
    spec = jax.ShapeDtypeStruct((1, *size, 1), jnp.float32)
    return gmacs(jax.jit(lambda m, v: m(v)), model, spec)


def inference_fn(model: Any, x: Any) -> tuple[Callable[[], Any], float | None]:
    """The function `jaxdark.Restorer` would run, compiled for ``x`` on ``x``'s device, as a
    call ``() -> output``, and the bytes of XLA buffers it needs (arguments, temporaries,
    output; None where the backend does not say)."""
    import jax

    from jaxdark.models import inference_apply

    apply_fn, params = inference_apply(model)
    params = jax.device_put(params, next(iter(x.devices())))
    compiled = jax.jit(apply_fn).lower(params, x).compile()
    mem = compiled.memory_analysis()
    size = None
    if mem is not None:
        size = float(mem.argument_size_in_bytes + mem.temp_size_in_bytes)
        size += float(mem.output_size_in_bytes)
    return (lambda: compiled(params, x).block_until_ready()), size


def gpu_measure(name: str, size: tuple[int, int], repeats: int) -> dict[str, float]:
    """Median GPU seconds per frame and the process's peak GPU bytes for model ``name``."""
    import jax
    import jax.numpy as jnp

    from jaxdark import models

    dev = jax.devices()[0]
    x = jnp.asarray(np.random.default_rng(0).random((1, *size, 1), np.float32))
    fn, _ = inference_fn(models.create(name, seed=0), jax.device_put(x, dev))
    for _ in range(3):
        fn()
    times = []
    for _ in range(max(GPU_MIN_RUNS, 10 * repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    stats = dev.memory_stats() or {}
    return {"seconds": median(times), "peak_bytes": float(stats.get("peak_bytes_in_use", -1))}


def gpu_results(names: list[str], size: tuple[int, int], repeats: int) -> dict[str, Any]:
    """`gpu_measure` for each model, each in a fresh process (its own memory peak)."""
    results: dict[str, Any] = {}
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    for name in names:
        cmd = [sys.executable, "-m", "benchmarks.table1", "--gpu-worker", name,
               "--size", f"{size[0]}x{size[1]}", "--repeats", str(repeats)]  # fmt: skip
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        if p.returncode == 0 and lines:
            results[name] = json.loads(lines[-1])
        else:
            tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
            results[name] = {"error": tail[0][:120]}
    return results


def cpu_results(
    names: list[str], size: tuple[int, int], repeats: int
) -> dict[str, dict[str, float | None]]:
    """Interleaved CPU timings on one shared input, and each model's XLA buffer bytes."""
    import jax
    import jax.numpy as jnp

    from jaxdark import models

    cpu = jax.devices("cpu")[0]
    x = jax.device_put(
        jnp.asarray(np.random.default_rng(0).random((1, *size, 1), dtype=np.float32)), cpu
    )
    compiled = {name: inference_fn(models.create(name, seed=0), x) for name in names}
    times = time_interleaved({name: fn for name, (fn, _) in compiled.items()}, repeats)
    return {
        name: {"seconds": median(times[name]), "buffer_bytes": compiled[name][1]} for name in names
    }


def _cpu_time(seconds: float | None) -> str:
    return results_io.NOT_MEASURED if seconds is None else fmt_s(float(seconds))


def _gib(value: float | None) -> str:
    return "n/a" if value is None or value < 0 else f"{value / 2**30:.3f} GiB"


def table_rows(
    size: tuple[int, int],
    names: list[str],
    params: dict[str, int],
    macs: dict[str, float],
    cpu: dict[str, dict[str, float | None]],
    gpu: dict[str, Any] | None,
) -> list[str]:
    """The Markdown rows (header first) of the table."""
    header = HEADER.format(size=f"{size[0]}x{size[1]}")
    rows = [header, "|" + "---|" * (header.count(" | ") + 1)]
    for name in names:
        paper = PAPER.get(name, ("-",) * 5)
        if gpu is None:
            gpu_time, gpu_mem = results_io.NOT_MEASURED, results_io.NOT_MEASURED
        elif "error" in gpu[name]:
            gpu_time, gpu_mem = f"failed: {gpu[name]['error']}", "-"
        else:
            gpu_time, gpu_mem = fmt_s(gpu[name]["seconds"]), _gib(gpu[name]["peak_bytes"])
        cells = [
            name, f"{params[name]:,}", paper[0], f"{macs[name]:.2f}", paper[1],
            _cpu_time(cpu[name]["seconds"]), paper[4],
            _gib(cpu[name]["buffer_bytes"]),
            gpu_time, paper[3], gpu_mem, paper[2],
        ]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def result_rows(
    names: list[str],
    params: dict[str, int],
    macs: dict[str, float],
    cpu: dict[str, dict[str, float | None]],
    gpu: dict[str, Any] | None,
) -> list[list[Any]]:
    """The table as plain JSON rows (`RESULT_COLUMNS`), for `results_io.write_results`."""
    rows = []
    for name, (gpu_ms, gpu_gib) in zip(names, gpu_rows(names, gpu), strict=True):
        paper = PAPER.get(name, ("-",) * 5)
        buffers, seconds = cpu[name]["buffer_bytes"], cpu[name]["seconds"]
        rows.append([
            name, params[name], paper[0], round(macs[name], 2), paper[1],
            results_io.NOT_MEASURED if seconds is None else round(float(seconds), 3), paper[4],
            "n/a" if buffers is None else round(buffers / 2**30, 3),
            gpu_ms, paper[3], gpu_gib, paper[2],
        ])  # fmt: skip
    return rows


def gpu_rows(names: list[str], gpu: dict[str, Any] | None) -> list[tuple[Any, Any]]:
    """(GPU ms per frame, peak GPU GiB) per model from `gpu_results` (None: no GPU, both
    "not measured yet"; a failed model: its error and "-"). For GPU checks."""
    out: list[tuple[Any, Any]] = []
    for name in names:
        if gpu is None:
            out.append((results_io.NOT_MEASURED, results_io.NOT_MEASURED))
        elif "error" in gpu[name]:
            out.append((f"failed: {gpu[name]['error']}", "-"))
        else:
            peak = gpu[name]["peak_bytes"]
            gib = round(peak / 2**30, 3) if peak >= 0 else "n/a"
            out.append((round(gpu[name]["seconds"] * 1e3, 2), gib))
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse flags, measure every model, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=SIZES["sony"], help="sony, 4k or HxW")
    parser.add_argument("--repeats", type=int, default=3, help="timed CPU runs per model (>= 1)")
    parser.add_argument("--models", default="", help="comma-separated names (default: all)")
    parser.add_argument("--smoke", action="store_true", help="256x256, 1 repeat (for CI)")
    parser.add_argument(
        "--cpu-gmacs-limit", type=float, default=None,
        help="do not CPU-time models above this many GMACs (default: time all)",
    )  # fmt: skip
    parser.add_argument(
        "--no-record", action="store_true", help="do not write benchmarks/results/table1.json"
    )
    parser.add_argument("--gpu-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    size, repeats = (SMOKE_SIZE, 1) if args.smoke else (args.size, args.repeats)
    if args.gpu_worker:
        print(json.dumps(gpu_measure(args.gpu_worker, size, repeats)))
        return 0
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # GPU workers need room

    import jax

    from jaxdark import models
    from jaxdark.errors import JaxdarkError
    from jaxdark.models.lamba2021 import count_params

    try:
        names = [n.strip() for n in args.models.split(",") if n.strip()] or models.names()
        for name in names:
            models.get(name)
    except JaxdarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    params = {n: count_params(models.build({"name": n}, abstract=True)) for n in names}
    macs = {n: model_gmacs(n, size) for n in names}
    limit = args.cpu_gmacs_limit
    timed = [n for n in names if limit is None or macs[n] <= limit]
    cpu = cpu_results(timed, size, repeats) if timed else {}
    cpu |= {n: {"seconds": None, "buffer_bytes": None} for n in names if n not in timed}
    backend = jax.default_backend()
    gpu = gpu_results(names, size, repeats) if backend in ("gpu", "cuda", "rocm") else None
    load_after = os.getloadavg()
    gpu_kind = jax.devices()[0].device_kind if gpu is not None else "none"
    print(
        f"Table 1 of the zoo: input 1x{size[0]}x{size[1]}x1 (random mosaic), float32, "
        f"{repeats} timed CPU run(s) per model after a warm-up"
        + (" (smoke)" if args.smoke else "")
        + (f"; not CPU-timed above {limit:g} GMACs" if limit is not None else "")
    )
    print(
        f"machine: {cpu_model()}, {available_cores()} cores, jax {jax.__version__}; GPU: "
        f"{gpu_kind}; load average {load_before[0]:.1f} at start, {load_after[0]:.1f} at end; "
        f"{time.perf_counter() - t_start:.0f} s"
    )
    print()
    for row in table_rows(size, names, params, macs, cpu, gpu):
        print(row)
    if not (args.smoke or args.no_record):
        notes = f"{RESULT_NOTES} Frame {size[0]}x{size[1]}, {repeats} timed CPU run(s) per model"
        notes += f", none above {limit:g} GMACs." if limit is not None else "."
        path = results_io.write_results(
            "table1", RESULT_COLUMNS, result_rows(names, params, macs, cpu, gpu), notes=notes
        )
        print(f"\nrecorded {path}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

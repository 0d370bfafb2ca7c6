"""Section ``concurrency``: the 4K network under XLA scheduling settings that let the scale
branches run at the same time, and a `jax.profiler` trace of it.

The paper reports 30% more speed from running the 1/2, 1/8 and 1/32 branches
concurrently (CUDA streams in PyTorch). In XLA the branches are independent parts of one
graph; whether the GPU overlaps them is decided by how XLA:GPU schedules the command
buffers (CUDA graphs) it records. Each setting runs in a fresh process (XLA reads
``XLA_FLAGS`` once, and an unknown flag aborts the process, which is then a row saying so):

* the default;
* ``--xla_gpu_command_buffer_scheduling_mode=CONCURRENT``: commands recorded with their
  data dependencies only, so independent kernels may overlap;
* ``--xla_gpu_command_buffer_scheduling_mode=SERIALIZE``: one after another (the control);
* ``--xla_gpu_enable_command_buffer=`` : no command buffers, one launch per kernel.

Each process times the folded network (``--probe`` below) in float32 and bfloat16 at the
profile's restore size. The default process also writes a `jax.profiler` trace of a few
calls to OUT/profile (open it in Perfetto or TensorBoard) when the section has the time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.gpu_check.check import Check
from benchmarks.gpu_check.measure import run_probe

SETTINGS = (
    ("default", ""),
    ("concurrent command buffers", "--xla_gpu_command_buffer_scheduling_mode=CONCURRENT"),
    ("serialized command buffers", "--xla_gpu_command_buffer_scheduling_mode=SERIALIZE"),
    ("no command buffers", "--xla_gpu_enable_command_buffer="),
)
DTYPES = ("float32", "bfloat16")


def run(check: Check, entry: dict) -> None:
    """One probe process per setting of `SETTINGS`; rows in ms and against the default."""
    h, w = check.profile.restore
    repeats = max(3, check.profile.repeats)
    entry["probes"] = []
    baseline: dict[str, float] = {}
    for name, flags in SETTINGS:
        if check.skip(entry, f"setting {name}", 20.0):
            continue
        trace = check.out_dir / "profile" if name == "default" and check.left() > 60 else None
        r = _probe_process(check, flags, (h, w), repeats, trace)
        r["setting"] = name
        entry["probes"].append(r)
        if "error" in r:
            check.row(entry, f"4K network, {name}", "failed", f"{flags}: {r['error']}")
            continue
        for dtype in DTYPES:
            ms = r["ms"][dtype]
            if name == "default":
                baseline[dtype] = ms
            ref = baseline.get(dtype)
            versus = f"; {ref / ms:.2f}x the default" if ref and name != "default" else ""
            check.row(
                entry,
                f"{h}x{w} network, {dtype}, {name}",
                f"{ms:.3f} ms ({1e3 / ms:.0f} frames/s)",
                f"XLA_FLAGS {flags or '(unchanged)'}; median of {repeats}{versus}"
                + (f"; trace in {trace.name}/" if trace and r.get("traced") else ""),
            )


def _probe_process(
    check: Check, flags: str, shape: tuple[int, int], repeats: int, trace: Path | None
) -> dict:
    """`probe` in a fresh process under ``flags``; ``{"error": ...}`` if it failed."""
    h, w = shape
    args = ["--probe", f"{h}x{w}", "--repeats", str(repeats)]
    args += [] if trace is None else ["--trace", str(trace)]
    try:
        r = run_probe(check, "benchmarks.gpu_check.concurrency", args, {"XLA_FLAGS": flags})
    except RuntimeError as e:
        return {"error": str(e)}
    return {"error": "timed out"} if r is None else r


def probe(shape: tuple[int, int], repeats: int, trace: str | None) -> dict:
    """In a fresh process: median ms of the folded network (NumPy-drawn weights: speed does
    not depend on them) per dtype of `DTYPES`, on a device-resident frame."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks.bench_e2e import numpy_weights_model
    from benchmarks.common import median
    from jaxdark.models.lamba2021_folded import apply_folded, fold_params

    model = numpy_weights_model(0)
    x = jax.device_put(np.random.default_rng(0).random((1, *shape, 1), dtype=np.float32))
    out: dict = {"ms": {}, "device": jax.devices()[0].device_kind}
    for dtype in DTYPES:
        folded = jax.device_put(fold_params(model, jnp.bfloat16 if dtype == "bfloat16" else None))
        apply_folded(folded, x).block_until_ready()  # compile
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            apply_folded(folded, x).block_until_ready()
            times.append(time.perf_counter() - t)
        out["ms"][dtype] = median(times) * 1e3
        if trace and dtype == DTYPES[-1]:
            with jax.profiler.trace(trace):
                for _ in range(3):
                    apply_folded(folded, x).block_until_ready()
            out["traced"] = True
    return out


def main(argv: list[str] | None = None) -> int:
    """``--probe HxW``: run `probe` and print its JSON (what `run` starts)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check.concurrency")
    parser.add_argument("--probe", required=True, help="HxW")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--trace", default=None, help="folder for a jax.profiler trace")
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.probe.split("x"))
    print(json.dumps(probe((h, w), args.repeats, args.trace)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

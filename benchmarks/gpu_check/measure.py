"""Measurements several sections share: device memory, restore timing, torch set-up."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

from benchmarks.common import REPO_ROOT, median, xla_buffers, xla_total_bytes
from benchmarks.gpu_check.check import Check

CONFIGS = ("fp32-highest", "fp32-default", "bf16")  # restore configurations (fast path)
NNX_BF16 = "nnx-bf16"  # the plain NNX model in bfloat16 compute: timed once, for comparison


def device_memory() -> dict[str, int] | None:
    """XLA allocator statistics of the first device (None where the backend has none)."""
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - some backends raise instead of returning None
        return None
    if not stats:
        return None
    return {k: int(v) for k, v in stats.items() if isinstance(v, int | float)}


def peak_so_far() -> int | None:
    """The process's allocator peak (bytes) so far, or None."""
    mem = device_memory()
    return None if mem is None else mem.get("peak_bytes_in_use")


def mib(n: float | None) -> str:
    """Bytes as MiB text ("n/a" for None)."""
    return "n/a" if n is None else f"{n / 2**20:.0f} MiB"


@functools.cache
def model_runner():
    """``jax.jit(lambda model, x: model(x))``, made once (jax is imported late)."""
    import jax

    return jax.jit(lambda model, x: model(x))


def random_frames(batch: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(B, H, W, 1) uniform [0, 1) mosaics (speed does not depend on the content)."""
    return np.random.default_rng(seed).random((batch, h, w, 1), dtype=np.float32)


def run_probe(
    check: Check, module: str, args: list[str], env: dict[str, str] | None = None
) -> dict | None:
    """``python -m module args...`` in a fresh process (this repository importable, no
    preallocation, ``env`` added; an ``XLA_FLAGS`` there is appended to ours) within the
    run's time left: the JSON of its last stdout line, plus ``wall_s``. None if it timed
    out; RuntimeError with the exit status and last line if it failed."""
    full = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    full["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT)] + [p for p in full.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    for k, v in (env or {}).items():
        full[k] = f"{full.get(k, '')} {v}".strip() if k == "XLA_FLAGS" else v
    t = time.perf_counter()
    try:
        p = subprocess.run(
            [sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=full,
            capture_output=True, text=True, timeout=max(5.0, check.left()),
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"exit {p.returncode}: {tail[0][:200]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["wall_s"] = time.perf_counter() - t
    return r


def enable_compilation_cache(path: str | os.PathLike | None) -> None:
    """JAX's persistent compilation cache in ``path`` (shared with the memory probes)."""
    if not path:
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def measure_restore(check: Check, config: str, x, repeats: int, keep_output: bool = False):
    """Compile and time the fast path on a device-resident batch ``x`` for ``config``:
    (result dict, output or None)."""
    from jaxdark.models.lamba2021_folded import apply_folded

    if config == NNX_BF16:  # the plain NNX model, bfloat16 activations between layers
        arg, fn, kwargs = check.nnx_model("bfloat16"), model_runner(), {}
    else:
        arg, fn = check.folded(config), apply_folded
        kwargs = {"precision": "highest" if config == "fp32-highest" else None}

    def call():
        return fn(arg, x, **kwargs)

    t = time.perf_counter()
    call().block_until_ready()  # compiles, unless an earlier section compiled it
    compile_s = check.compile_s.setdefault((config, tuple(x.shape)), time.perf_counter() - t)
    # the jit cache makes this lowering free; it gives XLA's buffer sizes
    compiled = fn.lower(arg, x, **kwargs).compile()
    for _ in range(2):  # warm-up
        call().block_until_ready()
    lat = []
    for _ in range(repeats):
        t = time.perf_counter()
        y = call()
        y.block_until_ready()
        lat.append(time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(repeats):  # back-to-back calls, one wait: the pipelined rate
        y = call()
    y.block_until_ready()
    pipelined_s = (time.perf_counter() - t) / repeats
    batch = int(x.shape[0])
    med = median(lat)
    result: dict[str, Any] = {
        "config": config,
        "batch": batch,
        "shape": list(x.shape),
        "compile_s": compile_s,
        "latency_median_s": med,
        "latency_min_s": min(lat),
        "latency_s": lat,
        "fps": batch / med,
        "fps_pipelined": batch / pipelined_s,
        "repeats": repeats,
        **xla_buffers(compiled),
        "process_peak_bytes_so_far": peak_so_far(),
    }
    return (result, y) if keep_output else (result, None)


def restore_row(check: Check, entry: dict, label: str, r: dict) -> None:
    """One Markdown row for a `measure_restore` result."""
    xla, total = r.get("xla_temp_bytes"), xla_total_bytes(r)
    note = (
        f"median of {r['repeats']} ({r['latency_median_s'] * 1e3:.2f} ms/call, min "
        f"{r['latency_min_s'] * 1e3:.2f}); pipelined {r['fps_pipelined']:.1f} fps; "
        f"compile + first call {r['compile_s']:.1f} s; "
        f"XLA buffers {mib(total)} (temps {mib(xla)}); "
        f"process peak so far {mib(r['process_peak_bytes_so_far'])}"
    )
    check.row(entry, f"{label}, {r['config']}, batch {r['batch']}", f"{r['fps']:.1f} fps", note)


def import_torch():
    """(torch, device) or (None, reason)."""
    try:
        import torch
    except ImportError as e:
        return None, f"torch not importable ({e})"
    return torch, ("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def torch_true_fp32(torch):
    """TF32 off for cuDNN convolutions and CUDA matmuls while inside; restored after."""
    cudnn_conv = getattr(torch.backends.cudnn, "conv", None)
    matmul = torch.backends.cuda.matmul
    if cudnn_conv is not None and hasattr(cudnn_conv, "fp32_precision"):  # torch >= 2.9
        saved = (cudnn_conv.fp32_precision, matmul.fp32_precision)
        cudnn_conv.fp32_precision, matmul.fp32_precision = "ieee", "ieee"
        try:
            yield "torch.backends.cudnn.conv / cuda.matmul fp32_precision = 'ieee'"
        finally:
            cudnn_conv.fp32_precision, matmul.fp32_precision = saved
    else:
        saved = (torch.backends.cudnn.allow_tf32, matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32, matmul.allow_tf32 = False, False
        try:
            yield "torch.backends.cudnn.allow_tf32 = cuda.matmul.allow_tf32 = False"
        finally:
            torch.backends.cudnn.allow_tf32, matmul.allow_tf32 = saved

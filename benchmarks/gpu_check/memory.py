"""Section ``memory``: peak device memory of one restore, each configuration in a fresh
process (`probe` runs there: ``python -m benchmarks.gpu_check --memory-probe ...``)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import REPO_ROOT, xla_buffers, xla_total_bytes
from benchmarks.gpu_check.check import Check
from benchmarks.gpu_check.measure import (
    device_memory,
    enable_compilation_cache,
    mib,
    random_frames,
)


def run(check: Check, entry: dict) -> None:
    """One probe process per configuration of the profile's ``memory_probes``."""
    entry["probes"] = []
    for config, size_key, b in check.profile.memory_probes:
        h, w = getattr(check.profile, size_key)
        if check.skip(entry, f"{config} {b}x{h}x{w}", 15.0):
            continue
        env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        )
        env["JAX_COMPILATION_CACHE_DIR"] = str(check.cache_dir)  # reuse this run's compilations
        params = str(check.folded_file(config))
        cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--memory-probe", config,
               "--probe-shape", f"{b}x{h}x{w}", "--probe-params", params]  # fmt: skip
        t = time.perf_counter()
        try:
            p = subprocess.run(
                cmd,
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=max(5.0, check.left()),
            )
        except subprocess.TimeoutExpired:
            entry["skipped"].append(f"{config} {b}x{h}x{w}: probe timed out")
            continue
        if p.returncode != 0:
            tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"memory probe {config} {b}x{h}x{w} failed: {tail[0]}")
        r = json.loads(p.stdout.strip().splitlines()[-1])
        r.update(config=config, shape=[b, h, w], wall_s=time.perf_counter() - t)
        entry["probes"].append(r)
        xla = xla_total_bytes(r)
        check.row(
            entry,
            f"peak device memory, one {b}x{h}x{w} restore, {config}",
            mib(r.get("peak_bytes_in_use")),
            f"fresh process; weights {mib(r.get('bytes_before_input'))} before the "
            f"input; XLA buffers {mib(xla)}; nvidia-smi for the process "
            f"{r.get('nvidia_smi_process_mib', 'n/a')} MiB (incl. CUDA context); "
            f"target for 4K: <= 1 GB",
        )


def probe(config: str, b: int, h: int, w: int, params: Path) -> dict:
    """Run in a fresh process: one restore and its allocator peak (printed as JSON)."""
    import jax

    from jaxdark.models.lamba2021_folded import apply_folded

    enable_compilation_cache(os.environ.get("JAX_COMPILATION_CACHE_DIR"))
    folded = jax.device_put(pickle.loads(params.read_bytes()))  # written by `folded_file`
    jax.block_until_ready(folded)
    before = device_memory() or {}
    x = jax.device_put(random_frames(b, h, w))
    precision = "highest" if config == "fp32-highest" else None
    t = time.perf_counter()
    compiled = apply_folded.lower(folded, x, precision=precision).compile()
    compile_s = time.perf_counter() - t
    y = compiled(folded, x)
    y.block_until_ready()
    after = device_memory() or {}
    out = {
        "compile_s": compile_s,
        "bytes_before_input": before.get("bytes_in_use"),
        "peak_bytes_in_use": after.get("peak_bytes_in_use"),
        "bytes_in_use_after": after.get("bytes_in_use"),
        "bytes_limit": after.get("bytes_limit"),
        **xla_buffers(compiled),
    }
    mib_used = _nvidia_smi_process_mib()
    if mib_used is not None:
        out["nvidia_smi_process_mib"] = mib_used
    return out


def _nvidia_smi_process_mib() -> int | None:
    """This process's device memory as nvidia-smi sees it (includes the CUDA context)."""
    try:
        q = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        for line in q.stdout.splitlines():
            pid, used = (v.strip() for v in line.split(",")[:2])
            if pid == str(os.getpid()):
                return int(used)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        pass
    return None

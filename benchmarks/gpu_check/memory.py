"""Section ``memory``: peak device memory of one restore, each configuration in fresh
processes (`probe` runs there: ``python -m benchmarks.gpu_check --memory-probe ...``).

Why two processes per configuration: ``peak_bytes_in_use`` never goes down, and on a GPU
compiling autotunes every convolution, trying cuDNN algorithms with scratch buffers of
their own. The H100 record of 2026-11-26 shows what that does to a measurement that
compiles in the process: a bf16 Sony frame "peaked" at 4,375 MiB (nvidia-smi 15,030 MiB)
while XLA's buffer assignment for the executable was 1,019 MiB and the same frame in
float32 peaked at 1,156 MiB; the 4K probes, whose executables the main process had
probably compiled into the shared cache already, peaked at 727 MiB. Our reading: the
excess is autotuning scratch, not the restore (not yet checked on a GPU). So the cold
process records the peak before and after the run, and the warm one, which loads the
executable from the cache and does not autotune, gives the memory a restore needs.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import time
from pathlib import Path

from benchmarks.common import xla_buffers, xla_total_bytes
from benchmarks.gpu_check.check import Check
from benchmarks.gpu_check.measure import (
    device_memory,
    enable_compilation_cache,
    mib,
    random_frames,
    run_probe,
)


def run(check: Check, entry: dict) -> None:
    """Two probe processes per configuration of the profile's ``memory_probes``: "cold"
    compiles (XLA's convolution autotuning included) into a compilation cache of its own,
    "warm" loads the executable from that cache, so its peak is the restore alone."""
    entry["probes"] = []
    for config, size_key, b in check.profile.memory_probes:
        h, w = getattr(check.profile, size_key)
        if check.skip(entry, f"{config} {b}x{h}x{w}", 25.0):
            continue
        cache = check.tmpdir / f"probe_cache_{config}_{b}x{h}x{w}"  # starts empty: cold
        pair = {}
        for phase in ("cold", "warm"):
            r = _probe_process(check, config, (b, h, w), cache)
            if r is None:
                entry["skipped"].append(f"{config} {b}x{h}x{w}: {phase} probe timed out")
                break
            r.update(config=config, shape=[b, h, w], phase=phase)
            entry["probes"].append(r)
            pair[phase] = r
        if len(pair) < 2:
            continue
        cold, warm = pair["cold"], pair["warm"]
        check.row(
            entry,
            f"peak device memory, one {b}x{h}x{w} restore, {config}",
            mib(warm.get("peak_bytes_in_use")),
            f"fresh process, executable from the compilation cache (hit: "
            f"{warm.get('cache_hits', 'n/a')}); weights {mib(warm.get('bytes_before_input'))}; "
            f"XLA buffers {mib(xla_total_bytes(warm))}; compiling in the process (cold) "
            f"peaked at {mib(cold.get('peak_after_compile'))} before the run and "
            f"{mib(cold.get('peak_bytes_in_use'))} after it (autotuning scratch); nvidia-smi "
            f"warm {warm.get('nvidia_smi_process_mib', 'n/a')} MiB, cold "
            f"{cold.get('nvidia_smi_process_mib', 'n/a')} MiB (incl. CUDA context); target "
            f"<= 1.2 GB",
        )


def _probe_process(check: Check, config: str, shape: tuple[int, int, int], cache: Path):
    """One probe in a fresh process (`probe`), its JSON result; None if it timed out."""
    b, h, w = shape
    args = ["--memory-probe", config, "--probe-shape", f"{b}x{h}x{w}",
            "--probe-params", str(check.folded_file(config))]  # fmt: skip
    try:
        return run_probe(
            check, "benchmarks.gpu_check", args, {"JAX_COMPILATION_CACHE_DIR": str(cache)}
        )
    except RuntimeError as e:
        raise RuntimeError(f"memory probe {config} {b}x{h}x{w} failed: {e}") from None


def probe(config: str, b: int, h: int, w: int, params: Path) -> dict:
    """Run in a fresh process: one restore and its allocator peaks (printed as JSON):
    after compiling (``peak_after_compile``) and after the run (``peak_bytes_in_use``),
    and how many executables came from the persistent compilation cache."""
    import jax

    from jaxdark.models.lamba2021_folded import apply_folded

    hits: list[str] = []
    jax.monitoring.register_event_listener(
        lambda event, **_: hits.append(event) if event.endswith("cache_hits") else None
    )
    enable_compilation_cache(os.environ.get("JAX_COMPILATION_CACHE_DIR"))
    folded = jax.device_put(pickle.loads(params.read_bytes()))  # written by `folded_file`
    jax.block_until_ready(folded)
    before = device_memory() or {}
    x = jax.device_put(random_frames(b, h, w))
    precision = "highest" if config == "fp32-highest" else None
    t = time.perf_counter()
    compiled = apply_folded.lower(folded, x, precision=precision).compile()
    compile_s = time.perf_counter() - t
    after_compile = device_memory() or {}
    y = compiled(folded, x)
    y.block_until_ready()
    after = device_memory() or {}
    out = {
        "compile_s": compile_s,
        "cache_hits": len(hits),
        "bytes_before_input": before.get("bytes_in_use"),
        "peak_after_compile": after_compile.get("peak_bytes_in_use"),
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

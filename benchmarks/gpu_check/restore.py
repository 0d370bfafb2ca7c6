"""Sections ``restore_4k`` and ``sony``: frames/s of the fast path per configuration."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import median
from benchmarks.gpu_check.check import Check
from benchmarks.gpu_check.measure import (
    CONFIGS,
    NNX_BF16,
    measure_restore,
    random_frames,
    restore_row,
)


def run_4k(check: Check, entry: dict) -> None:
    """4K: batch 1 first, then larger batches, the plain NNX model and `Restorer.restore`."""
    run_size(check, entry, "restore")


def run_sony(check: Check, entry: dict) -> None:
    """The full Sony frame, the three configurations at batch 1."""
    probed = [c for c, k, b in check.profile.memory_probes if k == "sony" and b == 1]
    if probed and "memory" in check.results["sections"]:
        check.row(
            entry,
            "compile times below",
            f"may be cache hits for {', '.join(probed)}",
            "the memory section's probes compiled these first (JAX persistent cache)",
        )
    run_size(check, entry, "sony")


def run_size(check: Check, entry: dict, size_key: str) -> None:
    """Frames/s per configuration at the profile's ``size_key`` size: batch 1 first, then
    (for ``restore``) larger batches while time lasts."""
    import jax
    import jax.numpy as jnp

    h, w = getattr(check.profile, size_key)
    label = f"{h}x{w}"
    check.model()
    entry["size"] = [h, w]
    entry["results"] = []
    x1 = jax.device_put(jnp.asarray(random_frames(1, h, w)))
    per_call = 15.0 if h * w >= 2**22 else 5.0  # rough compile + timing cost
    configs = CONFIGS if size_key == "restore" else check.profile.sony_configs
    outputs = {}
    for config in configs:
        if check.skip(entry, f"{config} batch 1", per_call):
            continue
        r, y = measure_restore(check, config, x1, check.profile.repeats, keep_output=True)
        outputs[config] = np.asarray(y)
        entry["results"].append(r)
        restore_row(check, entry, label, r)
    _errors(check, entry, outputs, label)
    del outputs
    if size_key != "restore":
        return
    _larger_batches(check, entry, h, w, per_call)
    if not check.skip(entry, f"{NNX_BF16} batch 1", per_call):
        r, _ = measure_restore(check, NNX_BF16, x1, check.profile.repeats)
        entry["nnx_bf16"] = r
        restore_row(check, entry, f"{label} (plain NNX model, bf16 activations)", r)
    for c, best in entry["best"].items():
        check.row(
            entry,
            f"best {label} rate, {c}",
            f"{best['fps']:.1f} fps at batch {best['batch']}",
            "median-latency rate",
        )
    if not check.skip(entry, "end-to-end Restorer.restore (host in, host out)", per_call * 2):
        restorer_rows(check, entry, h, w)


def _errors(check: Check, entry: dict, outputs: dict, label: str) -> None:
    """fp32-default and bf16 outputs against fp32-highest."""
    from benchmarks.bf16_error import compare

    ref = outputs.get("fp32-highest")
    entry["errors_vs_fp32_highest"] = {}
    for config in ("fp32-default", "bf16"):
        if ref is not None and config in outputs:
            e = compare(outputs[config], ref)
            entry["errors_vs_fp32_highest"][config] = e
            check.row(
                entry,
                f"{config} vs fp32-highest output, {label} uniform random",
                f"max {e['max_abs']:.2e}, mean {e['mean_abs']:.2e}",
                f"PSNR {e['psnr_db']:.1f} dB",
            )


def _larger_batches(check: Check, entry: dict, h: int, w: int, per_call: float) -> None:
    """bf16 and default precision first (the frames/s targets), then fp32-highest; the best
    rate per configuration goes to ``entry["best"]``."""
    import jax
    import jax.numpy as jnp

    for configs in (("bf16", "fp32-default"), ("fp32-highest",)):
        for b in check.profile.batches[1:]:
            xb = jax.device_put(jnp.asarray(random_frames(b, h, w)))
            for config in configs:
                if check.skip(entry, f"{config} batch {b}", per_call * (1 + b / 4)):
                    continue
                r, _ = measure_restore(check, config, xb, check.profile.repeats)
                entry["results"].append(r)
                restore_row(check, entry, f"{h}x{w}", r)
            del xb
    best: dict[str, dict] = {}
    for r in entry["results"]:
        if r["config"] not in best or r["fps"] > best[r["config"]]["fps"]:
            best[r["config"]] = r
    entry["best"] = {c: {"batch": r["batch"], "fps": r["fps"]} for c, r in best.items()}


def restorer_rows(check: Check, entry: dict, h: int, w: int) -> None:
    """`Restorer.restore` on a host mosaic: amplifier, transfers and network, per frame."""
    from jaxdark.restorer import Restorer

    mosaic = np.random.default_rng(3).random((h, w), dtype=np.float32) ** 4 * 0.03
    entry["restorer"] = {}
    for dtype in check.profile.restorer_dtypes:
        r = Restorer(check.model(), dtype=dtype)
        t = time.perf_counter()
        r.restore(mosaic)
        first = time.perf_counter() - t
        times = []
        for _ in range(max(3, check.profile.repeats // 4)):
            t = time.perf_counter()
            r.restore(mosaic)
            times.append(time.perf_counter() - t)
        entry["restorer"][dtype] = {"first_call_s": first, "median_s": median(times)}
        check.row(
            entry,
            f"Restorer.restore {h}x{w}, dtype {dtype}",
            f"{median(times) * 1e3:.1f} ms/frame",
            f"host mosaic in, host image out, amplifier estimated (m=5); median of "
            f"{len(times)}; first call {first:.1f} s (compiles)",
        )

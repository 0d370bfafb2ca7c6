"""Section ``amplifier``: `estimate_amplification` on a 12 MP frame on the device, against
the NumPy reference (`convert_weights.reference_amplifier`)."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import median
from benchmarks.gpu_check.check import Check
from convert_weights.reference_amplifier import reference_amplification


def run(check: Check, entry: dict) -> None:
    """Median time of the device amplifier, then the NumPy loop once and the factors."""
    import jax

    from jaxdark.imaging.amplifier import estimate_amplification

    h, w = check.profile.amp
    rng = np.random.default_rng(1)
    x = (rng.random((h, w), dtype=np.float32) ** 6 * 1.05).astype(np.float32)
    xj = jax.device_put(x)
    t = time.perf_counter()
    a = estimate_amplification(xj, 5.0).block_until_ready()
    first = time.perf_counter() - t
    times = []
    for _ in range(max(5, check.profile.repeats)):
        t = time.perf_counter()
        estimate_amplification(xj, 5.0).block_until_ready()
        times.append(time.perf_counter() - t)
    entry.update(shape=[h, w], first_call_s=first, median_s=median(times), factor=float(a))
    check.row(
        entry,
        f"amplifier, {h}x{w} ({h * w / 1e6:.1f} MP)",
        f"{median(times) * 1e3:.2f} ms",
        f"median of {len(times)}, device-resident frame; first call {first:.2f} s "
        f"(compiles); {jax.devices()[0].device_kind}",
    )
    if not check.skip(entry, "NumPy reference loop", 10.0):
        t = time.perf_counter()
        ref = reference_amplification(x, 5.0)
        entry["numpy_s"] = time.perf_counter() - t
        entry["rel_diff"] = abs(float(a) - ref) / ref
        check.row(
            entry,
            "amplifier, NumPy reference loop (host)",
            f"{entry['numpy_s']:.2f} s",
            f"factors {float(a):.5f} vs {ref:.5f}, rel. diff {entry['rel_diff']:.1e}",
        )

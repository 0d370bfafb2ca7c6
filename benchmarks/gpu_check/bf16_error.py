"""Section ``bf16_error``: bfloat16 vs float32 (highest) outputs on the demo scene and random
inputs (`benchmarks.bf16_error`)."""

from __future__ import annotations

from benchmarks.gpu_check.check import Check


def run(check: Check, entry: dict) -> None:
    """One row per input and bfloat16 variant: max / mean |difference| and PSNR."""
    from benchmarks.bf16_error import demo_input, error_rows, random_inputs

    h, w = check.profile.demo
    inputs = {"demo scene (m=5)": demo_input(h, w), **random_inputs(h, w)}
    entry["rows_bf16"] = error_rows(check.model(), inputs)
    for r in entry["rows_bf16"]:
        check.row(
            entry,
            f"{r['input']}, {h}x{w}, {r['variant']}",
            f"max {r['max_abs']:.4f}, mean {r['mean_abs']:.5f}",
            f"PSNR {r['psnr_db']:.1f} dB against fp32-highest",
        )

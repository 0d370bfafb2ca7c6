"""bfloat16 against float32 inference: how far apart the two restorations are.

    python -m benchmarks.bf16_error [--weights PATH] [--size HxW] [--json FILE]

For each input it restores once in float32 (the fast path at ``precision="highest"``,
true float32 products on any backend) and compares with:

* ``fast bf16``: `Restorer(..., dtype="bfloat16")`'s network call, i.e.
  ``apply_folded(fold_params(model, bfloat16), x)``: bfloat16 multiplies, float32
  accumulation, activations and output;
* ``model bf16``: the NNX model with compute dtype bfloat16 (`jaxdark.models.precision`), the
  training path: bfloat16 activations between layers.

Inputs: the chart scene (`jaxdark.data.chart`, the earlier demo's scene, through its simulated
sensor,
normalised like `jaxdark.imaging.raw.read_raw` and amplified by ``estimate_amplification(m=5)``,
as `jaxdark restore` would restore it), a uniform random mosaic in [0, 1), and a dark random
mosaic (values ``u**4 * 0.03``) amplified the same way. Reported per pair: max and mean
absolute difference and the PSNR (dB, data range 1) of the bfloat16 output against the
float32 one. Uses the official weights when found (else a freshly initialised network).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import cpu_model, find_weights, parse_size

DEMO_SIZE = (512, 768)
DEMO_M = 5.0


def compare(test: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Max and mean |test - ref| and PSNR (dB, data range 1) of ``test`` against ``ref``."""
    d = np.asarray(test, np.float64) - np.asarray(ref, np.float64)
    mse = float(np.mean(d * d))
    psnr = float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)
    return {
        "max_abs": float(np.max(np.abs(d))),
        "mean_abs": float(np.mean(np.abs(d))),
        "psnr_db": psnr,
    }


def demo_input(height: int, width: int, m: float = DEMO_M, seed: int = 0) -> np.ndarray:
    """The demo's dark scene as the network sees it: (1, H, W, 1) amplified mosaic."""
    from jaxdark.data.chart import BLACK_LEVEL, WHITE_LEVEL, simulate_raw, synthetic_scene
    from jaxdark.imaging.amplifier import estimate_amplification

    raw = simulate_raw(synthetic_scene(height, width), seed=seed).astype(np.float32)
    mosaic = np.maximum(raw - BLACK_LEVEL, 0.0) / np.float32(WHITE_LEVEL - BLACK_LEVEL)
    a = float(estimate_amplification(mosaic, m))
    return (a * mosaic)[None, :, :, None].astype(np.float32)


def random_inputs(height: int, width: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A uniform [0, 1) mosaic and an amplified dark random one, each (1, H, W, 1)."""
    from jaxdark.imaging.amplifier import estimate_amplification

    rng = np.random.default_rng(seed)
    uniform = rng.random((height, width), dtype=np.float32)
    dark = (rng.random((height, width), dtype=np.float32) ** 4 * 0.03).astype(np.float32)
    dark = dark * float(estimate_amplification(dark, DEMO_M))
    return {
        "uniform random": uniform[None, :, :, None],
        "dark random, amplified (m=5)": dark[None, :, :, None],
    }


def error_rows(model, inputs: dict[str, np.ndarray]) -> list[dict]:
    """One dict per (input, bfloat16 variant): the `compare` numbers against float32."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from jaxdark.models.lamba2021_folded import apply_folded, fold_params
    from jaxdark.models.precision import set_compute_dtype

    f32 = fold_params(model)
    bf16 = fold_params(model, jnp.bfloat16)
    model_bf16 = set_compute_dtype(nnx.clone(model), "bfloat16")
    run_model = jax.jit(lambda m, v: m(v))
    rows = []
    for name, x in inputs.items():
        xj = jnp.asarray(x)
        ref = np.asarray(apply_folded(f32, xj, precision="highest"))
        variants = {
            "fast bf16 (bf16 multiplies, fp32 activations)": apply_folded(bf16, xj),
            "model bf16 (bf16 activations, training path)": run_model(model_bf16, xj),
        }
        for variant, y in variants.items():
            rows.append(
                {
                    "input": name,
                    "shape": list(x.shape),
                    "variant": variant,
                    **compare(np.asarray(y, np.float32), ref),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the table (and write JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="checkpoint (.pth or converted)")
    parser.add_argument("--size", type=parse_size, default=DEMO_SIZE, help="HxW (default 512x768)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    import jax

    from jaxdark import create_model, load_model

    weights = find_weights(args.weights)
    model = load_model(weights) if weights else create_model(seed=0)
    h, w = args.size
    inputs = {f"demo scene (m={DEMO_M:g})": demo_input(h, w), **random_inputs(h, w)}
    rows = error_rows(model, inputs)
    dev = jax.devices()[0]
    print(
        f"bfloat16 vs float32 (highest), {h}x{w}, weights: {weights or 'random init'}; "
        f"{dev.platform} {dev.device_kind}, {cpu_model()}\n"
    )
    print("| input | bf16 variant | max abs | mean abs | PSNR (dB) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['input']} | {r['variant']} | {r['max_abs']:.4f} | {r['mean_abs']:.5f} | "
            f"{r['psnr_db']:.1f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

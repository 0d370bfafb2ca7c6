"""Inference benchmark: jaxdark's fast path against our PyTorch reference, one table.

    python -m benchmarks.bench_inference [--size 4k|sony|HxW] [--repeats N] [--smoke]
                                         [--weights PATH] [--amp-size HxW]

Prints one Markdown table: the machine; parameter count; GMACs per frame from XLA's cost
analysis at 4K (2144x3840) and the full Sony frame (2848x4256); the restore time of
jaxdark's fast path (`jaxdark.models.lamba2021_folded`), of the plain jitted NNX model, of our
PyTorch reference (`convert_weights.reference_torch`) and of the ONNX export in
onnxruntime (CPU, float32; when onnx and onnxruntime are installed) on the same input in
the same process, runs interleaved (one of each per round) so that load from other processes
hits all of them alike, medians after one warm-up run; their ratio; the largest
difference between the fast path and the model; peak host memory; the amplifier's time
on a 12 MP frame against a plain NumPy rendering of the reference algorithm; and, when
JAX sees a GPU, frames per second at 4K in float32 and bfloat16 with the bfloat16 error
and peak GPU memory. ``--smoke`` runs everything at 256x256 with one repeat (for CI).

Weights: ``--weights``, else $JAXDARK_OFFICIAL_WEIGHTS, else ../shared/official/weights.pth
from the repository root; without a checkpoint a freshly initialised network is timed
(speed does not depend on the weights) and the table says so.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np

from benchmarks.common import (
    AMP_SIZE,
    SIZES,
    SMOKE_SIZE,
    Row,
    available_cores,
    cpu_model,
    find_weights,
    fmt_s,
    gmacs,
    median,
    parse_area,
    parse_size,
    peak_rss_growth,
    print_table,
    proc_status_kib,
    time_interleaved,
    xla_buffers,
    xla_total_bytes,
)
from convert_weights.reference_amplifier import reference_amplification

PARITY_TOL = 1e-5  # fast path vs model, float32
BF16_TOL = 2.0 / 255.0  # bfloat16 vs float32 target on GPU


# --------------------------------------------------------------------------- sections


def complexity_rows(model, folded) -> list[Row]:
    """Parameter count and GMACs per frame at 4K and at the Sony full frame."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from jaxdark.models.lamba2021 import count_params
    from jaxdark.models.lamba2021_folded import apply_folded
    from jaxdark.models.layers import WNConv

    # the network's own MACs: grouped convolutions as grouped, not block-diagonal dense
    native = nnx.clone(model)
    for _, node in nnx.iter_graph(native):
        if isinstance(node, WNConv):
            node.grouped_impl = "native"
    model_fn = jax.jit(lambda m, v: m(v))
    rows: list[Row] = [("parameters", f"{count_params(model):,}", "paper: 0.78 M (784,768)")]
    for label, (h, w) in (("4K", SIZES["4k"]), ("Sony full frame", SIZES["sony"])):
        spec = jax.ShapeDtypeStruct((1, h, w, 1), jnp.float32)
        ref = gmacs(model_fn, native, spec)
        fast = gmacs(apply_folded, folded, spec)
        note = "XLA cost analysis of the model (flops / 2)"
        if label == "Sony full frame":
            note += "; paper: 59.8"
        rows.append((f"GMACs per frame, {label} ({h}x{w})", f"{ref:.2f}", note))
        rows.append(
            (
                f"GMACs executed by the fast path, {label}",
                f"{fast:.2f}",
                "block-diagonal and space-to-depth kernels do extra (zero) work",
            )
        )
    return rows


def restore_rows(model, folded, state_dict, size, repeats: int) -> tuple[list[Row], float]:
    """Interleaved restore timings, their ratio, parity and memory."""
    import jax
    import jax.numpy as jnp

    from jaxdark.models.lamba2021_folded import apply_folded

    h, w = size
    x = np.random.default_rng(0).random((1, h, w, 1), dtype=np.float32)
    xj = jax.device_put(jnp.asarray(x))
    model_fn = jax.jit(lambda m, v: m(v))
    fns: dict[str, Callable[[], object]] = {
        "fast": lambda: apply_folded(folded, xj).block_until_ready(),
        "model": lambda: model_fn(model, xj).block_until_ready(),
    }
    torch_note = ""
    try:
        import torch

        from convert_weights.reference_torch import reference_from_state_dict

        net = reference_from_state_dict(state_dict)
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        torch_threads = torch.get_num_threads()

        def run_torch():
            with torch.inference_mode():
                return net(xt)

        fns["torch"] = run_torch
        torch_note = f"torch {torch.__version__}, {torch_threads} threads"
    except ImportError as e:
        torch_note = f"not measured ({e})"
    run_onnx, onnx_note = onnxruntime_runner(model, x)
    if run_onnx is not None:
        fns["onnx"] = run_onnx

    times = time_interleaved(fns, repeats)
    t_fast, t_model = median(times["fast"]), median(times["model"])
    n = f"median of {repeats} after warm-up, interleaved"
    rows: list[Row] = [
        ("jaxdark restore, fast path (jaxdark.models.lamba2021_folded)", fmt_s(t_fast), n),
        ("jaxdark restore, plain NNX model (jit)", fmt_s(t_model), n),
    ]
    if "torch" in times:
        t_torch = median(times["torch"])
        rows.append(("PyTorch reference restore", fmt_s(t_torch), f"{n}; {torch_note}"))
        rows.append(
            (
                "ratio jaxdark fast / PyTorch",
                f"{t_fast / t_torch:.2f}",
                f"target <= 0.90; plain model / PyTorch: {t_model / t_torch:.2f}",
            )
        )
    else:
        rows.append(("PyTorch reference restore", "n/a", torch_note))
    if "onnx" in times:
        t_onnx = median(times["onnx"])
        ratio = f"; / PyTorch: {t_onnx / median(times['torch']):.2f}" if "torch" in times else ""
        rows.append(("onnxruntime restore, CPU, float32", fmt_s(t_onnx), f"{n}; {onnx_note}"))
        rows.append(
            ("ratio onnxruntime / jaxdark fast", f"{t_onnx / t_fast:.2f}", ratio.lstrip("; "))
        )
    else:
        rows.append(("onnxruntime restore, CPU, float32", "n/a", onnx_note))

    diff = float(jnp.max(jnp.abs(apply_folded(folded, xj) - model_fn(model, xj))))
    verdict = "ok" if diff <= PARITY_TOL else "EXCEEDS"
    bound = f"{verdict} (bound {PARITY_TOL:g})"
    rows.append(("max abs diff, fast path vs model, float32", f"{diff:.2e}", bound))
    if "torch" in times:
        ref = fns["torch"]().numpy().transpose(0, 2, 3, 1)
        tdiff = float(np.max(np.abs(np.asarray(apply_folded(folded, xj)) - ref)))
        rows.append(("max abs diff, fast path vs PyTorch, float32", f"{tdiff:.2e}", ""))
    if "onnx" in times:
        odiff = float(np.max(np.abs(fns["onnx"]() - np.asarray(model_fn(model, xj)))))
        rows.append(("max abs diff, onnxruntime vs model, float32", f"{odiff:.2e}", "bound 1e-4"))

    # Memory: how far the resident set rises above its warm level during one restore.
    engines = (
        ("fast", "jaxdark fast path"),
        ("torch", "PyTorch reference"),
        ("onnx", "onnxruntime"),
    )
    for key, label in engines:
        if key in fns:
            grow = peak_rss_growth(fns[key])
            value = "n/a" if grow is None else f"{grow:.0f} MiB"
            note = "after warm-up"
            if key == "onnx":
                note += "; onnxruntime's memory arena keeps the warm-up run's buffers"
            rows.append((f"peak host RSS growth during one restore, {label}", value, note))
    buffers = xla_buffers(apply_folded.lower(folded, xj).compile())
    total = xla_total_bytes(buffers)
    if total is not None:
        rows.append(
            (
                "XLA buffers of the fast path (args + temps + output)",
                f"{total / 2**20:.0f} MiB",
                f"temps {buffers['xla_temp_bytes'] / 2**20:.0f} MiB",
            )
        )
    hwm = proc_status_kib("VmHWM")
    if hwm is not None:
        rows.append(("process RSS peak", f"{hwm / 1024:.0f} MiB", "whole benchmark so far"))
    return rows, diff


def onnxruntime_runner(model, x: np.ndarray) -> tuple[Callable[[], np.ndarray] | None, str]:
    """A call of the ONNX export of ``model`` on ``x`` in onnxruntime (CPU), and a note."""
    try:
        import onnxruntime as ort

        from jaxdark.export import ExportSpec
        from jaxdark.export.metadata import build_metadata
        from jaxdark.export.onnx import build_onnx
    except ImportError as e:
        return None, f"not measured ({e})"
    spec = ExportSpec("onnx")
    proto = build_onnx(model, spec, build_metadata(model, spec, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = available_cores()
    # no busy-waiting between runs: spinning threads would slow the engines timed after it
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    feed = {"mosaic": np.ascontiguousarray(x)}
    threads = f"{available_cores()} threads (no spinning)"
    note = f"onnxruntime {ort.__version__}, {threads}, dynamic-shape export"
    return lambda: session.run(None, feed)[0], note


def amplifier_rows(size: tuple[int, int], repeats: int) -> list[Row]:
    """jaxdark.imaging.amplifier against the NumPy reference loop on one frame."""
    h, w = size
    rng = np.random.default_rng(1)
    # A dark frame: most pixels near black, a few bright ones (and some >= 1).
    x = (rng.random((h, w), dtype=np.float32) ** 6 * 1.05).astype(np.float32)
    mp = h * w / 1e6
    try:
        import jax

        from jaxdark.imaging.amplifier import estimate_amplification
    except ImportError as e:
        return [
            (f"amplifier, {mp:.1f} MP", "n/a", f"jaxdark.imaging.amplifier not available ({e})")
        ]
    xj = jax.device_put(x)
    result: dict[str, float] = {}

    def run_jax():
        result["jax"] = float(estimate_amplification(xj, 5.0))

    def run_numpy():
        result["numpy"] = reference_amplification(x, 5.0)

    times = time_interleaved({"jax": run_jax, "numpy": run_numpy}, max(repeats, 3))
    rel = abs(result["jax"] - result["numpy"]) / result["numpy"]
    n = f"median of {max(repeats, 3)}, {h}x{w}"
    return [
        (f"amplifier, jaxdark ({mp:.1f} MP)", fmt_s(median(times["jax"])), f"{n}; target <= 50 ms"),
        (
            f"amplifier, NumPy reference loop ({mp:.1f} MP)",
            fmt_s(median(times["numpy"])),
            f"{n}; factors {result['jax']:.4f} vs {result['numpy']:.4f} (rel. diff {rel:.1e})",
        ),
    ]


def gpu_rows(model, state_dict, repeats: int) -> list[Row]:
    """Frames per second at 4K in float32 and bfloat16, bf16 error, peak GPU memory."""
    import jax
    import jax.numpy as jnp

    from jaxdark.models.lamba2021_folded import apply_folded, fold_params

    dev = jax.devices()[0]
    h, w = SIZES["4k"]
    x = jax.device_put(
        jnp.asarray(np.random.default_rng(0).random((1, h, w, 1), dtype=np.float32)), dev
    )
    n = max(20, 10 * repeats)

    def fps(fn) -> float:
        for _ in range(3):
            fn().block_until_ready()
        t0 = time.perf_counter()
        for _ in range(n):
            out = fn()
        out.block_until_ready()
        return n / (time.perf_counter() - t0)

    def peak_mib() -> str:
        stats = dev.memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return "n/a" if peak is None else f"{peak / 2**20:.0f} MiB"

    f32 = fold_params(model)
    rows: list[Row] = [("GPU", dev.device_kind, f"{jax.default_backend()}, batch 1, {n} frames")]
    fps32 = fps(lambda: apply_folded(f32, x))
    y32 = apply_folded(f32, x)
    rows.append(("GPU fps at 4K, float32, fast path", f"{fps32:.1f}", "target >= 120"))
    rows.append(("peak GPU memory after float32 runs", peak_mib(), "target <= 1 GiB"))
    model_fn = jax.jit(lambda m, v: m(v))
    ym = model_fn(model, x)
    rows.append(
        (
            "GPU max abs diff, fast path vs model, float32",
            f"{float(jnp.max(jnp.abs(y32 - ym))):.2e}",
            "XLA default precision on both",
        )
    )
    del ym
    bf = fold_params(model, jnp.bfloat16)
    fps16 = fps(lambda: apply_folded(bf, x))
    y16 = apply_folded(bf, x)
    d16 = float(jnp.max(jnp.abs(y16.astype(jnp.float32) - y32)))
    rows.append(("GPU fps at 4K, bfloat16, fast path", f"{fps16:.1f}", "target >= 250"))
    rows.append(
        ("GPU max abs diff, bfloat16 vs float32", f"{d16:.4f}", f"target <= {BF16_TOL:.4f} (2/255)")
    )
    rows.append(("peak GPU memory after all runs", peak_mib(), "process-wide peak"))
    for name, folded in (("float32", f32), ("bfloat16", bf)):
        total = xla_total_bytes(xla_buffers(apply_folded.lower(folded, x).compile()))
        if total is not None:
            rows.append((f"XLA GPU buffers, {name}", f"{total / 2**20:.0f} MiB", "args+temps+out"))
    try:
        import torch

        if torch.cuda.is_available():
            from convert_weights.reference_torch import reference_from_state_dict

            net = reference_from_state_dict(state_dict).cuda()
            xt = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()).cuda()
            with torch.inference_mode():
                for _ in range(3):
                    net(xt)
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(n):
                    net(xt)
                torch.cuda.synchronize()
            torch_fps = n / (time.perf_counter() - t0)
            rows.append(("GPU fps at 4K, PyTorch reference, float32", f"{torch_fps:.1f}", ""))
    except ImportError:
        pass
    return rows


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse flags, run the benchmark, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=SIZES["4k"], help="4k, sony or HxW")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per engine (>= 1)")
    parser.add_argument("--smoke", action="store_true", help="256x256, 1 repeat (for CI)")
    parser.add_argument("--weights", default=None, help="checkpoint (.pth or converted)")
    parser.add_argument("--amp-size", type=parse_area, default=AMP_SIZE, help="amplifier frame HxW")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    size, repeats, amp_size = args.size, args.repeats, args.amp_size
    if args.smoke:
        size, repeats, amp_size = SMOKE_SIZE, 1, SMOKE_SIZE

    import jax

    from jaxdark import create_model, load_model
    from jaxdark.errors import JaxdarkError
    from jaxdark.models.lamba2021_folded import fold_params
    from jaxdark.weights.convert import params_to_state_dict

    try:
        weights = find_weights(args.weights)
        model = load_model(weights) if weights else create_model(seed=0)
    except (JaxdarkError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    folded = fold_params(model)
    state_dict = {k: np.array(v) for k, v in params_to_state_dict(model).items()}  # writable

    backend = jax.default_backend()
    rows: list[Row] = [
        (
            "machine",
            f"{cpu_model()}, {available_cores()} cores",
            f"jax {jax.__version__} ({backend}: {jax.devices()[0].device_kind}), "
            f"XLA:CPU threads = cores available",
        ),
        ("input", f"1x{size[0]}x{size[1]}", "random mosaic in [0, 1), device-resident"),
        ("weights", str(weights) if weights else "random init (no checkpoint found)", ""),
    ]
    rows += complexity_rows(model, folded)
    # The amplifier is timed before any PyTorch work: torch's OpenMP threads keep spinning
    # for a while after each parallel region and take cores from XLA (53 ms instead of 37).
    amplifier = amplifier_rows(amp_size, repeats)
    restore, diff = restore_rows(model, folded, state_dict, size, repeats)
    rows += restore
    rows += amplifier
    if backend in ("gpu", "cuda", "rocm"):
        rows += gpu_rows(model, state_dict, repeats)
    else:
        rows.append(("GPU", "not present", "GPU rows (fps fp32/bf16, GPU memory) need a GPU"))
    title = f"jaxdark inference benchmark: {size[0]}x{size[1]}, {repeats} repeat(s)" + (
        " (smoke)" if args.smoke else ""
    )
    print_table(title, rows)
    return 0 if diff <= PARITY_TOL else 1


if __name__ == "__main__":
    sys.exit(main())

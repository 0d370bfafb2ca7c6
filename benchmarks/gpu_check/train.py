"""Section ``train``: jaxdark's step in float32 and bfloat16 against the PyTorch reference."""

from __future__ import annotations

import time

from benchmarks.common import median, time_steps, torch_train_step, training_batch, xla_buffers
from benchmarks.gpu_check.check import Check
from benchmarks.gpu_check.measure import import_torch, mib, peak_so_far

TORCH_FP32, TORCH_BF16 = "PyTorch reference fp32", "PyTorch reference bf16 autocast"


def run(check: Check, entry: dict) -> None:
    """The PyTorch reference step, jaxdark's step per compute dtype, the reference under
    autocast, and the step-rate ratios."""
    import jax

    p = check.profile
    sizes = dict(p.train_net) if p.train_net else None
    entry.update(
        batch=p.train_batch,
        crop=p.train_crop,
        steps=p.train_steps,
        network="published network" if sizes is None else f"small network {sizes}",
    )
    x, y = training_batch(p.train_batch, p.train_crop)
    torch, tdev = import_torch()
    backend = jax.default_backend()
    if torch is not None and tdev == "cpu" and backend != "cpu":
        # a CPU step of the reference is no yardstick for a GPU step: skip, say why
        torch, tdev = None, f"torch sees no CUDA device (JAX runs on {backend})"
    entry["runs"] = {}
    per = 40.0 if p.name == "full" else 20.0
    for key, dtype in ((TORCH_FP32, None), *((f"jaxdark {d}", d) for d in p.train_dtypes)):
        if dtype is None and not check.skip(entry, key, per / 2):
            _torch_run(check, entry, key, x, y, sizes, torch, tdev, autocast=False)
        elif dtype is not None and not check.skip(entry, key, per):
            _jax_run(check, entry, dtype, x, y, sizes)
    if not check.skip(entry, TORCH_BF16, per / 2):
        _torch_run(check, entry, TORCH_BF16, x, y, sizes, torch, tdev, autocast=True)
    ref = entry["runs"].get(TORCH_FP32)
    if ref:
        entry["speedup_vs_torch_fp32"] = {}
        for key in ("jaxdark float32", "jaxdark bfloat16", TORCH_BF16):
            if key in entry["runs"]:
                ratio = ref["step_s"] / entry["runs"][key]["step_s"]
                entry["speedup_vs_torch_fp32"][key] = ratio
                check.row(
                    entry,
                    f"{key} / {TORCH_FP32}",
                    f"{ratio:.2f}x step rate",
                    "target >= 2x" if key.startswith("jaxdark") else "",
                )


def _what(entry: dict) -> str:
    return f"batch {entry['batch']} x {entry['crop']}x{entry['crop']}"


def _torch_run(check, entry, key, x, y, sizes, torch, tdev, *, autocast: bool) -> None:
    """The PyTorch reference step (`benchmarks.common.torch_train_step`) on its device."""
    if torch is None:
        entry["skipped"].append(f"{key}: {tdev}")
        return
    torch.backends.cudnn.benchmark = True
    r = torch_train_step(x, y, entry["steps"], sizes=sizes, autocast=autocast)
    if "torch_error" in r:
        raise RuntimeError(r["torch_error"])
    r["cudnn_benchmark"] = True
    entry["runs"][key] = {"step_s": r["torch_step_s"], **r}
    check.row(
        entry,
        f"{key} step, {_what(entry)}",
        f"{r['torch_step_s'] * 1e3:.1f} ms",
        f"{entry['batch'] / r['torch_step_s']:.1f} examples/s; median of {entry['steps']} "
        f"after 1 warm-up; {r['torch_device_name']}; peak {mib(r['torch_peak_bytes'])}; "
        f"cudnn.benchmark, TF32 settings left at torch's defaults; {r['torch_loss_note']}",
    )


def _jax_run(check: Check, entry: dict, dtype: str, x, y, sizes: dict | None) -> None:
    """jaxdark's jitted shard_map step on one device in compute dtype ``dtype``."""
    import jax
    from flax import nnx

    from jaxdark.models.lamba2021 import DarkRestorationNet
    from jaxdark.training.optim import make_optimizer
    from jaxdark.training.state import setup_training
    from jaxdark.training.step import make_data_mesh, make_global_batch

    tx, _ = make_optimizer()
    mesh = make_data_mesh(1)
    model = DarkRestorationNet(**(sizes or {}), rngs=nnx.Rngs(0))
    setup = setup_training(model, tx, mesh, compute_dtype=dtype)
    batch = make_global_batch({"input": x, "target": y}, mesh)
    t = time.perf_counter()
    compiled = setup.train_step.lower(setup.state, batch).compile()
    compile_s = time.perf_counter() - t
    box = {"state": setup.state}
    losses = []

    def run():
        box["state"], metrics = compiled(box["state"], batch)
        losses.append(float(metrics["loss"]))  # waits for the step

    times = time_steps(run, entry["steps"])
    key = f"jaxdark {dtype}"
    run_ = entry["runs"][key] = {
        "step_s": median(times),
        "step_times_s": times,
        "compile_s": compile_s,
        "losses": losses,
        **xla_buffers(compiled),
        "process_peak_bytes_so_far": peak_so_far(),
    }
    s = run_["step_s"]
    check.row(
        entry,
        f"{key} step, {_what(entry)}",
        f"{s * 1e3:.1f} ms",
        f"{entry['batch'] / s:.1f} examples/s; median of {entry['steps']} after 1 warm-up; "
        f"compile {compile_s:.1f} s; XLA temps {mib(run_.get('xla_temp_bytes'))}; "
        f"{jax.devices()[0].device_kind}; {entry['network']}",
    )
    box.clear()

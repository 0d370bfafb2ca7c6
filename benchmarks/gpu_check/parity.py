"""Section ``parity``: official weights, float32 "highest" on both sides, against the
PyTorch reference on the same device."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.gpu_check.check import Check
from benchmarks.gpu_check.measure import import_torch, model_runner, random_frames, torch_true_fp32

PARITY_TOL = 1e-5


def run(check: Check, entry: dict) -> None:
    """Max |difference| of the fast path, the NNX model and the PyTorch reference."""
    import jax
    import jax.numpy as jnp

    from jaxdark.models.lamba2021_folded import apply_folded

    if check.weights() is None:
        raise FileNotFoundError("no official weights found (pass --weights PATH)")
    model = check.model()
    folded = check.folded("fp32-highest")
    torch, tdev = import_torch()
    net = None
    if torch is not None:
        from convert_weights.reference_torch import reference_from_state_dict

        net = reference_from_state_dict(check.state_dict()).to(tdev)
    else:
        entry["skipped"].append(f"PyTorch reference: {tdev}")
    entry["cases"] = []
    for b, h, w in check.profile.parity:
        if check.skip(entry, f"parity {b}x{h}x{w}", 10.0 if h * w < 2**20 else 25.0):
            continue
        x = random_frames(b, h, w, seed=1)
        xj = jax.device_put(jnp.asarray(x))
        t = time.perf_counter()
        y_fast = apply_folded(folded, xj, precision="highest").block_until_ready()
        check.compile_s[("fp32-highest", tuple(x.shape))] = time.perf_counter() - t
        y_fast = np.asarray(y_fast)
        with jax.default_matmul_precision("highest"):
            y_model = np.asarray(model_runner()(model, xj))
        case = {"shape": [b, h, w], "fast_vs_model": float(np.abs(y_fast - y_model).max())}
        if net is not None:
            with torch_true_fp32(torch) as how, torch.inference_mode():
                xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(tdev)
                y_torch = net(xt).float().cpu().numpy().transpose(0, 2, 3, 1)
            case["torch_setting"] = how
            case["torch_device"] = tdev
            case["fast_vs_torch"] = float(np.abs(y_fast - y_torch).max())
            case["model_vs_torch"] = float(np.abs(y_model - y_torch).max())
        entry["cases"].append(case)
        worst = max(
            v for k, v in case.items() if k.endswith(("_torch", "_model")) and isinstance(v, float)
        )
        case["within_1e-5"] = worst <= PARITY_TOL
        check.row(
            entry,
            f"max abs diff, {b}x{h}x{w}, float32 highest",
            f"fast vs torch {case.get('fast_vs_torch', float('nan')):.2e}, model vs torch "
            f"{case.get('model_vs_torch', float('nan')):.2e}, fast vs model "
            f"{case['fast_vs_model']:.2e}",
            f"{'ok' if case['within_1e-5'] else 'EXCEEDS'} (bound {PARITY_TOL:g}); torch on "
            f"{tdev}; {case.get('torch_setting', '')}",
        )
    entry["all_within_1e-5"] = bool(entry["cases"]) and all(
        c["within_1e-5"] for c in entry["cases"]
    )

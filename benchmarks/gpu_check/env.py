"""Section ``env``: machine, device, driver and versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from typing import Any

from benchmarks.common import machine_line
from benchmarks.gpu_check.check import Check, first_line
from benchmarks.gpu_check.measure import import_torch

PACKAGES = (
    "jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "libtpu", "flax", "optax",
    "orbax-checkpoint", "numpy", "ml-dtypes", "torch", "pytorch-msssim", "rawpy",
    "opencv-python-headless", "scikit-image",
)  # fmt: skip
ENV_VARS = (
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "XLA_PYTHON_CLIENT_MEM_FRACTION",
    "XLA_FLAGS",
    "JAX_PLATFORMS",
    "CUDA_VISIBLE_DEVICES",
)


def versions() -> dict[str, str | None]:
    """Installed version of each of `PACKAGES` (None where absent)."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for n in PACKAGES:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def nvidia_smi() -> dict[str, Any]:
    """Name, driver, memory and limits of each GPU from nvidia-smi (or why not)."""
    fields = "name,driver_version,memory.total,compute_cap,clocks.max.sm,power.limit"
    try:
        p = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": first_line(e)}
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout).strip().splitlines()[:1]}
    gpus = [
        dict(zip(fields.split(","), (v.strip() for v in line.split(",")), strict=False))
        for line in p.stdout.strip().splitlines()
    ]
    return {"gpus": gpus}


def run(check: Check, entry: dict) -> None:
    """Machine, device, driver and versions."""
    import jax

    devs = jax.devices()
    entry["backend"] = jax.default_backend()
    entry["devices"] = [str(d) for d in devs]
    entry["device_kind"] = devs[0].device_kind
    entry["versions"] = v = versions()
    entry["python"] = sys.version.split()[0]
    entry["host"] = f"{machine_line()}, {platform.machine()}"
    entry["nvidia_smi"] = nvidia_smi()
    entry["env"] = {k: os.environ.get(k) for k in ENV_VARS}
    entry["weights"] = str(check.weights()) if check.weights() else None
    gpus = entry["nvidia_smi"].get("gpus") or []
    smi = "; ".join(
        f"{g.get('name')} driver {g.get('driver_version')}, "
        f"{g.get('memory.total')}, cc {g.get('compute_cap')}"
        for g in gpus
    )
    entry["device"] = f"{devs[0].device_kind} ({entry['backend']})" + (f"; {smi}" if smi else "")
    check.row(entry, "device (JAX)", f"{devs[0].device_kind} x{len(devs)}", entry["backend"])
    check.row(entry, "nvidia-smi", smi or "n/a", str(entry["nvidia_smi"].get("error", "")))
    check.row(
        entry,
        "versions",
        f"jax {v['jax']}, jaxlib {v['jaxlib']}, flax {v['flax']}, "
        f"optax {v['optax']}, numpy {v['numpy']}, torch {v['torch']}",
        f"cuda plugin {v['jax-cuda13-plugin'] or v['jax-cuda12-plugin']}; "
        f"pytorch-msssim {v['pytorch-msssim']}; python {entry['python']}",
    )
    torch, dev = import_torch()
    if torch is None:
        entry["torch"] = {"error": dev}
        check.row(entry, "torch", "not available", dev)
    else:
        cuda = dev == "cuda"
        entry["torch"] = {
            "device": dev,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "device_name": torch.cuda.get_device_name() if cuda else "cpu",
        }
        check.row(
            entry,
            "torch device",
            entry["torch"]["device_name"],
            f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
            f"cuDNN {entry['torch']['cudnn']}",
        )
    check.row(entry, "host", entry["host"], f"weights: {entry['weights'] or 'none found'}")
    try:
        entry["jax_environment"] = jax.print_environment_info(return_string=True)
    except Exception as e:  # noqa: BLE001 - informational only
        entry["jax_environment"] = first_line(e)

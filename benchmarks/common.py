"""What several benchmark scripts share: sizes and their flags, the machine, timing, memory,
tables, the weights to load, a synthetic training batch and the PyTorch reference step.

Scripts import from here (and from `benchmarks.results_io` for the recorded-results
format), never from each other's private helpers. Heavy libraries (jax, torch) are imported
inside the functions that need them.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.results_io import cpu_model
from jaxdark.cli.flags import parse_hw

__all__ = [
    "AMP_SIZE", "DEFAULT_WEIGHTS", "REPO_ROOT", "SIZES", "SMOKE_SIZE", "Row",
    "available_cores", "cpu_model", "find_weights", "fmt_s", "gmacs", "machine_line",
    "median", "parse_area", "parse_size", "peak_rss_growth", "print_table", "proc_status_kib",
    "time_interleaved", "time_steps", "torch_train_step", "training_batch", "xla_buffers",
    "xla_total_bytes",
]  # fmt: skip

SIZES = {"4k": (2144, 3840), "sony": (2848, 4256)}
SMOKE_SIZE = (256, 256)
AMP_SIZE = (2848, 4256)  # the Sony a7S II mosaic: 12.1 MP
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPO_ROOT.parent / "shared" / "official" / "weights.pth"

Row = tuple[str, str, str]  # (quantity, value, notes): one row of a printed table


# --------------------------------------------------------------------------- flags


def parse_size(text: str) -> tuple[int, int]:
    """'4k', 'sony' or 'HxW' (multiples of 32) -> (H, W); an argparse type."""
    return parse_hw(text, multiple=32, named=SIZES)


def parse_area(text: str) -> tuple[int, int]:
    """'HxW' (any positive sides) -> (H, W); an argparse type."""
    return parse_hw(text)


def find_weights(arg: str | None) -> Path | None:
    """The checkpoint to load: ``arg`` (must exist), else $JAXDARK_OFFICIAL_WEIGHTS, else
    ../shared/official/weights.pth from the repository root; None when none is found (the
    caller times a freshly initialised network: speed does not depend on the weights)."""
    if arg:
        path = Path(arg)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such checkpoint")
        return path
    env = os.environ.get("JAXDARK_OFFICIAL_WEIGHTS")
    path = Path(env) if env else DEFAULT_WEIGHTS
    return path if path.exists() else None


# --------------------------------------------------------------------------- machine


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_line() -> str:
    """``"<CPU model>, N cores"`` for a table's header (cores this process may use)."""
    return f"{cpu_model()}, {available_cores()} cores"


# --------------------------------------------------------------------------- timing


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(np.median(np.asarray(values)))


def fmt_s(seconds: float) -> str:
    """Seconds, or milliseconds below one second."""
    return f"{seconds:.3f} s" if seconds >= 1.0 else f"{seconds * 1e3:.1f} ms"


def time_interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each function, calls interleaved round by round."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def time_steps(fn: Callable[[], object], steps: int) -> list[float]:
    """Seconds of each of ``steps`` calls of ``fn`` after one warm-up call (compilation)."""
    return time_interleaved({"fn": fn}, steps)["fn"]


# --------------------------------------------------------------------------- memory


def proc_status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``); None where absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_growth(fn: Callable[[], object]) -> float | None:
    """MiB the resident set grows above its level before ``fn()`` at its peak (Linux only).

    Resets the kernel's peak-RSS mark (``/proc/self/clear_refs``), runs ``fn`` once and
    reads the new peak. None where the kernel does not allow it.
    """
    before = proc_status_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    result = fn()
    peak = proc_status_kib("VmHWM")
    del result
    if before is None or peak is None:
        return None
    return max(0.0, (peak - before) / 1024.0)


def xla_buffers(compiled: Any) -> dict[str, int]:
    """XLA's buffer sizes (bytes) of one compiled executable: ``xla_argument_bytes``,
    ``xla_output_bytes``, ``xla_temp_bytes``, ... ({} where the backend does not say)."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - some backends raise instead of returning None
        return {}
    if m is None:
        return {}
    out = {}
    for k in ("argument", "output", "temp", "alias", "generated_code"):
        v = getattr(m, f"{k}_size_in_bytes", None)
        if v is not None:
            out[f"xla_{k}_bytes"] = int(v)
    return out


def xla_total_bytes(buffers: dict[str, int]) -> int | None:
    """Arguments + temporaries + output of `xla_buffers` (None where XLA did not say)."""
    if "xla_temp_bytes" not in buffers:
        return None
    return sum(buffers.get(f"xla_{k}_bytes", 0) for k in ("argument", "temp", "output"))


def gmacs(jitted_fn: Any, *args: Any) -> float:
    """GMACs (= flops / 2 / 1e9) of a jitted function from XLA's compiled cost analysis,
    always of the CPU executable: XLA's GPU cost analysis leaves out the convolutions it
    hands to cuDNN (on an H100 it gave 0.11 GMACs for the Sony frame instead of 59.6)."""
    import jax

    with jax.default_device(jax.local_devices(backend="cpu")[0]):  # abstract args: CPU
        analysis = jitted_fn.lower(*args).compile().cost_analysis()
    if isinstance(analysis, list | tuple):  # older jax returned one dict per device
        analysis = analysis[0]
    return float(analysis["flops"]) / 2e9


# --------------------------------------------------------------------------- output


def print_table(title: str, rows: Sequence[Row]) -> None:
    """One Markdown table of (quantity, value, notes) rows under ``title``."""
    print(title)
    print("| quantity | value | notes |")
    print("|---|---|---|")
    for q, v, n in rows:
        print(f"| {q} | {v} | {n} |")
    sys.stdout.flush()


# --------------------------------------------------------------------------- training


def training_batch(batch: int, crop: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fixed synthetic training batch: (mosaic (B, crop, crop, 1), target (B, crop, crop, 3)),
    smooth random targets and a dark mosaic derived from them."""
    rng = np.random.default_rng(seed)
    target = rng.random((batch, crop, crop, 3), dtype=np.float32)
    target = (target + np.roll(target, 1, 1) + np.roll(target, 1, 2)) / 3
    mosaic = target.mean(-1, keepdims=True) * rng.uniform(0.5, 1.5, (batch, 1, 1, 1))
    return mosaic.astype(np.float32), target.astype(np.float32)


def torch_train_step(
    x: np.ndarray, y: np.ndarray, steps: int, *, sizes: dict | None = None, autocast: bool = False
) -> dict[str, Any]:
    """Median step time of the PyTorch reference (on CUDA when torch sees it).

    The step: `convert_weights.reference_torch.ReferenceNet`, L1 + 0.2 * (1 - MS-SSIM)
    (`pytorch_msssim`; SSIM for crops under 161 px), backward, `torch.optim.Adam`.
    ``sizes``: ReferenceNet's features / growth / dense_layers (default: the published
    network); ``autocast``: the forward pass under ``torch.autocast`` in bfloat16 (the
    loss on its float32 output). Returns ``{"torch_error": why}`` without torch.
    """
    try:
        import pytorch_msssim
        import torch

        from convert_weights.reference_torch import ReferenceNet
    except ImportError as e:  # torch is a test extra
        return {"torch_error": f"PyTorch reference unavailable ({e})"}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    net = ReferenceNet(**(sizes or {})).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(device)
    ty = torch.from_numpy(y.transpose(0, 3, 1, 2).copy()).to(device)
    small = min(x.shape[1:3]) <= 160  # pytorch_msssim refuses 5 scales below 161 px

    def run():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            pred = net(tx)
        pred = pred.float()
        l1 = torch.mean(torch.abs(pred - ty))
        if small:
            loss = l1 + 0.2 * (1 - pytorch_msssim.ssim(pred, ty, data_range=1.0))
        else:
            loss = l1 + 0.2 * (1 - pytorch_msssim.ms_ssim(pred, ty, data_range=1.0))
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = time_steps(run, steps)
    return {
        "torch_step_s": statistics.median(times),
        "torch_step_times_s": times,
        "torch_peak_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else None,
        "torch_device": device,
        "torch_device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "torch_loss_note": "SSIM (crop too small for MS-SSIM)" if small else "",
    }

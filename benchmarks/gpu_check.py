"""One prepared accelerator check: every number issue 10 asks of a GPU, in one run.

    python -m benchmarks.gpu_check --out DIR [--weights PATH] [--smoke | --dry]
                                   [--budget-s S] [--sections a,b,...]

On a GPU machine run ``bash benchmarks/gpu_check.sh`` (installs carried wheels first).
Sections, in this order (each has its own time budget inside the run's budget, runs
inside try/except so that a failing one records its error and the others still run,
and DIR/gpu_check.json and DIR/gpu_check.md are rewritten after every measurement, so
a run that is killed keeps what it finished):

* ``env``: device name, driver and memory (nvidia-smi), JAX / jaxlib / flax / optax /
  torch versions, the devices JAX and torch see.
* ``parity``: the official weights, float32 with precision "highest" on both sides
  (JAX: ``precision="highest"`` / ``jax.default_matmul_precision``; torch: TF32 off)
  against our PyTorch reference on the same device: max |difference| (bound 1e-5).
* ``restore_4k``: 2144x3840 restore time (median of N calls, each waited for with
  ``block_until_ready``, after compile and two warm-up calls) and frames/s for
  fp32-highest, fp32 at XLA's default precision (TF32 on recent NVIDIA GPUs) and bf16
  (`fold_params(model, bfloat16)`: bfloat16 multiplies, float32 accumulation and
  activations), at batch 1 then larger batches; compile time; XLA's buffer sizes; the
  process's peak device memory so far; differences between the three outputs.
* ``train``: the training step at the recipe batch (8 x 512x512: forward, L1 + 0.2 *
  (1 - MS-SSIM), backward, Adam) in float32 and in bfloat16 compute
  (`make_train_step(..., compute_dtype=...)`) against our PyTorch reference step
  (`benchmarks.train_bench`: reference_torch + pytorch_msssim + Adam) on the same device
  in the same run, plus the reference under ``torch.autocast(bfloat16)``.
* ``memory``: peak device memory of one restore in a fresh process per configuration.
* ``sony``: the full Sony frame (2848x4256), the three configurations at batch 1.
* ``amplifier``: `estimate_amplification` on a 12.1 MP frame, against the NumPy loop.
* ``bf16_error``: bfloat16 vs float32 outputs on the demo scene and random inputs
  (`benchmarks.bf16_error`).

Memory, what the numbers mean: ``peak_bytes_in_use`` is XLA's allocator statistic
(``device.memory_stats()``): the most device memory the process's live buffers
(parameters, inputs, outputs, temporaries, convolution workspaces) held at one time.
It never goes down within a process, so ``restore_4k`` reports it "so far", and the
``memory`` section measures each configuration in a process of its own (started with
XLA_PYTHON_CLIENT_PREALLOCATE=false). It excludes the CUDA context and loaded kernels
(a few hundred MiB per process, outside the allocator). ``xla_*_bytes`` are XLA's
compile-time buffer assignment of one executable (arguments, output, temporaries).

Modes: the default is the full run for one H100 (about 7 minutes: ``--budget-s`` 420);
``--dry`` runs every code path of the full run at small sizes (for a CPU);
``--smoke`` runs every section at tiny sizes with a small network for training (CI).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_inference import (
    AMP_SIZE,
    SIZES,
    available_cores,
    cpu_model,
    find_weights,
    reference_amplification_numpy,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
CARRIED_WEIGHTS = REPO_ROOT / ".whl" / "weights.pth"  # where gpu_check.sh looks first
PARITY_TOL = 1e-5
JSON_NAME, MD_NAME = "gpu_check.json", "gpu_check.md"
SECTIONS = ("env", "parity", "restore_4k", "train", "memory", "sony", "amplifier", "bf16_error")
CONFIGS = ("fp32-highest", "fp32-default", "bf16")  # restore configurations (fast path)
NNX_BF16 = "nnx-bf16"  # the plain NNX model in bfloat16 compute: timed once, for comparison
SMALL_NET = {"features": 16, "growth": 8, "dense_layers": (2, 2)}


@dataclass(frozen=True)
class Profile:
    """Sizes, repeats and time budgets of one mode."""

    name: str
    restore: tuple[int, int]
    sony: tuple[int, int]
    batches: tuple[int, ...]
    repeats: int
    parity: tuple[tuple[int, int, int], ...]  # (B, H, W)
    demo: tuple[int, int]
    amp: tuple[int, int]
    train_batch: int
    train_crop: int
    train_steps: int
    train_net: dict | None  # None: the published network
    memory_probes: tuple[tuple[str, str, int], ...]  # (config, "restore" | "sony", batch)
    budget_s: float
    budgets: dict[str, float] = field(default_factory=dict)
    sony_configs: tuple[str, ...] = ("bf16", "fp32-default", "fp32-highest")
    restorer_dtypes: tuple[str, ...] = ("bfloat16", "float32")
    train_dtypes: tuple[str, ...] = ("float32", "bfloat16")


PROFILES = {
    "full": Profile(
        name="full",
        restore=SIZES["4k"],
        sony=SIZES["sony"],
        batches=(1, 2, 4, 8),
        repeats=20,
        parity=((2, 512, 512), (1, *SIZES["4k"])),
        demo=(512, 768),
        amp=AMP_SIZE,
        train_batch=8,
        train_crop=512,
        train_steps=10,
        train_net=None,
        memory_probes=(
            ("bf16", "restore", 1),
            ("fp32-default", "restore", 1),
            ("fp32-highest", "restore", 1),
            ("bf16", "sony", 1),
            ("fp32-default", "sony", 1),
        ),
        budget_s=420.0,
        budgets={
            "env": 20,
            "parity": 45,
            "restore_4k": 130,
            "train": 140,
            "memory": 60,
            "sony": 30,
            "amplifier": 15,
            "bf16_error": 20,
        },
    ),
    "dry": Profile(
        name="dry",
        restore=(256, 384),
        sony=(320, 480),
        batches=(1, 2, 4),
        repeats=3,
        parity=((2, 64, 96), (1, 256, 384)),
        demo=(128, 192),
        amp=(512, 768),
        train_batch=2,
        train_crop=64,
        train_steps=2,
        train_net=None,
        memory_probes=(("bf16", "restore", 1), ("fp32-default", "sony", 1)),
        budget_s=1800.0,
        budgets={
            "env": 60,
            "parity": 300,
            "restore_4k": 600,
            "train": 600,
            "memory": 300,
            "sony": 300,
            "amplifier": 60,
            "bf16_error": 300,
        },
    ),
    # Smoke: one shape everywhere, so later sections reuse earlier compilations.
    "smoke": Profile(
        name="smoke",
        restore=(64, 64),
        sony=(64, 64),
        batches=(1,),
        repeats=1,
        parity=((1, 64, 64),),
        demo=(64, 64),
        amp=(64, 96),
        train_batch=2,
        train_crop=32,
        train_steps=1,
        train_net=SMALL_NET,
        memory_probes=(("bf16", "restore", 1),),
        budget_s=900.0,
        budgets={
            "env": 60,
            "parity": 120,
            "restore_4k": 300,
            "train": 300,
            "memory": 120,
            "sony": 120,
            "amplifier": 60,
            "bf16_error": 120,
        },
        restorer_dtypes=("bfloat16",),
        train_dtypes=("bfloat16",),
    ),
}


# --------------------------------------------------------------------------- results


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return str(x)
    if x is None or isinstance(x, bool | int | float | str):
        return x
    return str(x)


class Check:
    """The run: results, deadlines, and the two output files (rewritten on every change)."""

    def __init__(self, out_dir: Path, profile: Profile, budget_s: float):
        self.out_dir = out_dir
        self.profile = profile
        self.t0 = time.monotonic()
        self.deadline = self.t0 + budget_s
        self.section_deadline = self.deadline
        self.lock = threading.Lock()
        self.results: dict[str, Any] = {
            "schema": 1,
            "mode": profile.name,
            "started_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "budget_s": budget_s,
            "finished": False,
            "wall_s": None,
            "current_section": None,
            "sections": {},
        }
        self._cache: dict[str, Any] = {}
        self.compile_s: dict[tuple, float] = {}  # (config, shape) -> compile + first call
        out_dir.mkdir(parents=True, exist_ok=True)
        self.tmpdir = Path(tempfile.mkdtemp(prefix="gpu_check_"))

    # ---- time

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.t0

    def left(self) -> float:
        """Seconds left for the running section (its budget, capped by the run's)."""
        return min(self.section_deadline, self.deadline) - time.monotonic()

    # ---- output

    def write(self) -> None:
        """Rewrite the JSON and Markdown files (atomically) from the current results."""
        with self.lock:
            self.results["wall_s"] = round(self.elapsed(), 2)
            for _ in range(3):  # a watchdog write may race a change in the main thread
                try:
                    data = json.dumps(_jsonable(self.results), indent=1)
                    md = render_markdown(self.results)
                    break
                except RuntimeError:
                    time.sleep(0.01)
            else:
                return
            for name, text in ((JSON_NAME, data), (MD_NAME, md)):
                tmp = self.out_dir / f".{name}.tmp"
                tmp.write_text(text)
                os.replace(tmp, self.out_dir / name)

    def run_section(self, name: str, fn: Callable[[Check, dict], None]) -> None:
        """Run one section with its budget; errors are recorded, never raised."""
        start = time.monotonic()
        budget = self.profile.budgets.get(name, 60.0)
        self.section_deadline = min(self.deadline, start + budget)
        entry: dict[str, Any] = {"status": "running", "budget_s": budget, "rows": [], "skipped": []}
        self.results["sections"][name] = entry
        self.results["current_section"] = name
        print(f"[{self.elapsed():6.1f}s] section {name} (budget {budget:.0f}s)", flush=True)
        if self.left() < 1.0:
            entry["status"] = "skipped"
            entry["error"] = "no time left in the run's budget"
        else:
            try:
                fn(self, entry)
                entry["status"] = "partial" if entry["skipped"] else "ok"
            except Exception as e:  # record and go on with the next section
                entry["status"] = "error"
                entry["error"] = _first_line(e)
                entry["traceback"] = traceback.format_exc()[-3000:]
                print(f"  section {name} failed: {entry['error']}", flush=True)
        entry["seconds"] = round(time.monotonic() - start, 2)
        self.results["current_section"] = None
        self.write()
        print(
            f"[{self.elapsed():6.1f}s] {name}: {entry['status']} in {entry['seconds']}s", flush=True
        )

    def row(self, entry: dict, quantity: str, value: Any, note: str = "") -> None:
        """Add one Markdown row to a section and rewrite the files."""
        entry["rows"].append([quantity, str(value), note])
        print(f"  {quantity}: {value}  {note}", flush=True)
        self.write()

    def skip(self, entry: dict, what: str, need_s: float) -> bool:
        """True (and recorded) if fewer than ``need_s`` seconds are left for ``what``."""
        if self.left() >= need_s:
            return False
        entry["skipped"].append(f"{what} (needs ~{need_s:.0f}s, {self.left():.0f}s left)")
        print(f"  skipped {what}: budget", flush=True)
        self.write()
        return True

    # ---- shared objects

    def weights(self) -> Path | None:
        """The official checkpoint found for this run, or None."""
        return self._cache.get("weights")

    def model(self):
        """The network: the official weights when found, else a fresh one (same speed)."""
        if "model" not in self._cache:
            from jaxdark import create_model, load_model

            w = self.weights()
            self._cache["model"] = load_model(w) if w else create_model(seed=0)
        return self._cache["model"]

    def folded(self, config: str):
        """Folded parameters for a restore configuration (float32 or bfloat16 kernels)."""
        key = "folded_bf16" if config == "bf16" else "folded_f32"
        if key not in self._cache:
            import jax.numpy as jnp

            from jaxdark.models.lamba2021_folded import fold_params

            self._cache[key] = fold_params(self.model(), jnp.bfloat16 if config == "bf16" else None)
        return self._cache[key]

    def nnx_model(self, dtype: str):
        """A copy of the network computing in ``dtype`` (`jaxdark.models.precision`)."""
        key = f"nnx_{dtype}"
        if key not in self._cache:
            from flax import nnx

            from jaxdark.models.precision import set_compute_dtype

            self._cache[key] = set_compute_dtype(nnx.clone(self.model()), dtype)
        return self._cache[key]

    def folded_file(self, config: str) -> Path:
        """`folded` as a pickle of host arrays, for the memory probes to load."""
        import jax

        path = self.tmpdir / f"folded_{'bf16' if config == 'bf16' else 'f32'}.pkl"
        if not path.exists():
            host = jax.tree_util.tree_map(np.asarray, self.folded(config))
            path.write_bytes(pickle.dumps(host))
        return path


def render_markdown(results: dict) -> str:
    """The results as Markdown: one table per section."""
    env = results["sections"].get("env", {})
    device = env.get("device", "?")
    lines = [
        f"# jaxdark GPU check ({results['mode']})",
        "",
        f"Started {results['started_utc']}, {results['wall_s']} s so far"
        + (", finished." if results["finished"] else " (not finished)."),
        f"Device: {device}.",
        "",
    ]
    for name, entry in results["sections"].items():
        lines.append(
            f"## {name}: {entry['status']}"
            + (f" ({entry['seconds']} s)" if "seconds" in entry else "")
        )
        lines.append("")
        if entry.get("error"):
            lines += [f"Error: `{entry['error']}`", ""]
        for s in entry.get("skipped", []):
            lines.append(f"- skipped: {s}")
        if entry.get("skipped"):
            lines.append("")
        if entry["rows"]:
            lines += ["| quantity | value | notes |", "|---|---|---|"]
            lines += [f"| {q} | {v} | {n} |" for q, v, n in entry["rows"]]
            lines.append("")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- helpers


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    names = (
        "jax",
        "jaxlib",
        "jax-cuda13-plugin",
        "jax-cuda12-plugin",
        "libtpu",
        "flax",
        "optax",
        "orbax-checkpoint",
        "numpy",
        "ml-dtypes",
        "torch",
        "pytorch-msssim",
        "rawpy",
        "opencv-python-headless",
        "scikit-image",
    )
    out: dict[str, str | None] = {}
    for n in names:
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
        return {"error": _first_line(e)}
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout).strip().splitlines()[:1]}
    gpus = [
        dict(zip(fields.split(","), (v.strip() for v in line.split(",")), strict=False))
        for line in p.stdout.strip().splitlines()
    ]
    return {"gpus": gpus}


def device_memory() -> dict[str, int] | None:
    """XLA allocator statistics of the first device (None where the backend has none)."""
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # some backends raise instead of returning None
        return None
    if not stats:
        return None
    return {k: int(v) for k, v in stats.items() if isinstance(v, int | float)}


def mib(n: float | None) -> str:
    """Bytes as MiB text ("n/a" for None)."""
    return "n/a" if n is None else f"{n / 2**20:.0f} MiB"


def xla_buffers(compiled) -> dict[str, int]:
    """XLA's buffer sizes for one compiled executable (bytes)."""
    try:
        m = compiled.memory_analysis()
    except Exception:
        return {}
    if m is None:
        return {}
    out = {}
    for k in ("argument", "output", "temp", "alias", "generated_code"):
        v = getattr(m, f"{k}_size_in_bytes", None)
        if v is not None:
            out[f"xla_{k}_bytes"] = int(v)
    return out


@functools.cache
def model_runner():
    """``jax.jit(lambda model, x: model(x))``, made once (jax is imported late)."""
    import jax

    return jax.jit(lambda model, x: model(x))


def median_s(times: list[float]) -> float:
    """Median of a non-empty list of seconds."""
    return float(np.median(np.asarray(times)))


def random_frames(batch: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(B, H, W, 1) uniform [0, 1) mosaics (speed does not depend on the content)."""
    return np.random.default_rng(seed).random((batch, h, w, 1), dtype=np.float32)


def measure_restore(check: Check, config: str, x, repeats: int, keep_output: bool = False):
    """Compile and time the fast path on a device-resident batch ``x`` for ``config``."""

    from jaxdark.models.lamba2021_folded import apply_folded

    if config == NNX_BF16:  # the plain NNX model, bfloat16 activations between layers
        model, fn, kwargs = check.nnx_model("bfloat16"), model_runner(), {}
    else:
        folded, fn = check.folded(config), apply_folded
        kwargs = {"precision": "highest" if config == "fp32-highest" else None}

    def call():
        return fn(model if config == NNX_BF16 else folded, x, **kwargs)

    t = time.perf_counter()
    call().block_until_ready()  # compiles, unless an earlier section compiled it
    key = (config, tuple(x.shape))
    compile_s = check.compile_s.setdefault(key, time.perf_counter() - t)
    # the jit cache makes this lowering free; it gives XLA's buffer sizes
    compiled = fn.lower(model if config == NNX_BF16 else folded, x, **kwargs).compile()
    for _ in range(2):  # warm-up
        call().block_until_ready()
    lat = []
    for _ in range(repeats):
        t = time.perf_counter()
        y = call()
        y.block_until_ready()
        lat.append(time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(repeats):  # back-to-back calls, one wait: the pipelined rate
        y = call()
    y.block_until_ready()
    pipelined_s = (time.perf_counter() - t) / repeats
    batch = int(x.shape[0])
    med = median_s(lat)
    result = {
        "config": config,
        "batch": batch,
        "shape": list(x.shape),
        "compile_s": compile_s,
        "latency_median_s": med,
        "latency_min_s": min(lat),
        "latency_s": lat,
        "fps": batch / med,
        "fps_pipelined": batch / pipelined_s,
        "repeats": repeats,
        **xla_buffers(compiled),
    }
    mem = device_memory()
    result["process_peak_bytes_so_far"] = None if mem is None else mem.get("peak_bytes_in_use")
    return (result, y) if keep_output else (result, None)


def restore_row(check: Check, entry: dict, label: str, r: dict) -> None:
    """One Markdown row for a `measure_restore` result."""
    xla = r.get("xla_temp_bytes")
    total = (
        None if xla is None else xla + r.get("xla_argument_bytes", 0) + r.get("xla_output_bytes", 0)
    )
    note = (
        f"median of {r['repeats']} ({r['latency_median_s'] * 1e3:.2f} ms/call, min "
        f"{r['latency_min_s'] * 1e3:.2f}); pipelined {r['fps_pipelined']:.1f} fps; "
        f"compile + first call {r['compile_s']:.1f} s; "
        f"XLA buffers {mib(total)} (temps {mib(xla)}); "
        f"process peak so far {mib(r['process_peak_bytes_so_far'])}"
    )
    check.row(entry, f"{label}, {r['config']}, batch {r['batch']}", f"{r['fps']:.1f} fps", note)


@contextlib.contextmanager
def torch_true_fp32(torch):
    """TF32 off for cuDNN convolutions and CUDA matmuls while inside; restored after."""
    cudnn_conv = getattr(torch.backends.cudnn, "conv", None)
    matmul = torch.backends.cuda.matmul
    if cudnn_conv is not None and hasattr(cudnn_conv, "fp32_precision"):  # torch >= 2.9
        saved = (cudnn_conv.fp32_precision, matmul.fp32_precision)
        cudnn_conv.fp32_precision, matmul.fp32_precision = "ieee", "ieee"
        try:
            yield "torch.backends.cudnn.conv / cuda.matmul fp32_precision = 'ieee'"
        finally:
            cudnn_conv.fp32_precision, matmul.fp32_precision = saved
    else:
        saved = (torch.backends.cudnn.allow_tf32, matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32, matmul.allow_tf32 = False, False
        try:
            yield "torch.backends.cudnn.allow_tf32 = cuda.matmul.allow_tf32 = False"
        finally:
            torch.backends.cudnn.allow_tf32, matmul.allow_tf32 = saved


def import_torch():
    """(torch, device) or (None, reason)."""
    try:
        import torch
    except ImportError as e:
        return None, f"torch not importable ({e})"
    return torch, ("cuda" if torch.cuda.is_available() else "cpu")


# --------------------------------------------------------------------------- sections


def section_env(check: Check, entry: dict) -> None:
    """Machine, device, driver and versions."""
    import jax

    devs = jax.devices()
    entry["backend"] = jax.default_backend()
    entry["devices"] = [str(d) for d in devs]
    entry["device_kind"] = devs[0].device_kind
    entry["versions"] = _versions()
    entry["python"] = sys.version.split()[0]
    entry["host"] = f"{cpu_model()}, {available_cores()} cores, {platform.machine()}"
    entry["nvidia_smi"] = nvidia_smi()
    entry["env"] = {
        k: os.environ.get(k)
        for k in (
            "XLA_PYTHON_CLIENT_PREALLOCATE",
            "XLA_PYTHON_CLIENT_MEM_FRACTION",
            "XLA_FLAGS",
            "JAX_PLATFORMS",
            "CUDA_VISIBLE_DEVICES",
        )
    }
    entry["weights"] = str(check.weights()) if check.weights() else None
    gpus = entry["nvidia_smi"].get("gpus") or []
    smi = "; ".join(
        f"{g.get('name')} driver {g.get('driver_version')}, "
        f"{g.get('memory.total')}, cc {g.get('compute_cap')}"
        for g in gpus
    )
    entry["device"] = f"{devs[0].device_kind} ({entry['backend']})" + (f"; {smi}" if smi else "")
    v = entry["versions"]
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
        entry["torch"] = {
            "device": dev,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if dev == "cuda" else None,
            "device_name": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
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
    except Exception as e:
        entry["jax_environment"] = _first_line(e)


def section_parity(check: Check, entry: dict) -> None:
    """Official weights, float32 'highest' on both sides, against the PyTorch reference."""
    import jax
    import jax.numpy as jnp

    from jaxdark.models.lamba2021_folded import apply_folded
    from jaxdark.weights.convert import params_to_state_dict

    if check.weights() is None:
        raise FileNotFoundError("no official weights found (pass --weights PATH)")
    model = check.model()
    folded = check.folded("fp32-highest")
    run_model = model_runner()
    torch, tdev = import_torch()
    net = None
    if torch is not None:
        from convert_weights.reference_torch import reference_from_state_dict

        state = {k: np.array(v) for k, v in params_to_state_dict(model).items()}
        net = reference_from_state_dict(state).to(tdev)
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
            y_model = np.asarray(run_model(model, xj))
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


def section_restore(check: Check, entry: dict, size_key: str = "restore") -> None:
    """Frames/s per configuration: batch 1 first, then larger batches while time lasts."""
    import jax
    import jax.numpy as jnp

    from benchmarks.bf16_error import compare

    h, w = getattr(check.profile, size_key)
    label = f"{h}x{w}"
    check.model()
    entry["size"] = [h, w]
    entry["results"] = []
    outputs = {}
    x1 = jax.device_put(jnp.asarray(random_frames(1, h, w)))
    per_call = 15.0 if h * w >= 2**22 else 5.0  # rough compile + timing cost
    configs = CONFIGS if size_key == "restore" else check.profile.sony_configs
    for config in configs:
        if check.skip(entry, f"{config} batch 1", per_call):
            continue
        r, y = measure_restore(check, config, x1, check.profile.repeats, keep_output=True)
        outputs[config] = np.asarray(y)
        entry["results"].append(r)
        restore_row(check, entry, label, r)
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
    del outputs
    if size_key != "restore":
        return
    # larger batches: bf16 and default precision first (the frames/s targets)
    for configs in (("bf16", "fp32-default"), ("fp32-highest",)):
        for b in check.profile.batches[1:]:
            xb = jax.device_put(jnp.asarray(random_frames(b, h, w)))
            for config in configs:
                if check.skip(entry, f"{config} batch {b}", per_call * (1 + b / 4)):
                    continue
                r, _ = measure_restore(check, config, xb, check.profile.repeats)
                entry["results"].append(r)
                restore_row(check, entry, label, r)
            del xb
    best = {}
    for r in entry["results"]:
        if r["config"] not in best or r["fps"] > best[r["config"]]["fps"]:
            best[r["config"]] = r
    entry["best"] = {c: {"batch": r["batch"], "fps": r["fps"]} for c, r in best.items()}
    if not check.skip(entry, f"{NNX_BF16} batch 1", per_call):
        r, _ = measure_restore(check, NNX_BF16, x1, check.profile.repeats)
        entry["nnx_bf16"] = r
        restore_row(check, entry, f"{label} (plain NNX model, bf16 activations)", r)
    for c, r in best.items():
        check.row(
            entry,
            f"best {label} rate, {c}",
            f"{r['fps']:.1f} fps at batch {r['batch']}",
            "median-latency rate",
        )
    if not check.skip(entry, "end-to-end Restorer.restore (host in, host out)", per_call * 2):
        restorer_rows(check, entry, h, w)


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
        entry["restorer"][dtype] = {"first_call_s": first, "median_s": median_s(times)}
        check.row(
            entry,
            f"Restorer.restore {h}x{w}, dtype {dtype}",
            f"{median_s(times) * 1e3:.1f} ms/frame",
            f"host mosaic in, host image out, amplifier estimated (m=5); median of "
            f"{len(times)}; first call {first:.1f} s (compiles)",
        )


def section_sony(check: Check, entry: dict) -> None:
    """The full Sony frame, the three configurations at batch 1."""
    probed = [c for c, k, b in check.profile.memory_probes if k == "sony" and b == 1]
    if probed and "memory" in check.results["sections"]:
        check.row(
            entry,
            "compile times below",
            f"may be cache hits for {', '.join(probed)}",
            "the memory section's probes compiled these first (JAX persistent cache)",
        )
    section_restore(check, entry, size_key="sony")


def section_train(check: Check, entry: dict) -> None:
    """jaxdark's step in float32 and bfloat16 against the PyTorch reference step."""
    import jax
    from flax import nnx

    from benchmarks.train_bench import _batch, _time, _torch_step
    from jaxdark.models.lamba2021 import DarkRestorationNet
    from jaxdark.training.optim import make_optimizer
    from jaxdark.training.state import setup_training
    from jaxdark.training.step import make_data_mesh, make_global_batch

    p = check.profile
    b, crop, steps = p.train_batch, p.train_crop, p.train_steps
    sizes = dict(p.train_net) if p.train_net else None
    what = f"batch {b} x {crop}x{crop}"
    net_note = "published network" if sizes is None else f"small network {sizes}"
    entry.update(batch=b, crop=crop, steps=steps, network=net_note)
    x, y = _batch(b, crop)
    torch, tdev = import_torch()
    runs: dict[str, dict] = {}
    entry["runs"] = runs

    backend = jax.default_backend()
    if torch is not None and tdev == "cpu" and backend != "cpu":
        # a CPU step of the reference is no yardstick for a GPU step: skip, say why
        torch, tdev = None, f"torch sees no CUDA device (JAX runs on {backend})"

    def torch_run(key: str, autocast: bool) -> None:
        if torch is None:
            entry["skipped"].append(f"{key}: {tdev}")
            return
        torch.backends.cudnn.benchmark = True
        r = _torch_step(x, y, steps, sizes=sizes, autocast=autocast)
        if "torch_error" in r:
            raise RuntimeError(r["torch_error"])
        r["cudnn_benchmark"] = True
        runs[key] = {"step_s": r["torch_step_s"], **r}
        check.row(
            entry,
            f"{key} step, {what}",
            f"{r['torch_step_s'] * 1e3:.1f} ms",
            f"{b / r['torch_step_s']:.1f} examples/s; median of {steps} after 1 warm-up; "
            f"{r['torch_device_name']}; peak {mib(r['torch_peak_bytes'])}; cudnn.benchmark, "
            f"TF32 settings left at torch's defaults; {r['torch_loss_note']}",
        )

    def jax_run(dtype: str) -> None:
        tx, _ = make_optimizer()
        mesh = make_data_mesh(1)
        model = DarkRestorationNet(**(sizes or {}), rngs=nnx.Rngs(0))
        setup = setup_training(model, tx, mesh, compute_dtype=dtype)
        step, state = setup.train_step, setup.state
        batch = make_global_batch({"input": x, "target": y}, mesh)
        t = time.perf_counter()
        compiled = step.lower(state, batch).compile()
        compile_s = time.perf_counter() - t
        box = {"state": state}
        losses = []

        def run():
            box["state"], metrics = compiled(box["state"], batch)
            losses.append(float(metrics["loss"]))  # waits for the step

        times = _time(run, steps)
        mem = device_memory()
        key = f"jaxdark {dtype}"
        runs[key] = {
            "step_s": median_s(times),
            "step_times_s": times,
            "compile_s": compile_s,
            "losses": losses,
            **xla_buffers(compiled),
            "process_peak_bytes_so_far": None if mem is None else mem.get("peak_bytes_in_use"),
        }
        s = runs[key]["step_s"]
        check.row(
            entry,
            f"{key} step, {what}",
            f"{s * 1e3:.1f} ms",
            f"{b / s:.1f} examples/s; median of {steps} after 1 warm-up; compile "
            f"{compile_s:.1f} s; XLA temps {mib(runs[key].get('xla_temp_bytes'))}; "
            f"{jax.devices()[0].device_kind}; {net_note}",
        )
        box.clear()

    per = 40.0 if p.name == "full" else 20.0
    if not check.skip(entry, "PyTorch reference fp32", per / 2):
        torch_run("PyTorch reference fp32", autocast=False)
    for dtype in p.train_dtypes:
        if not check.skip(entry, f"jaxdark {dtype}", per):
            jax_run(dtype)
    if not check.skip(entry, "PyTorch reference bf16 autocast", per / 2):
        torch_run("PyTorch reference bf16 autocast", autocast=True)
    ref = runs.get("PyTorch reference fp32")
    if ref:
        entry["speedup_vs_torch_fp32"] = {}
        for key in ("jaxdark float32", "jaxdark bfloat16", "PyTorch reference bf16 autocast"):
            if key in runs:
                ratio = ref["step_s"] / runs[key]["step_s"]
                entry["speedup_vs_torch_fp32"][key] = ratio
                check.row(
                    entry,
                    f"{key} / PyTorch reference fp32",
                    f"{ratio:.2f}x step rate",
                    "target >= 2x" if key.startswith("jaxdark") else "",
                )


def section_memory(check: Check, entry: dict) -> None:
    """Peak device memory of one restore, each configuration in a fresh process."""
    entry["probes"] = []
    for config, size_key, b in check.profile.memory_probes:
        h, w = getattr(check.profile, size_key)
        if check.skip(entry, f"{config} {b}x{h}x{w}", 15.0):
            continue
        env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        )
        env["JAX_COMPILATION_CACHE_DIR"] = str(check.cache_dir)  # reuse this run's compilations
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.gpu_check",
            "--memory-probe",
            config,
            "--probe-shape",
            f"{b}x{h}x{w}",
            "--probe-params",
            str(check.folded_file(config)),
        ]
        t = time.perf_counter()
        try:
            p = subprocess.run(
                cmd,
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=max(5.0, check.left()),
            )
        except subprocess.TimeoutExpired:
            entry["skipped"].append(f"{config} {b}x{h}x{w}: probe timed out")
            continue
        if p.returncode != 0:
            tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"memory probe {config} {b}x{h}x{w} failed: {tail[0]}")
        r = json.loads(p.stdout.strip().splitlines()[-1])
        r.update(config=config, shape=[b, h, w], wall_s=time.perf_counter() - t)
        entry["probes"].append(r)
        peak = r.get("peak_bytes_in_use")
        xla = sum(r.get(f"xla_{k}_bytes", 0) for k in ("argument", "output", "temp"))
        check.row(
            entry,
            f"peak device memory, one {b}x{h}x{w} restore, {config}",
            mib(peak),
            f"fresh process; weights {mib(r.get('bytes_before_input'))} before the "
            f"input; XLA buffers {mib(xla)}; nvidia-smi for the process "
            f"{r.get('nvidia_smi_process_mib', 'n/a')} MiB (incl. CUDA context); "
            f"target for 4K: <= 1 GB",
        )


def memory_probe(config: str, b: int, h: int, w: int, params: Path) -> dict:
    """Run in a fresh process: one restore and its allocator peak (printed as JSON)."""
    import jax

    from jaxdark.models.lamba2021_folded import apply_folded

    enable_compilation_cache(os.environ.get("JAX_COMPILATION_CACHE_DIR"))
    folded = jax.device_put(pickle.loads(params.read_bytes()))  # written by `folded_file`
    jax.block_until_ready(folded)
    before = device_memory() or {}
    x = jax.device_put(random_frames(b, h, w))
    precision = "highest" if config == "fp32-highest" else None
    t = time.perf_counter()
    compiled = apply_folded.lower(folded, x, precision=precision).compile()
    compile_s = time.perf_counter() - t
    y = compiled(folded, x)
    y.block_until_ready()
    after = device_memory() or {}
    out = {
        "compile_s": compile_s,
        "bytes_before_input": before.get("bytes_in_use"),
        "peak_bytes_in_use": after.get("peak_bytes_in_use"),
        "bytes_in_use_after": after.get("bytes_in_use"),
        "bytes_limit": after.get("bytes_limit"),
        **xla_buffers(compiled),
    }
    try:  # the process's total as nvidia-smi sees it (includes the CUDA context)
        q = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        for line in q.stdout.splitlines():
            pid, used = (v.strip() for v in line.split(",")[:2])
            if pid == str(os.getpid()):
                out["nvidia_smi_process_mib"] = int(used)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        pass
    return out


def section_amplifier(check: Check, entry: dict) -> None:
    """`estimate_amplification` on a 12 MP frame on the device, against the NumPy loop."""
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
    entry.update(shape=[h, w], first_call_s=first, median_s=median_s(times), factor=float(a))
    check.row(
        entry,
        f"amplifier, {h}x{w} ({h * w / 1e6:.1f} MP)",
        f"{median_s(times) * 1e3:.2f} ms",
        f"median of {len(times)}, device-resident frame; first call {first:.2f} s "
        f"(compiles); {jax.devices()[0].device_kind}",
    )
    if not check.skip(entry, "NumPy reference loop", 10.0):
        t = time.perf_counter()
        ref = reference_amplification_numpy(x, 5.0)
        entry["numpy_s"] = time.perf_counter() - t
        entry["rel_diff"] = abs(float(a) - ref) / ref
        check.row(
            entry,
            "amplifier, NumPy reference loop (host)",
            f"{entry['numpy_s']:.2f} s",
            f"factors {float(a):.5f} vs {ref:.5f}, rel. diff {entry['rel_diff']:.1e}",
        )


def section_bf16_error(check: Check, entry: dict) -> None:
    """bfloat16 vs float32 (highest) outputs on the demo scene and random inputs."""
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


def enable_compilation_cache(path: str | os.PathLike | None) -> None:
    """JAX's persistent compilation cache in ``path`` (shared with the memory probes)."""
    if not path:
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


SECTION_FNS: dict[str, Callable[[Check, dict], None]] = {
    "env": section_env,
    "parity": section_parity,
    "restore_4k": section_restore,
    "train": section_train,
    "memory": section_memory,
    "sony": section_sony,
    "amplifier": section_amplifier,
    "bf16_error": section_bf16_error,
}


# --------------------------------------------------------------------------- main


def _watchdog(check: Check, grace_s: float) -> threading.Timer:
    """Stop the process (status 3) if it runs ``grace_s`` past the budget."""

    def fire():
        check.results["watchdog"] = (
            f"stopped after {check.elapsed():.0f} s during section "
            f"{check.results.get('current_section')!r} (budget {check.results['budget_s']} s)"
        )
        check.write()
        print(check.results["watchdog"], flush=True)
        os._exit(3)

    timer = threading.Timer(max(1.0, check.deadline - time.monotonic() + grace_s), fire)
    timer.daemon = True
    timer.start()
    return timer


def main(argv: list[str] | None = None) -> int:
    """Parse flags and run the sections; 0 when every section ran (errors are in the files)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--weights", default=None, help="official .pth (default: found)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="tiny sizes (CI, CPU)")
    mode.add_argument("--dry", action="store_true", help="every full-run path, small sizes")
    parser.add_argument("--budget-s", type=float, default=None, help="time budget of the run")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset")
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--probe-shape", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--probe-params", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # before jax starts

    if args.memory_probe:
        b, h, w = (int(v) for v in args.probe_shape.split("x"))
        print(json.dumps(memory_probe(args.memory_probe, b, h, w, Path(args.probe_params))))
        return 0
    if not args.out:
        parser.error("--out is required")
    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTION_FNS]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    profile = PROFILES["smoke" if args.smoke else "dry" if args.dry else "full"]
    check = Check(Path(args.out), profile, args.budget_s or profile.budget_s)
    try:
        check._cache["weights"] = (
            find_weights(args.weights)
            if args.weights or not CARRIED_WEIGHTS.exists()
            else CARRIED_WEIGHTS
        )
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    check.cache_dir = check.tmpdir / "xla_cache"
    enable_compilation_cache(check.cache_dir)
    check.write()
    timer = _watchdog(check, grace_s=45.0 if profile.name == "full" else 300.0)
    try:
        for name in names:
            check.run_section(name, SECTION_FNS[name])
    finally:
        timer.cancel()
        shutil.rmtree(check.tmpdir, ignore_errors=True)
    check.results["finished"] = True
    check.write()
    statuses = {n: e["status"] for n, e in check.results["sections"].items()}
    print(f"done in {check.elapsed():.0f} s: {statuses}")
    print(f"wrote {check.out_dir / JSON_NAME} and {check.out_dir / MD_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The run's state: modes (`Profile`), results, deadlines, rows, the output files, and the
objects sections share (the network and its folded parameters)."""

from __future__ import annotations

import datetime
import json
import os
import pickle
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import AMP_SIZE, SIZES

JSON_NAME, MD_NAME = "gpu_check.json", "gpu_check.md"
SMALL_NET = {"features": 16, "growth": 8, "dense_layers": (2, 2)}


@dataclass(frozen=True)
class Profile:
    """Sizes, repeats and the run's time budget of one mode (sections' budgets: `Section`)."""

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
    sony_configs: tuple[str, ...] = ("bf16", "fp32-default", "fp32-highest")
    restorer_dtypes: tuple[str, ...] = ("bfloat16", "float32")
    train_dtypes: tuple[str, ...] = ("float32", "bfloat16")


PROFILES = {
    "full": Profile(
        name="full", restore=SIZES["4k"], sony=SIZES["sony"], batches=(1, 2, 4, 8),
        repeats=20, parity=((2, 512, 512), (1, *SIZES["4k"])), demo=(512, 768), amp=AMP_SIZE,
        train_batch=8, train_crop=512, train_steps=10, train_net=None,
        memory_probes=(
            ("bf16", "sony", 1), ("fp32-default", "sony", 1), ("fp32-highest", "sony", 1),
            ("bf16", "restore", 1),
        ),
        budget_s=420.0,
    ),
    "dry": Profile(
        name="dry", restore=(256, 384), sony=(320, 480), batches=(1, 2, 4), repeats=3,
        parity=((2, 64, 96), (1, 256, 384)), demo=(128, 192), amp=(512, 768),
        train_batch=2, train_crop=64, train_steps=2, train_net=None,
        memory_probes=(("bf16", "restore", 1), ("fp32-default", "sony", 1)),
        budget_s=1800.0,
    ),
    # Smoke: one shape everywhere, so later sections reuse earlier compilations.
    "smoke": Profile(
        name="smoke", restore=(64, 64), sony=(64, 64), batches=(1,), repeats=1,
        parity=((1, 64, 64),), demo=(64, 64), amp=(64, 96),
        train_batch=2, train_crop=32, train_steps=1, train_net=SMALL_NET,
        memory_probes=(("bf16", "restore", 1),), budget_s=900.0,
        restorer_dtypes=("bfloat16",), train_dtypes=("bfloat16",),
    ),
}  # fmt: skip


def first_line(e: BaseException) -> str:
    """``"Type: first line of the message"`` of an exception."""
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
        self.cache_dir = self.tmpdir / "xla_cache"  # JAX's compilation cache for this run

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

    def run_section(
        self, name: str, fn: Callable[[Check, dict], None], budget_s: float = 60.0
    ) -> dict[str, Any]:
        """Run one section with its budget; errors are recorded, never raised. Its entry."""
        start = time.monotonic()
        self.section_deadline = min(self.deadline, start + budget_s)
        entry: dict[str, Any] = {
            "status": "running",
            "budget_s": budget_s,
            "rows": [],
            "skipped": [],
        }
        self.results["sections"][name] = entry
        self.results["current_section"] = name
        print(f"[{self.elapsed():6.1f}s] section {name} (budget {budget_s:.0f}s)", flush=True)
        if self.left() < 1.0:
            entry["status"] = "skipped"
            entry["error"] = "no time left in the run's budget"
        else:
            try:
                fn(self, entry)
                entry["status"] = "partial" if entry["skipped"] else "ok"
            except Exception as e:  # record and go on with the next section
                entry["status"] = "error"
                entry["error"] = first_line(e)
                entry["traceback"] = traceback.format_exc()[-3000:]
                print(f"  section {name} failed: {entry['error']}", flush=True)
        entry["seconds"] = round(time.monotonic() - start, 2)
        self.results["current_section"] = None
        self.write()
        print(
            f"[{self.elapsed():6.1f}s] {name}: {entry['status']} in {entry['seconds']}s", flush=True
        )
        return entry

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

    def set_weights(self, path: Path | None) -> None:
        """The checkpoint this run loads (None: a freshly initialised network)."""
        self._cache["weights"] = path

    def model(self):
        """The network: the official weights when found, else a fresh one (same speed)."""
        if "model" not in self._cache:
            from jaxdark import create_model, load_model

            w = self.weights()
            self._cache["model"] = load_model(w) if w else create_model(seed=0)
        return self._cache["model"]

    def state_dict(self) -> dict[str, np.ndarray]:
        """The network's parameters as the PyTorch reference's state dict (writable arrays)."""
        if "state_dict" not in self._cache:
            from jaxdark.weights.convert import params_to_state_dict

            sd = params_to_state_dict(self.model())
            self._cache["state_dict"] = {k: np.array(v) for k, v in sd.items()}
        return self._cache["state_dict"]

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

"""What the multi-device subprocess workers share (tests/workers/*_worker.py).

A worker is run as ``python -m tests.workers.NAME DEVICES OUT.npz [ARG ...]`` (see
`tests.support.workers.run_workers`). It calls `start` before it imports jax: `start`
reads the arguments and sets the simulated CPU device count, which XLA reads once, when
JAX starts. The rest (`flat`, `make_batch`, `finish`) imports jax lazily.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class WorkerArgs:
    """A worker's command line: device count, output file, the remaining arguments."""

    devices: int
    out: Path
    rest: tuple[str, ...]


def start(usage: str, argv: list[str] | None = None) -> WorkerArgs:
    """Parse ``DEVICES OUT.npz [ARG ...]`` and set the CPU device count (before jax starts)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or not argv[0].isdigit():
        raise SystemExit(f"usage: {usage.strip().splitlines()[0]}")
    if "jax" in sys.modules:
        raise RuntimeError("start() must run before jax is imported")
    devices = int(argv[0])
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    return WorkerArgs(devices, Path(argv[1]), tuple(argv[2:]))


def check_devices(args: WorkerArgs) -> None:
    """Fail unless JAX sees the device count the worker was started with."""
    import jax

    assert jax.device_count() == args.devices, jax.devices()


def make_batch(rng: np.random.Generator, batch: int, crop: int) -> dict[str, np.ndarray]:
    """A fixed training batch: smooth random targets and a dark mosaic derived from them."""
    target = rng.random((batch, crop, crop, 3), dtype=np.float32)
    # blur a little so MS-SSIM sees structure
    target = (target + np.roll(target, 1, 1) + np.roll(target, 1, 2)) / 3
    mosaic = target.mean(-1, keepdims=True) * rng.uniform(0.5, 1.5, (batch, 1, 1, 1))
    return {"input": mosaic.astype(np.float32), "target": target.astype(np.float32)}


def flat(tree: Any) -> np.ndarray:
    """All leaves of a (possibly sharded) pytree on the host, flattened into one vector."""
    import jax

    from jaxdark.training.step import to_host

    return np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(to_host(tree))])


def finish(args: WorkerArgs, result: dict[str, np.ndarray]) -> None:
    """Write the worker's result to its OUT.npz."""
    np.savez(args.out, **result)

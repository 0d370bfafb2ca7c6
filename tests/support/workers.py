"""Run a multi-device worker (tests/workers/) once per device count, in parallel processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from tests.support.paths import REPO_ROOT


def run_workers(
    name: str,
    device_counts: Iterable[int],
    out_dir: Path,
    *extra: str,
    timeout: float = 900,
) -> dict[int, dict[str, np.ndarray]]:
    """Run ``python -m tests.workers.NAME N OUT_N.npz *extra`` for each N at once.

    Returns N -> the arrays the worker saved; a worker that fails fails the calling test
    with the tail of its output.
    """
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), JAX_PLATFORMS="cpu")
    out = {n: Path(out_dir) / f"{name}_d{n}.npz" for n in device_counts}
    procs = {
        n: subprocess.Popen(
            [sys.executable, "-m", f"tests.workers.{name}", str(n), str(path), *extra],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n, path in out.items()
    }
    for n, p in procs.items():
        log, _ = p.communicate(timeout=timeout)
        assert p.returncode == 0, f"{name} with {n} devices failed:\n{log[-3000:]}"
    return {n: dict(np.load(path)) for n, path in out.items()}

"""The training-step benchmark runs end to end at a smoke size and prints its table."""

import subprocess
import sys

import pytest

from tests.support.paths import REPO_ROOT


@pytest.mark.slow
def test_train_bench_smoke_prints_the_table():
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.train_bench", "--smoke", "--devices", "1,2"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert any(line.startswith("| jaxdark (jit + shard_map) | 1 ") for line in lines), r.stdout
    assert any(line.startswith("| jaxdark (jit + shard_map) | 2 ") for line in lines), r.stdout
    assert any(line.startswith("| PyTorch reference") for line in lines), r.stdout
    assert "the step rate" in r.stdout

"""The pipeline benchmark runs end to end at its smoke size, prints and records its table;
its GPU-check section says "not measured yet" without a GPU."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.slow
def test_bench_pipeline_smoke(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_pipeline", "--smoke", "--results-dir",
         str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    for row in (
        "| examples/s per host core | SID frames (.npy, mmap) |",
        "| examples/s per host core | synthetic, device feed (crops+seeds) |",
        "| step rate | batches in memory |",
        "| step rate | fed by SID frames (0 workers) |",
        "| step rate | with on-device synthesis (photos in memory) |",
        "| host RSS peak | this process |",
    ):
        assert row in r.stdout, r.stdout
    record = json.loads((tmp_path / "bench_pipeline_smoke.json").read_text())
    assert record["columns"][0] == "measure" and len(record["rows"]) >= 12
    rates = [row[2] for row in record["rows"] if row[0] == "examples/s per host core"]
    assert len(rates) == 4 and all(v > 0 for v in rates)


def test_gpu_section_without_a_gpu():
    from benchmarks.bench_pipeline import NOT_MEASURED, gpu_rows, gpu_section

    rows = [
        ["examples/s per host core", "SID frames", 200.0, "ex/s", ""],
        ["step rate", "batches in memory", 1000.0, "ex/s", ""],
        ["step rate", "fed by SID frames (8 workers)", 950.0, "ex/s", "0.95x"],
    ]
    cpu = gpu_section(rows, False, crop=512, batch=8)
    assert [r[2] for r in cpu] == [NOT_MEASURED] * 2 and "CPU smoke: 950.0" in cpu[1][4]
    gpu = gpu_section(rows, True, crop=512, batch=8)
    assert gpu[-1][0] == "projected 1M-step recipe"
    assert gpu[-1][2] == pytest.approx(1_000_000 * 8 / 950 / 3600, abs=0.01)
    import jax

    if jax.devices()[0].platform == "cpu":
        assert gpu_rows()[0][2] == NOT_MEASURED

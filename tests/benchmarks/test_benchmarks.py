"""The inference benchmark runs at smoke size and prints its one table (no timing asserts)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from benchmarks.bench_inference import main
from benchmarks.common import parse_size, peak_rss_growth, time_interleaved
from convert_weights.reference_amplifier import reference_amplification

EXPECTED_ROWS = [
    "machine",
    "input",
    "weights",
    "parameters",
    "GMACs per frame, 4K (2144x3840)",
    "GMACs per frame, Sony full frame (2848x4256)",
    "jaxdark restore, fast path (jaxdark.models.lamba2021_folded)",
    "jaxdark restore, plain NNX model (jit)",
    "PyTorch reference restore",
    "ratio jaxdark fast / PyTorch",
    "max abs diff, fast path vs model, float32",
    "max abs diff, fast path vs PyTorch, float32",
    "peak host RSS growth during one restore, jaxdark fast path",
    "peak host RSS growth during one restore, PyTorch reference",
    "amplifier, ",
    "GPU",
]


def table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| quantity"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            assert len(cells) == 3, f"malformed table row: {line}"
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.slow
def test_smoke_benchmark_prints_the_table(capsys, official_weights):
    code = main(["--smoke", "--weights", str(official_weights)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("| quantity | value | notes |") == 1  # one table
    rows = table_rows(out)
    for name in EXPECTED_ROWS:
        assert any(r.startswith(name) for r in rows), f"missing row {name!r}\n{out}"
    assert rows["parameters"][0] == "784,768"
    assert rows["input"][0] == "1x256x256"
    # the model's arithmetic from XLA: close to the paper's 59.8 GMACs at the Sony frame
    assert 55.0 < float(rows["GMACs per frame, Sony full frame (2848x4256)"][0]) < 62.0
    assert float(rows["max abs diff, fast path vs model, float32"][0]) <= 1e-5
    assert float(rows["max abs diff, fast path vs PyTorch, float32"][0]) <= 1e-5
    assert float(rows["ratio jaxdark fast / PyTorch"][0]) > 0


def test_parse_size():
    assert parse_size("4k") == (2144, 3840)
    assert parse_size("SONY") == (2848, 4256)
    assert parse_size("256x384") == (256, 384)
    for bad in ("250x256", "big", "0x32", "32x"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)


def test_bad_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--size", "100x100"])
    assert e.value.code == 2
    assert "multiples of 32" in capsys.readouterr().err


def test_missing_weights_is_one_line(capsys, tmp_path):
    assert main(["--smoke", "--weights", str(tmp_path / "nope.pth")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "nope.pth" in err and "\n" not in err


def test_numpy_reference_amplifier_matches_definition():
    rng = np.random.default_rng(0)
    x = (rng.random((32, 24), dtype=np.float32) ** 4 * 1.1).astype(np.float32)
    edges = ((2.0 ** np.linspace(0, 8, 128) - 1) / 255).astype(np.float32)
    weights = 10.0 ** np.linspace(0, 5, 127)
    weights = (weights / weights.max())[::-1].astype(np.float32)
    w = np.zeros(x.size, np.float32)
    for n, v in enumerate(x.ravel()):  # per pixel, straight from the definition
        for i in range(127):
            if edges[i] <= v < edges[i + 1]:
                w[n] = weights[i]
    expected = np.clip(
        np.float32(w.sum(dtype=np.float64) * 0.01 * 5 / (x.ravel() * w).sum(dtype=np.float64)),
        1,
        300,
    )
    assert reference_amplification(x, 5.0) == pytest.approx(float(expected), rel=1e-6)
    assert reference_amplification(np.zeros((4, 4), np.float32)) == 300.0


def test_time_interleaved_order_and_counts():
    calls = []
    times = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b"] + ["a", "b"] * 3  # warm-up, then alternating rounds
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}


def test_peak_rss_growth_sees_an_allocation():
    grow = peak_rss_growth(lambda: np.ones(64 * 2**20 // 8).sum())
    if grow is None:
        pytest.skip("peak RSS reset not supported here")
    assert grow >= 40  # MiB: the 64 MiB array was resident at the peak


@pytest.mark.slow
def test_gpu_rows_code_path_runs_on_any_backend(monkeypatch):
    """The GPU section (normally only on a GPU) runs end to end on a small frame here."""
    from benchmarks import bench_inference
    from jaxdark import create_model

    monkeypatch.setitem(bench_inference.SIZES, "4k", (64, 64))
    rows = {q: (v, n) for q, v, n in bench_inference.gpu_rows(create_model(seed=0), {}, 1)}
    for name in (
        "GPU fps at 4K, float32, fast path",
        "GPU fps at 4K, bfloat16, fast path",
        "GPU max abs diff, bfloat16 vs float32",
        "GPU max abs diff, fast path vs model, float32",
        "peak GPU memory after float32 runs",
    ):
        assert name in rows, name
    assert float(rows["GPU fps at 4K, float32, fast path"][0]) > 0
    assert float(rows["GPU max abs diff, bfloat16 vs float32"][0]) < 0.05
    assert float(rows["GPU max abs diff, fast path vs model, float32"][0]) <= 1e-5

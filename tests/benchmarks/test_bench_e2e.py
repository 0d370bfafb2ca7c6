"""The end-to-end benchmark runs at smoke size, prints every row and records them."""

import json

from benchmarks import bench_e2e
from benchmarks.results_io import NOT_MEASURED


def test_smoke_run_prints_and_records_every_row(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_e2e, "write_results", _recorder(tmp_path))
    assert bench_e2e.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    for row in ("bare network", "host to host", "streaming", "CLI stage alone: read",
                "CLI whole", "video"):  # fmt: skip
        assert row in out, row
    record = json.loads((tmp_path / "bench_e2e_smoke.json").read_text())
    assert len(record["rows"]) == 10
    assert all(isinstance(r[2], float) and r[2] > 0 for r in record["rows"])


def _recorder(directory):
    from benchmarks.results_io import write_results

    def write(name, columns, rows, **kw):
        return write_results(name, columns, rows, directory=directory, **kw)

    return write


def test_gpu_rows_run_off_a_gpu_and_say_not_measured():
    model = bench_e2e.load_network(None, smoke=True)
    rows = bench_e2e.gpu_rows(model, on_gpu=False)
    assert len(rows) == 17  # 5 speed rows, 5 rewrite choices in 2 dtypes, 2 memory rows
    assert all(r[2] == NOT_MEASURED for r in rows)
    assert any("bfloat16" in r[0] and "memory" in r[0] for r in rows)


def test_parse_size():
    assert bench_e2e.parse_size("2160x3840") == (2160, 3840)
    import argparse

    import pytest

    with pytest.raises(argparse.ArgumentTypeError):
        bench_e2e.parse_size("31x64")

"""benchmarks/table1.py: the table's layout, and a smoke run over every registered model."""

from __future__ import annotations

import pytest

from benchmarks import table1
from jaxdark import models


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_rows_put_the_papers_figures_beside_ours():
    cpu = {
        "lamba2021": {"seconds": 1.5, "buffer_bytes": 0.5 * 2**30},
        "x": {"seconds": 0.2, "buffer_bytes": None},
    }
    gpu = {"lamba2021": {"seconds": 0.01, "peak_bytes": 2**30}, "x": {"error": "out of memory"}}
    rows = table1.table_rows(
        (2848, 4256), ["lamba2021", "x"], {"lamba2021": 784768, "x": 5}, {"lamba2021": 59.57,
        "x": 1.0}, cpu, gpu)  # fmt: skip
    header = _cells(rows[0])
    assert header[3] == "GMACs (2848x4256)" and len(rows[1].split("|")) == len(header) + 2
    body = [dict(zip(header, _cells(r), strict=True)) for r in rows[2:]]
    lamba = body[0]
    assert lamba["params"] == "784,768" and lamba["paper params (M)"] == "0.78"
    assert lamba["GMACs (2848x4256)"] == "59.57" and lamba["paper GMACs"] == "59.8"
    assert lamba["CPU time"] == "1.500 s" and lamba["paper CPU (s)"] == "1.17"
    assert lamba["XLA CPU buffers"] == "0.500 GiB" and body[1]["XLA CPU buffers"] == "n/a"
    assert lamba["GPU time"] == "10.0 ms" and lamba["paper GPU (ms)"] == "30.37"
    assert lamba["GPU peak memory"] == "1.000 GiB" and lamba["paper GPU memory (GB)"] == "1.16"
    assert body[1]["paper GMACs"] == "-" and body[1]["GPU time"] == "failed: out of memory"
    assert len(body) == 2  # every network of the paper's Table 1 is in the zoo: no extra rows
    assert table1.PAPER["llpacknet"][1] == "83.46" and set(table1.PAPER) >= {"did", "sgn"}


def test_recorded_rows_are_plain_values():
    cpu = {"did": {"seconds": 120.5, "buffer_bytes": 3 * 2**30}}
    rows = table1.result_rows(["did"], {"did": 2_570_691}, {"did": 7700.123}, cpu, None)
    record = dict(zip(table1.RESULT_COLUMNS, rows[0], strict=True))
    assert record["params"] == 2_570_691 and record["GMACs"] == 7700.12
    assert record["CPU time (s)"] == 120.5 and record["XLA CPU buffers (GiB)"] == 3.0
    assert record["paper CPU (s)"] == "110.29"
    assert record["GPU time (ms)"] == record["GPU peak memory (GiB)"] == "not measured yet"
    cpu = {"did": {"seconds": None, "buffer_bytes": None}}  # above --cpu-gmacs-limit
    rows = table1.result_rows(["did"], {"did": 1}, {"did": 1.0}, cpu, None)
    assert rows[0][table1.RESULT_COLUMNS.index("CPU time (s)")] == "not measured yet"
    gpu = {"did": {"seconds": 0.5, "peak_bytes": 2**31}}
    assert table1.gpu_rows(["did"], gpu) == [(500.0, 2.0)]


def test_unknown_model_is_a_usage_error(capsys):
    assert table1.main(["--smoke", "--models", "no_such_net"]) == 2
    assert "unknown model 'no_such_net'" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_run_prints_one_row_per_registered_model(capsys):
    assert table1.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("| ")]
    header = _cells(lines[0])
    assert header[3] == "GMACs (256x256)"
    rows = {c[0]: dict(zip(header, c, strict=True)) for c in map(_cells, lines[1:])}
    for name in models.names():
        assert name in rows, out
        assert rows[name]["GPU time"] == "not measured yet"
        assert rows[name]["XLA CPU buffers"].endswith("GiB")
    assert rows["sid_unet"]["params"] == "7,760,748"
    assert rows["lamba2021"]["params"] == "784,768"
    assert rows["did"]["params"] == "2,570,691" and rows["sgn"]["params"] == "3,604,963"
    assert rows["llpacknet"]["params"] == "1,170,640"
    # SID's U-Net does ~9.5x the arithmetic of lamba2021 (562.06 vs 59.8 in the paper)
    ratio = float(rows["sid_unet"]["GMACs (256x256)"]) / float(rows["lamba2021"]["GMACs (256x256)"])
    assert 7.0 < ratio < 12.0
    # LLPackNet: 83.46 GMACs in the paper, 1.4x lamba2021's
    ratio = float(rows["llpacknet"]["GMACs (256x256)"]) / float(
        rows["lamba2021"]["GMACs (256x256)"]
    )
    assert 1.2 < ratio < 1.6
    assert "recorded" not in out  # a smoke run never overwrites the recorded table

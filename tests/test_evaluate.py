"""Tests for jaxdark.evaluate and eval.py on a generated SID-layout dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jaxdark import evaluate as ev

# ---------------------------------------------------------------------------------------
# list files, ratios, summaries (no raw files needed)


def _write_list(root: Path, split: str, lines: list[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"Sony_{split}_list.txt").write_text("\n".join(lines) + "\n")


def test_exposure_and_ratio():
    assert ev.exposure_from_name("./Sony/short/10003_00_0.04s.ARW") == 0.04
    assert ev.exposure_from_name("10003_00_10s.ARW") == 10.0
    assert ev.exposure_ratio(0.1, 10) == pytest.approx(100)
    assert ev.exposure_ratio(0.04, 10) == pytest.approx(250)
    assert ev.exposure_ratio(0.033, 10) == 300.0  # 303 capped
    assert ev.ratio_key(ev.exposure_ratio(0.1, 30)) == "x300"
    with pytest.raises(ValueError, match="10003_00.ARW"):
        ev.exposure_from_name("10003_00.ARW")


def test_read_pair_list_and_drop_misaligned(tmp_path):
    _write_list(
        tmp_path,
        "test",
        [
            "./Sony/short/10003_00_0.1s.ARW ./Sony/long/10003_00_10s.ARW ISO200 F9",
            "",
            "./Sony/short/10034_00_0.04s.ARW ./Sony/long/10034_00_10s.ARW ISO200 F9",
            "./Sony/short/10045_01_0.033s.ARW ./Sony/long/10045_00_10s.ARW ISO200 F9",
            "./Sony/short/10172_00_0.1s.ARW ./Sony/long/10172_00_30s.ARW ISO200 F9",
        ],
    )
    pairs = ev.read_pair_list(tmp_path, "test")
    assert [p.scene for p in pairs] == ["10003", "10034", "10045", "10172"]
    assert pairs[0].input_path == tmp_path / "Sony/short/10003_00_0.1s.ARW"
    assert pairs[0].gt_path == tmp_path / "Sony/long/10003_00_10s.ARW"
    assert [p.ratio for p in pairs] == pytest.approx([100, 250, 300, 300])
    assert pairs[0].iso == "ISO200"
    kept = ev.read_pair_list(tmp_path, "test", drop_misaligned=True)
    assert [p.scene for p in kept] == ["10003"]


def test_read_pair_list_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Sony_val_list.txt"):
        ev.read_pair_list(tmp_path, "val")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        ev.read_pair_list(tmp_path, "dev")
    _write_list(tmp_path, "test", ["./Sony/short/1_00_0.1s.ARW ./Sony/long/1_00_10s.ARW", "oops"])
    with pytest.raises(ValueError, match=r"Sony_test_list.txt:2: expected"):
        ev.read_pair_list(tmp_path, "test")
    _write_list(tmp_path, "test", ["./Sony/short/1_00.ARW ./Sony/long/1_00_10s.ARW"])
    with pytest.raises(ValueError, match=r"Sony_test_list.txt:1: .*1_00.ARW"):
        ev.read_pair_list(tmp_path, "test")


def _result(ratio, psnr, ssim, error=""):
    pair = ev.Pair(Path("a"), Path("b"), "a", "b", 10 / ratio, 10.0, ratio, "10000", "ISO100")
    return ev.PairResult(pair, ratio, psnr, ssim, 0.5, 1.0, error)


def test_summarize_groups_by_ratio():
    rs = [
        _result(100, 30.0, 0.8),
        _result(100, 32.0, 0.9),
        _result(250, 25.0, 0.7),
        _result(300, float("nan"), float("nan"), "x: missing"),
    ]
    s = ev.summarize(rs)
    assert s["overall"]["pairs"] == 3
    assert s["overall"]["psnr"] == pytest.approx(29.0)
    assert s["per_ratio"]["x100"]["psnr"] == pytest.approx(31.0)
    assert s["per_ratio"]["x100"]["ssim"] == pytest.approx(0.85)
    assert s["per_ratio"]["x250"]["pairs"] == 1
    assert s["per_ratio"]["x300"] == {
        "pairs": 0,
        "psnr": None,
        "ssim": None,
        "seconds": None,
        "total_seconds": None,
    }
    assert list(s["per_ratio"]) == ["x100", "x250", "x300"]
    assert s["failed"] == [{"input": "a", "error": "x: missing"}]
    table = ev.format_table(s)
    assert "x100" in table and "31.000" in table and "failed: 1 pair(s)" in table
    json.dumps(s, allow_nan=False)  # valid strict JSON

"""`jaxdark restore` never loses work: inputs, earlier outputs and this run's outputs are safe,
and careless values or destinations are one line with exit status 2."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import jaxdark
from jaxdark.cli import main
from jaxdark.cli.restore import find_inputs
from jaxdark.imaging.dng import write_dng


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from jaxdark.weights.convert import save_converted

    path = tmp_path_factory.mktemp("weights") / "ckpt"
    save_converted(jaxdark.create_model(seed=0, features=32, growth=16, dense_layers=(2, 2)), path)
    return path


def _dng(path: Path, value: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    raw = rng.poisson(30, (64, 96)) + 512 if value is None else np.full((64, 96), value)
    return write_dng(path, raw.astype(np.uint16))


def _restore(*args) -> int:
    return main(["restore", *map(str, args)])


def _one_error_line(capsys, *fragments) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def test_an_output_never_replaces_its_input(weights, tmp_path, capsys):
    shot = _dng(tmp_path / "shot.tiff")  # a raw file with an image's extension
    before = shot.read_bytes()
    code = _restore(shot, "--weights", weights, "--out-dir", tmp_path, "--format", "tiff")
    assert code == 2
    _one_error_line(capsys, "would replace an input", "shot.tiff")
    assert shot.read_bytes() == before


def test_two_m_values_with_one_name_are_refused(weights, tmp_path, capsys):
    shot = _dng(tmp_path / "a.dng")
    assert (
        _restore(shot, "--weights", weights, "--out-dir", tmp_path / "o", "--m", "5", "5.000001")
        == 2
    )
    _one_error_line(capsys, "_m5")
    assert not (tmp_path / "o").exists()


def test_existing_outputs_are_kept_unless_asked(weights, tmp_path, capsys):
    a, b = _dng(tmp_path / "a.dng"), _dng(tmp_path / "b.dng")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"earlier run")
    assert _restore(a, b, "--weights", weights, "--out-dir", out) == 2
    _one_error_line(capsys, "a.png exists", "--overwrite", "--skip-existing")
    assert (out / "a.png").read_bytes() == b"earlier run" and not (out / "b.png").exists()

    assert _restore(a, b, "--weights", weights, "--out-dir", out, "--skip-existing") == 0
    printed = capsys.readouterr().out
    assert "skipped, its outputs exist" in printed and "1 skipped" in printed
    assert (out / "a.png").read_bytes() == b"earlier run" and (out / "b.png").stat().st_size > 0

    assert _restore(a, "--weights", weights, "--out-dir", out, "--overwrite") == 0
    assert (out / "a.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--amplification", "1e39"], "amplification must be a number in (0, 10000]"),
        (["--amplification", "nan"], "amplification must be a number"),
        (["--m", "0"], "m must be a number in (0, 1000]"),
        (["--m", "inf"], "m must be a number"),
        (["--tile-overlap", "33"], "tile_overlap must be an integer multiple of 32"),
        (["--overwrite", "--skip-existing"], "not both"),
        (["--io-nice", "20"], "--io-nice must be in [0, 19], got 20"),
    ],
)
def test_bad_values_are_one_line(weights, tmp_path, capsys, args, fragment):
    shot = _dng(tmp_path / "a.dng")
    assert _restore(shot, "--weights", weights, "--out-dir", tmp_path / "o", *args) == 2
    _one_error_line(capsys, fragment)
    assert not list((tmp_path / "o").glob("*.png")) if (tmp_path / "o").exists() else True


def test_destination_under_a_file_is_one_line(weights, tmp_path, capsys):
    shot = _dng(tmp_path / "a.dng")
    (tmp_path / "plain").write_text("x")
    assert _restore(shot, "--weights", weights, "--out-dir", tmp_path / "plain" / "o") == 2
    _one_error_line(capsys, "is a file, not a folder")
    assert main(["convert", str(weights), str(tmp_path / "plain" / "c")]) == 2
    _one_error_line(capsys, "is a file, not a folder")


def test_constant_mosaic_is_flagged_on_its_line(weights, tmp_path, capsys):
    flat = _dng(tmp_path / "flat.dng", value=512)  # all black
    assert _restore(flat, "--weights", weights, "--out-dir", tmp_path / "o") == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if "flat.dng" in ln][0]
    assert "WARNING: every pixel has the same value" in line


def test_newline_in_a_file_name_keeps_the_reason(weights, tmp_path, capsys):
    bad = tmp_path / "two\nlines.dng"
    bad.write_text("not raw")
    assert _restore(bad, "--weights", weights, "--out-dir", tmp_path / "o") == 1
    err = capsys.readouterr().err
    line = [ln for ln in err.splitlines() if "two\\nlines.dng" in ln][0]
    assert "not a RAW file" in line or "cannot read" in line or "corrupt" in line


def test_unreadable_subfolder_is_reported(tmp_path, monkeypatch):
    _dng(tmp_path / "a.dng")
    real_walk = os.walk

    def walk(top, onerror=None, **kw):
        onerror(PermissionError(13, "Permission denied", str(tmp_path / "locked")))
        yield from real_walk(top, onerror=onerror, **kw)

    monkeypatch.setattr(os, "walk", walk)
    found, problems = find_inputs([tmp_path], recursive=True)
    assert [p.name for p in found] == ["a.dng"]
    assert problems and "locked" in problems[0] and "Permission denied" in problems[0]


def test_demo_with_bad_weights_writes_nothing(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--weights", str(tmp_path / "missing.pth"), "--out-dir", str(out)]) == 2
    _one_error_line(capsys, "missing.pth")
    assert not out.exists()

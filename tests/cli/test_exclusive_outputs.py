"""Outputs are created exclusively: two runs writing the same name never both "succeed"
with one image lost; leftovers of killed runs are cleaned by the next; restore refuses
weights that hold NaN."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxdark import fileio
from jaxdark.cli import main
from jaxdark.imaging.dng import write_dng
from tests.support.tiny_model import save_tiny


def test_exclusive_write_refuses_a_name_taken_meanwhile(tmp_path):
    out = tmp_path / "scene.png"

    def other_run_wins(tmp: Path) -> None:
        tmp.write_bytes(b"mine")
        out.write_bytes(b"the other run's image")  # appears between check and rename

    with pytest.raises(FileExistsError) as info:
        fileio.write_atomic(out, other_run_wins, replace=False)
    assert "scene.png exists" in str(info.value) and "\n" not in str(info.value)
    assert out.read_bytes() == b"the other run's image"
    assert [p.name for p in tmp_path.iterdir()] == ["scene.png"]  # no temporary left
    fileio.write_atomic(out, lambda tmp: tmp.write_bytes(b"new"), replace=True)
    assert out.read_bytes() == b"new"


def test_stale_temporaries_of_killed_runs_are_removed(tmp_path):
    out = tmp_path / "scene.png"
    # a pid that no longer runs: a child that has exited
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    mine = fileio.temporary_prefix(out)
    stale = tmp_path / (mine.replace(f"jd{os.getpid()}-", f"jd{child.pid}-") + "abc123.tmp")
    live = tmp_path / (mine + "zzz999.tmp")  # this process's: in use, kept
    foreign = tmp_path / ".scene.tmp"  # not named by jaxdark: kept
    for p in (stale, live, foreign):
        p.write_bytes(b"x")
    fileio.write_image(out, np.zeros((4, 4, 3), np.float32), "png")
    assert out.exists() and not stale.exists() and live.exists() and foreign.exists()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("w") / "tiny")


def _dng(path: Path) -> Path:
    raw = np.random.default_rng(0).poisson(30, (64, 96)) + 512
    return write_dng(path, raw.astype(np.uint16))


def test_restore_loser_of_a_race_fails_in_one_line(weights, tmp_path, capsys, monkeypatch):
    """Two restores of different files with the same stem into one --out-dir: the second
    to finish finds the name taken (created by the other after its planning check) and
    reports that file as failed, leaving the other image intact."""
    (tmp_path / "a").mkdir()
    a = _dng(tmp_path / "a" / "scene.dng")
    out = tmp_path / "out"
    real = fileio.encode_image

    def racing(path, image, fmt):
        real(path, image, fmt)
        (out / "scene.png").write_bytes(b"the other process's image")

    monkeypatch.setattr(fileio, "encode_image", racing)
    code = main(["restore", str(a), "--weights", str(weights), "--out-dir", str(out)])
    captured = capsys.readouterr()
    assert code == 1, captured
    assert (out / "scene.png").read_bytes() == b"the other process's image"
    failed = [ln for ln in captured.err.splitlines() if "scene.png exists" in ln]
    assert failed and "Traceback" not in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["scene.png"]


def test_restore_refuses_nan_weights(weights, tmp_path, capsys):
    import shutil

    from jaxdark.weights.convert import load_converted_model, save_converted

    model = load_converted_model(weights)
    poisoned = np.array(model.conv2x.v.get_value())
    poisoned[0, 0, 0, 0] = np.nan
    model.conv2x.v.set_value(poisoned)
    bad = tmp_path / "nan_ckpt"
    save_converted(model, bad)
    shot = _dng(tmp_path / "shot.dng")
    code = main(["restore", str(shot), "--weights", str(bad), "--out-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "NaN or infinite" in err and "conv2x.v" in err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1
    assert not list(tmp_path.rglob("*.png"))
    shutil.rmtree(bad)

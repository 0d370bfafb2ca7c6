"""``jaxdark video`` and ``jaxdark demo --video`` with a tiny network."""

import numpy as np
import pytest

from jaxdark.cli import main
from jaxdark.imaging.dng import write_dng
from tests.support.tiny_model import save_tiny

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("w") / "ckpt")


def _frames(folder, n, shape=(64, 96)):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        write_dng(folder / f"f{i:03d}.dng", (rng.poisson(20, shape) + 512).astype(np.uint16))
    return folder


def _count_frames(path):
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(c.streams.video[0]))


def test_folder_of_dngs_becomes_an_mp4(weights, tmp_path, capsys):
    src = _frames(tmp_path / "clip", 5)
    out = tmp_path / "out.mp4"
    assert main(["video", str(src), "--weights", str(weights), "--out", str(out)]) == 0
    assert _count_frames(out) == 5
    assert "5 frame(s) of 96x64" in capsys.readouterr().out
    # an existing output is kept unless asked
    assert main(["video", str(src), "--weights", str(weights), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    args = ["video", str(src), "--weights", str(weights), "--out", str(tmp_path / "b.mp4")]
    assert main([*args, "--io-nice", "-1"]) == 2
    assert "--io-nice must be in [0, 19], got -1" in capsys.readouterr().err
    assert main([*args, "--io-nice", "0"]) == 0 and _count_frames(tmp_path / "b.mp4") == 5


def test_bad_and_odd_sized_frames_are_left_out_and_reported(weights, tmp_path, capsys):
    src = _frames(tmp_path / "clip", 3)
    (src / "f001.dng").write_text("not a raw file")
    write_dng(src / "f004.dng", np.full((64, 64), 600, np.uint16))
    out = tmp_path / "out.mp4"
    assert main(["video", str(src), "--weights", str(weights), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "f001.dng" in err and "f004.dng" in err and "Traceback" not in err
    assert _count_frames(out) == 2


def test_demo_video_writes_frames_and_prints_the_rate(weights, tmp_path, capsys):
    args = ["demo", "--video", "--weights", str(weights), "--out-dir", str(tmp_path / "d")]
    assert main([*args, "--crop", "96", "--frames", "4"]) == 0
    out = capsys.readouterr().out
    assert "frames/s after the first" in out
    assert len(list((tmp_path / "d" / "dark_clip").glob("*.dng"))) == 4
    assert _count_frames(tmp_path / "d" / "restored.mp4") == 4


def test_demo_video_honours_the_photo_limits(weights, tmp_path, capsys):
    args = ["demo", "--video", "--weights", str(weights), "--out-dir", str(tmp_path / "d")]
    assert main([*args, "--frames", "4", "--max-pixels", "1000"]) == 2
    err = capsys.readouterr().err
    assert "over the limit of 1,000" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()

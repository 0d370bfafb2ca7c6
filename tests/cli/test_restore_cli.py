"""``jaxdark restore`` on a batch of DNG files written here, good and bad."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

import jaxdark
from jaxdark import fileio
from jaxdark.cli import main
from jaxdark.cli import restore as restore_cli
from jaxdark.imaging.dng import write_dng


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from jaxdark.weights.convert import save_converted

    path = tmp_path_factory.mktemp("weights") / "ckpt"
    save_converted(jaxdark.create_model(seed=0), path)
    return path


def _raw(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.poisson(20, shape) + 512).astype(np.uint16)


@pytest.fixture
def batch(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_dng(folder / "a.dng", _raw((64, 96)), pattern="RGGB")
    write_dng(folder / "b.DNG", _raw((70, 99), 1), pattern="GRBG", white_level=4095,
              black_levels=[256, 256, 256, 256])  # fmt: skip
    (folder / "broken.dng").write_text("this is not a raw file")
    good = (folder / "a.dng").read_bytes()
    (folder / "cut.dng").write_bytes(good[: len(good) // 3])
    (folder / "readme.txt").write_text("ignored: not a RAW extension")
    return folder


def _read_png(path):
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def test_batch_goes_on_past_bad_files(batch, weights, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["restore", str(batch), "--weights", str(weights), "--out-dir", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert _read_png(out / "a.png").shape == (64, 96, 3)
    assert _read_png(out / "b.png").shape == (70, 99, 3)
    assert _read_png(out / "a.png").dtype == np.uint8
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]  # no temp files left
    # per-file report: size, pattern, camera, amplification, time
    assert "a.dng: 96x64 RGGB, jaxdark Synthetic Bayer; x" in captured.out
    assert "b.DNG: 99x70 GRBG" in captured.out
    assert "restored 2 of 4 file(s)" in captured.out
    assert "2 file(s) failed:" in captured.err
    assert "broken.dng" in captured.err and "cut.dng" in captured.err
    assert "Traceback" not in captured.err


def test_several_m_values_and_formats(batch, weights, tmp_path):
    out = tmp_path / "out"
    a = batch / "a.dng"
    args = ["restore", str(a), "--weights", str(weights), "--out-dir", str(out)]
    assert main([*args, "--m", "1", "8"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_m1.png", "a_m8.png"]
    dark, bright = _read_png(out / "a_m1.png"), _read_png(out / "a_m8.png")
    assert dark.mean() < bright.mean()
    assert main([*args, "--format", "png16", "--amplification", "20"]) == 0
    assert _read_png(out / "a.png").dtype == np.uint16


def test_every_format_round_trips(tmp_path):
    image = np.linspace(0, 1, 64 * 96 * 3, dtype=np.float32).reshape(64, 96, 3)
    for fmt, suffix in [("png", ".png"), ("png16", ".png"), ("jpg", ".jpg"), ("tiff", ".tiff")]:
        path = tmp_path / f"{fmt}{suffix}"
        fileio.write_image(path, image, fmt)
        data = tifffile.imread(path) if fmt == "tiff" else _read_png(path)[..., ::-1]
        assert data.shape == (64, 96, 3)
        bits = 16 if fmt in ("png16", "tiff") else 8
        assert data.dtype == (np.uint16 if bits == 16 else np.uint8)
        expected = fileio.to_uint(image, bits)
        if fmt == "jpg":  # lossy
            assert np.abs(data.astype(int) - expected).mean() < 3
        else:
            np.testing.assert_array_equal(data, expected)


def test_png_matches_restorer_output(batch, weights, tmp_path):
    out = tmp_path / "out"
    a = batch / "a.dng"
    assert main(["restore", str(a), "--weights", str(weights), "--out-dir", str(out)]) == 0
    expected = jaxdark.Restorer(weights).restore_file(a)
    written = _read_png(out / "a.png")[..., ::-1]  # OpenCV reads BGR
    np.testing.assert_array_equal(written, np.rint(expected * 255).astype(np.uint8))


def test_usage_errors_are_one_line(batch, weights, tmp_path, capsys):
    out = str(tmp_path / "out")
    base = ["--weights", str(weights), "--out-dir", out]
    assert main(["restore", str(batch / "a.dng"), *base, "--m", "5", "--amplification", "3"]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["restore", str(empty), *base]) == 2
    assert main(["restore", str(batch / "a.dng"), *base, "--m", "-1"]) == 2
    missing_weights = ["--weights", str(tmp_path / "nope.pth"), "--out-dir", out]
    assert main(["restore", str(batch / "a.dng"), *missing_weights]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line]
    assert len(lines) == 4 and all(line.startswith("jaxdark restore: error:") for line in lines)
    assert "not both" in lines[0] and "no RAW files" in lines[1]


def test_missing_input_fails_alone_and_the_batch_goes_on(batch, weights, tmp_path, capsys):
    out = tmp_path / "out"
    missing = tmp_path / "missing.dng"
    args = [str(missing), str(batch / "a.dng"), "--weights", str(weights), "--out-dir", str(out)]
    assert main(["restore", *args]) == 1
    captured = capsys.readouterr()
    assert (out / "a.png").is_file()
    assert "restored 1 of 2 file(s)" in captured.out
    assert "1 file(s) failed:" in captured.err and f"{missing}: no such file" in captured.err
    assert "Traceback" not in captured.err


def test_output_names_never_clash():
    paths = [Path("x/a.dng"), Path("y/a.arw"), Path("z/a.dng"), Path("b.nef")]
    assert restore_cli.output_stems(paths) == ["a_dng", "a_arw", "a_dng-2", "b"]
    assert restore_cli.output_name("a", 5.0, False, "png") == "a.png"
    assert restore_cli.output_name("a", 1.5, True, "jpg") == "a_m1.5.jpg"


def test_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "img.png"
    fileio.write_image(target, np.full((8, 8, 3), 0.5, np.float32), "png")
    before = target.read_bytes()

    def failing_encode(path, image, fmt):
        Path(path).write_bytes(b"half an image")
        raise OSError("disk full")

    monkeypatch.setattr(fileio, "encode_image", failing_encode)
    with pytest.raises(OSError, match="disk full"):
        fileio.write_image(target, np.zeros((8, 8, 3), np.float32), "png")
    assert target.read_bytes() == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["img.png"]  # no temp file left

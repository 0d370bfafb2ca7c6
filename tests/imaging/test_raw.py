"""jaxdark.imaging.raw on DNG files the tests write (jaxdark.imaging.dng): levels, Bayer phase,
errors."""

import numpy as np
import pytest

from jaxdark.errors import RawFileError
from jaxdark.imaging.bayer import BAYER_PATTERNS
from jaxdark.imaging.bayer import red_position as bayer_offset
from jaxdark.imaging.dng import XTRANS_PATTERN, write_dng
from jaxdark.imaging.raw import (
    from_rggb,
    pad_to_multiple,
    padded_shape,
    read_mosaic,
    read_raw,
    to_rggb,
)

# Colour-coded sensor values (above black): tells which colour a pixel came from.
CODE = {"R": 1000, "G": 2000, "B": 3000}


def coded_raw(pattern: str, shape: tuple[int, int], black: list[int]) -> np.ndarray:
    """Raw counts whose value encodes the CFA colour of each pixel, plus its black level."""
    h, w = shape
    out = np.empty(shape, np.uint16)
    for i in range(2):
        for j in range(2):
            out[i::2, j::2] = CODE[pattern[2 * i + j]] + black[2 * i + j]
    return out


@pytest.mark.parametrize("pattern", BAYER_PATTERNS)
@pytest.mark.parametrize(("white", "black"), [(4095, [256, 250, 260, 255]), (16383, [512] * 4)])
def test_levels_per_cfa_position(tmp_path, pattern, white, black):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, white + 200, (67, 99)).astype(np.uint16)  # odd sizes, some > white
    path = write_dng(tmp_path / f"{pattern}.dng", raw, pattern=pattern, black_levels=black,
                     white_level=white)  # fmt: skip
    frame = read_raw(path)
    assert frame.pattern == pattern
    assert frame.shape == (67, 99)
    assert frame.white_level == white
    assert frame.black_levels == tuple(float(b) for b in black)
    assert frame.camera == "jaxdark Synthetic Bayer"
    b = np.tile(np.array(black, np.float32).reshape(2, 2), (34, 50))[:67, :99]
    expected = np.maximum(raw.astype(np.float32) - b, 0) / (np.float32(white) - b)
    np.testing.assert_array_equal(frame.mosaic, expected)
    assert frame.mosaic.dtype == np.float32
    assert frame.mosaic.max() > 1.0  # not clipped above, as in the reference
    np.testing.assert_array_equal(read_mosaic(path), frame.mosaic)


@pytest.mark.parametrize("pattern", BAYER_PATTERNS)
def test_rggb_phase_and_alignment(tmp_path, pattern):
    black = [500, 510, 520, 530]
    path = write_dng(tmp_path / "c.dng", coded_raw(pattern, (65, 97), black),
                     pattern=pattern, black_levels=black, white_level=16383)  # fmt: skip
    frame = read_raw(path)
    rggb, offset = to_rggb(frame.mosaic, frame.pattern)
    assert offset == bayer_offset(pattern)
    level = {c: v / (16383 - 500) for c, v in CODE.items()}  # colour from the value
    colour = {c: np.isclose(rggb, v, rtol=0.02) for c, v in level.items()}
    assert colour["R"][0::2, 0::2].all() and colour["B"][1::2, 1::2].all()
    assert colour["G"][0::2, 1::2].all() and colour["G"][1::2, 0::2].all()
    # the original pixels sit at the offset, untouched
    np.testing.assert_array_equal(from_rggb(rggb, offset, frame.shape), frame.mosaic)
    # padding keeps the layout and reaches multiples of 32
    padded = pad_to_multiple(rggb)
    assert padded.shape == padded_shape(rggb.shape) == (96, 128)
    assert np.isclose(padded[0::2, 0::2], level["R"], rtol=0.02).all()
    assert np.isclose(padded[1::2, 1::2], level["B"], rtol=0.02).all()
    np.testing.assert_array_equal(padded[: rggb.shape[0], : rggb.shape[1]], rggb)


def test_pad_is_identity_on_multiples_and_refuses_tiny():
    x = np.zeros((64, 96), np.float32)
    assert pad_to_multiple(x) is x
    with pytest.raises(ValueError, match="too small"):
        pad_to_multiple(np.zeros((31, 64), np.float32))
    with pytest.raises(ValueError, match="Bayer pattern"):
        bayer_offset("RGBG")


def _expect_error(path, *fragments):
    with pytest.raises(RawFileError) as info:
        read_raw(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_unsupported_sensors(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4000, (72, 96)).astype(np.uint16)
    _expect_error(write_dng(tmp_path / "x.dng", data, pattern=XTRANS_PATTERN), "X-Trans")
    _expect_error(write_dng(tmp_path / "m.dng", data, pattern="mono"), "monochrome")
    foveon = rng.integers(0, 4000, (72, 96, 3)).astype(np.uint16)
    _expect_error(write_dng(tmp_path / "f.dng", foveon), "Foveon")


def test_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    good = write_dng(tmp_path / "good.dng", rng.integers(0, 4000, (300, 400)).astype(np.uint16))
    truncated = tmp_path / "truncated.dng"
    truncated.write_bytes(good.read_bytes()[:120_000])
    _expect_error(truncated, "truncated")
    text = tmp_path / "notes.dng"
    text.write_text("not a raw file")
    _expect_error(text, "not a RAW file")
    empty = tmp_path / "empty.arw"
    empty.write_bytes(b"")
    _expect_error(empty)
    _expect_error(tmp_path / "missing.dng", "no such file")
    _expect_error(tmp_path, "not a file")
    small = write_dng(tmp_path / "small.dng", rng.integers(0, 4000, (30, 400)).astype(np.uint16))
    _expect_error(small, "too small")
    bad_levels = write_dng(
        tmp_path / "levels.dng", np.full((64, 64), 100, np.uint16), black_levels=5000,
        white_level=4095,
    )  # fmt: skip
    _expect_error(bad_levels, "white level")


def test_dng_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="CFA pattern"):
        write_dng(tmp_path / "a.dng", np.zeros((64, 64), np.uint16), pattern="RGGX")
    with pytest.raises(ValueError, match="black levels"):
        write_dng(tmp_path / "b.dng", np.zeros((64, 64), np.uint16), black_levels=[1, 2, 3])
    with pytest.raises(ValueError, match="uint16"):
        write_dng(tmp_path / "c.dng", np.full((64, 64), 70000))

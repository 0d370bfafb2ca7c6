"""jaxdark.data.pipeline: Bayer-safe crops/flips, amplification, determinism, state."""

from __future__ import annotations

import numpy as np
import pytest

from jaxdark.data import sid
from jaxdark.data.pipeline import (
    CropAmplify,
    crop_and_flip,
    local_batch_size,
    make_iterator,
)
from jaxdark.imaging.raw import normalise
from tests.support.sid_fixture import prepare_fixture_dataset

COLOUR = {"R": 1, "G": 2, "B": 3}


def _coded_image(pattern, h=64, w=96):
    """A mosaic holding colour codes and a target holding each pixel's (row, col)."""
    cell = np.array(
        [[COLOUR[pattern[0]], COLOUR[pattern[1]]], [COLOUR[pattern[2]], COLOUR[pattern[3]]]]
    )
    mosaic = np.tile(cell, (h // 2, w // 2)).astype(np.uint16)
    rows, cols = np.mgrid[0:h, 0:w]
    target = np.stack([rows, cols, np.zeros_like(rows)], -1).astype(np.uint16)
    return mosaic, target


@pytest.mark.parametrize("pattern", ["RGGB", "GRBG", "GBRG", "BGGR"])
@pytest.mark.parametrize("flips", [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.5, 0.2)])
def test_crops_keep_the_bayer_phase_and_stay_aligned(pattern, flips):
    mosaic, target = _coded_image(pattern)
    rng = np.random.default_rng(0)
    for _ in range(25):
        m, t, (top, left, hflip, vflip) = crop_and_flip(mosaic, target, pattern, 32, rng, *flips)
        assert m.shape == (32, 32) and t.shape == (32, 32, 3)
        # Every crop is an RGGB mosaic.
        assert (m[0::2, 0::2] == 1).all() and (m[1::2, 1::2] == 3).all()
        assert (m[0::2, 1::2] == 2).all() and (m[1::2, 0::2] == 2).all()
        # The target moved with it: same source pixel under every mosaic pixel.
        np.testing.assert_array_equal(mosaic[t[..., 0], t[..., 1]], m)
        assert hflip == (flips[0] == 1.0) or flips[0] not in (0.0, 1.0)
        assert vflip == (flips[1] == 1.0) or flips[1] not in (0.0, 1.0)
        rows = t[:, 0, 0].astype(int)
        assert (np.diff(rows) == (-1 if vflip else 1)).all()
        assert 0 <= top <= 64 - 32 and 0 <= left <= 96 - 32


def test_flip_rates_and_offsets_cover_the_image():
    mosaic, target = _coded_image("RGGB")
    rng = np.random.default_rng(1)
    draws = [crop_and_flip(mosaic, target, "RGGB", 32, rng)[2] for _ in range(2000)]
    hf = np.mean([d[2] for d in draws])
    vf = np.mean([d[3] for d in draws])
    assert 0.45 < hf < 0.55 and 0.16 < vf < 0.24
    tops = {d[0] for d in draws}
    assert min(tops) == 0 and max(tops) == 32 and len(tops) == 33


def test_crop_errors():
    mosaic, target = _coded_image("RGGB", 32, 32)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="larger than the image"):
        crop_and_flip(mosaic, target, "RGGB", 64, rng)
    with pytest.raises(ValueError, match="Bayer pattern"):
        crop_and_flip(mosaic, target, "RGBG", 32, rng)
    # a full-size crop still works, unflipped when there is no room to shift
    m, _, (_, _, hf, vf) = crop_and_flip(mosaic, target, "RGGB", 32, rng, 1.0, 1.0)
    assert m.shape == (32, 32) and not hf and not vf
    with pytest.raises(ValueError, match="multiple of 32"):
        CropAmplify(48)
    with pytest.raises(ValueError, match="amplification"):
        CropAmplify(32, amplification="auto")
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        local_batch_size(6, 4)


def test_normalise_per_position_black_level():
    mosaic = np.array([[600, 512], [400, 16383]], np.uint16)
    black = np.array([[512, 500], [512, 383]], np.float32)
    x = normalise(np.tile(mosaic, (2, 2)), black, 16383)
    np.testing.assert_allclose(x[:2, :2], [[88 / 15871, 12 / 15883], [0, 1]], rtol=1e-6)


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    return prepare_fixture_dataset(tmp_path_factory.mktemp("sid"))[1]


def _take(it, n):
    return [next(it) for _ in range(n)]


def _equal(a, b):
    return all(np.array_equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)


def test_batches_amplified_by_the_ratio(tfds_dir):
    source = sid.SIDPairs("train", tfds_dir)
    it = make_iterator(
        source, global_batch_size=4, crop_size=64, seed=0, process_index=0, process_count=1
    )
    b = next(it)
    assert b["input"].shape == (4, 64, 64, 1) and b["input"].dtype == np.float32
    assert b["target"].shape == (4, 64, 64, 3) and b["target"].dtype == np.float32
    assert set(np.round(b["amplification"]).tolist()) <= {100.0, 250.0, 300.0}
    assert 0 <= b["target"].min() and b["target"].max() <= 1
    # amplified inputs are about as bright as the long exposures they came from
    assert 0.05 < float(b["input"].mean()) < 0.6


def test_estimated_amplification(tfds_dir):
    from jaxdark.imaging.amplifier import estimate_amplification

    source = sid.SIDPairs("train", tfds_dir)
    rec = source[0]
    t = CropAmplify(64, amplification="estimated", m=5.0)
    out = t.random_map(rec, np.random.default_rng(0))
    full = normalise(rec["mosaic"], rec["black_levels"], rec["white_level"])
    assert out["amplification"] == pytest.approx(float(estimate_amplification(full, 5.0)))
    assert 1.0 <= out["amplification"] <= 300.0


def test_same_seed_same_batches_and_state_resumes(tfds_dir):
    source = sid.SIDPairs("train", tfds_dir)
    kw = dict(global_batch_size=2, crop_size=32, process_index=0, process_count=1)
    first = _take(make_iterator(source, seed=3, **kw), 7)  # 14 crops > 5 records: 3 epochs
    assert _equal(first, _take(make_iterator(source, seed=3, **kw), 7))
    assert not _equal(first[:2], _take(make_iterator(source, seed=4, **kw), 2))
    it = make_iterator(source, seed=3, **kw)
    _take(it, 4)
    state = it.get_state()
    resumed = make_iterator(source, seed=3, **kw)
    resumed.set_state(state)
    assert _equal(first[4:], _take(resumed, 3))


def test_process_shares_make_up_the_single_process_batches(tfds_dir):
    source = sid.SIDPairs("train", tfds_dir)
    kw = dict(global_batch_size=4, crop_size=32, seed=2)
    whole = _take(make_iterator(source, process_index=0, process_count=1, **kw), 4)
    parts = [
        _take(make_iterator(source, process_index=p, process_count=2, **kw), 4) for p in (0, 1)
    ]
    for b, full in enumerate(whole):
        for k in full:
            assert parts[0][b][k].shape[0] == 2
            np.testing.assert_array_equal(np.concatenate([parts[0][b][k], parts[1][b][k]]), full[k])


@pytest.mark.slow
def test_worker_processes_give_the_same_batches(tfds_dir):
    source = sid.SIDPairs("train", tfds_dir)
    kw = dict(global_batch_size=2, crop_size=32, seed=5, process_index=0, process_count=1)
    expected = _take(make_iterator(source, **kw), 4)
    it = make_iterator(source, worker_count=2, **kw)
    try:
        got = _take(it, 2)
        state = it.get_state()
        assert _equal(expected[:2], got)
    finally:
        it.close()
    resumed = make_iterator(source, worker_count=2, **kw)
    try:
        resumed.set_state(state)
        assert _equal(expected[2:], _take(resumed, 2))
    finally:
        resumed.close()

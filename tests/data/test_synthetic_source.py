"""jaxdark.data.synthetic_source: photos, skipping, determinism, splits, mixing, configs."""

from __future__ import annotations

import logging
import os
import pickle

import cv2
import numpy as np
import pytest

from configs import synthetic as synthetic_config
from jaxdark.data.pipeline import make_iterator
from jaxdark.data.synthetic_source import (
    SKIMAGE_TRAIN,
    SKIMAGE_VALIDATION,
    MixedSource,
    PhotoError,
    SyntheticPairs,
    find_photos,
    is_held_out,
    make_train_source,
    read_photo,
    skimage_photos,
    synthesis_config,
)
from jaxdark.errors import JaxdarkError


def _photo(h, w, seed=0, dtype=np.uint8):
    top = 255 if dtype == np.uint8 else 65535
    return (np.random.default_rng(seed).random((h, w, 3)) * top).astype(dtype)


@pytest.fixture()
def photo_folder(tmp_path):
    """Good photos (PNG, 16-bit TIFF in a subfolder, grey JPEG) and bad ones."""
    root = tmp_path / "photos"
    (root / "sub" / "deeper").mkdir(parents=True)
    cv2.imwrite(str(root / "a.png"), _photo(96, 120, 1))
    cv2.imwrite(str(root / "sub" / "b.TIFF"), _photo(80, 80, 2, np.uint16))
    cv2.imwrite(str(root / "sub" / "deeper" / "c.jpg"), _photo(100, 90, 3)[..., 0])
    cv2.imwrite(str(root / "small.png"), _photo(40, 200, 4))  # shorter side < window
    (root / "text.png").write_text("not an image")
    good = (root / "a.png").read_bytes()
    (root / "sub" / "truncated.png").write_bytes(good[: len(good) // 3])  # header only
    cv2.imwrite(str(root / "notes.bmp"), _photo(100, 100, 5))  # not a photo suffix: ignored
    return root


def test_folder_photos_bad_ones_skipped_and_reported_once(photo_folder, caplog):
    caplog.set_level(logging.WARNING, logger="jaxdark.data.synthetic_source")
    src = SyntheticPairs(photo_folder, window=66, variants=3, val_fraction=0.0)
    assert sorted(src.names) == ["a.png", "sub/b.TIFF", "sub/deeper/c.jpg", "sub/truncated.png"]
    assert len(src.skipped) == 2
    assert any("small.png: 40x200 is smaller than the 66x66 window" in s for s in src.skipped)
    assert any("text.png: cannot read the photo" in s for s in src.skipped)
    # the truncated PNG has a readable header: found out when read, reported once, and
    # its records come from the next photo
    records = [src[i] for i in range(2 * len(src))]
    assert sum("truncated.png" in s for s in src.skipped) == 1
    warned = [r.getMessage() for r in caplog.records if "truncated.png" in r.getMessage()]
    assert len(warned) == 1
    assert all(r["mosaic"].shape == (66, 66) and r["target"].shape == (66, 66, 3) for r in records)
    assert not any("truncated" in r["short_file"] for r in records)
    assert {r["short_file"].split("#")[0] for r in records} == {
        "a.png",
        "sub/b.TIFF",
        "sub/deeper/c.jpg",
    }


def test_no_usable_photo_is_one_line_error(tmp_path):
    (tmp_path / "x.png").write_text("nope")
    with pytest.raises(PhotoError, match="no usable train photos"):
        SyntheticPairs(tmp_path, window=64, val_fraction=0.0)
    with pytest.raises(PhotoError, match="photo folder not found"):
        SyntheticPairs(tmp_path / "missing")


def test_read_photo_formats(photo_folder):
    assert read_photo(photo_folder / "a.png").dtype == np.uint8
    tiff = read_photo(photo_folder / "sub" / "b.TIFF")
    assert tiff.dtype == np.uint16 and tiff.shape == (80, 80, 3)
    grey = read_photo(photo_folder / "sub" / "deeper" / "c.jpg")
    assert grey.shape == (100, 90, 3) and (grey[..., 0] == grey[..., 2]).all()
    bgr = _photo(96, 120, 1)
    np.testing.assert_array_equal(read_photo(photo_folder / "a.png"), bgr[..., ::-1])


def test_records_depend_on_seed_and_index_only(photo_folder):
    a = SyntheticPairs(photo_folder, window=64, seed=3, variants=5, val_fraction=0.0)
    b = pickle.loads(pickle.dumps(a))  # what a grain worker process gets
    for i in (0, 7, 13):
        ra, rb = a[i], b[i]
        for key in ("mosaic", "target", "ratio", "short_file"):
            np.testing.assert_array_equal(ra[key], rb[key])
    other_seed = SyntheticPairs(photo_folder, window=64, seed=4, variants=5, val_fraction=0.0)
    assert not np.array_equal(a[7]["mosaic"], other_seed[7]["mosaic"])
    n = len(a.photos)
    assert a[1]["short_file"].split("#")[0] == a[1 + n]["short_file"].split("#")[0]
    assert not np.array_equal(a[1]["target"], a[1 + n]["target"])  # another window / draw


def test_pipeline_batches_resume_exactly(photo_folder):
    src = SyntheticPairs(photo_folder, window=66, seed=0, variants=4, val_fraction=0.0)
    kwargs = dict(global_batch_size=2, crop_size=64, seed=1, process_index=0, process_count=1)
    it = make_iterator(src, read_threads=1, **kwargs)
    next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(2)]
    resumed = make_iterator(src, read_threads=1, **kwargs)
    resumed.set_state(state)
    for want in expected:
        got = next(resumed)
        for key in ("input", "target", "amplification"):
            np.testing.assert_array_equal(got[key], want[key])
    assert want["input"].shape == (2, 64, 64, 1) and want["target"].shape == (2, 64, 64, 3)
    assert set(np.asarray(want["amplification"]).tolist()) <= {100.0, 250.0, 300.0}


def test_folder_split_is_fixed_and_disjoint(tmp_path):
    for i in range(40):
        (tmp_path / f"p{i:02d}.png").write_bytes(b"")
    train = find_photos(tmp_path, "train", 0.25)
    val = find_photos(tmp_path, "validation", 0.25)
    assert not set(train) & set(val) and len(train) + len(val) == 40
    assert 2 <= len(val) <= 20
    assert [p.name for p in val] == [
        p.name for p in sorted(tmp_path.glob("*.png")) if is_held_out(p.name, 0.25)
    ]
    assert find_photos(tmp_path, "validation", 0.0) == []


def test_skimage_photos_split():
    train, val = skimage_photos("train"), skimage_photos("validation")
    assert [p.name for p in train] == list(SKIMAGE_TRAIN)
    assert [p.name for p in val] == list(SKIMAGE_VALIDATION)
    assert all(p.is_file() for p in train + val)
    src = SyntheticPairs(split="validation", window=None, variants=1)
    assert src.names == list(SKIMAGE_VALIDATION) and not src.skipped
    assert src[0]["mosaic"].shape == (300, 450)  # chelsea, whole photo (even sides)
    with pytest.raises(JaxdarkError, match="unknown split"):
        skimage_photos("test")


def test_mixed_source_shares_and_order():
    sid = [f"sid{i}" for i in range(10)]
    syn = [f"syn{i}" for i in range(100)]
    mixed = MixedSource([sid, syn], [0.25, 0.75])
    items = [mixed[i] for i in range(len(mixed))]
    assert mixed.blocks == [34, 100] and len(mixed) == 134  # every synthetic record once
    assert set(items) == set(sid) | set(syn)
    assert sum(x.startswith("sid") for x in items) / len(items) == pytest.approx(0.25, abs=0.01)
    small = MixedSource([sid, syn[:5]], [0.5, 0.5])
    assert small.blocks == [10, 10] and sum(x.startswith("syn") for x in small) == 10
    assert MixedSource([sid, syn], [1.0, 0.0]).sources == [sid]
    with pytest.raises(IndexError):
        mixed[len(mixed)]
    with pytest.raises(JaxdarkError, match="weights"):
        MixedSource([sid], [-1.0])


def test_make_train_source_follows_the_config():
    c = synthetic_config.get_config("local")
    c.synthetic_variants = 2
    sid = ["sid-record"] * 5
    calls = []

    def sid_source():
        calls.append(1)
        return sid

    only = make_train_source(c, sid_source)  # no data_dir: synthetic only
    assert isinstance(only, SyntheticPairs) and not calls
    assert only.window == c.crop_size + 2 and only.seed == c.seed
    c.data_dir = "/data/SID"
    mixed = make_train_source(c, sid_source)
    assert isinstance(mixed, MixedSource) and mixed.weights == (0.5, 0.5) and calls
    c.synthetic_fraction = 1.0
    assert isinstance(make_train_source(c, sid_source), SyntheticPairs)
    c.synthetic_fraction = 0.0
    assert make_train_source(c, sid_source) is sid
    c.synthetic_fraction = 1.5
    with pytest.raises(JaxdarkError, match="synthetic_fraction"):
        make_train_source(c, sid_source)


def test_config_fields():
    full, local = synthetic_config.get_config(), synthetic_config.get_config("local")
    assert full.crop_size == 256 and local.crop_size == 128 and local.worker_count == 0
    from configs import sid_sony

    assert set(sid_sony.get_config()) <= set(full)  # every SID field is there
    cfg = synthesis_config(full)
    assert cfg.ratios == (100.0, 250.0, 300.0) and cfg.ratio_range is None
    full.synthetic_ratio_range = (100.0, 300.0)
    full.synthetic_read_noise_scale = 2.0
    cfg = synthesis_config(full)
    assert cfg.ratio_range == (100.0, 300.0) and cfg.read_noise_scale == 2.0
    with pytest.raises(ValueError, match="unknown variant"):
        synthetic_config.get_config("huge")


def test_bench_synthetic_smoke(capsys):
    from benchmarks.bench_synthetic import main

    cores = len(os.sched_getaffinity(0))
    assert main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "| wall time |" in out and "| CPU time |" in out
    rows = [line for line in out.splitlines() if line.startswith("| astronaut.png |")]
    assert len(rows) == 1
    mean_abs, *_ = (float(v) for v in rows[0].strip("| ").split(" | ")[1:])
    assert 0 < mean_abs < 0.02
    assert len(os.sched_getaffinity(0)) == cores  # the pinning was undone

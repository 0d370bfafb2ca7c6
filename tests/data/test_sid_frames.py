"""jaxdark.data.sid_frames: crop reads from exported frames give the TFDS records' batches,
resume, shard over processes, survive an interrupted export and refuse bad files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from jaxdark.data import sid
from jaxdark.data.pipeline import make_iterator
from jaxdark.data.sid_frames import SIDFrames, export_frames, is_exported
from jaxdark.errors import JaxdarkError
from jaxdark.imaging.amplifier import (
    amplification_from_sums,
    amplification_sums,
    estimate_amplification,
)
from tests.support.sid_fixture import prepare_fixture_dataset


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    return prepare_fixture_dataset(tmp_path_factory.mktemp("sid"))[1]


def _take(it, n):
    return [next(it) for _ in range(n)]


def _assert_equal(a, b):
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


@pytest.mark.parametrize("amplification", ["gt", "estimated"])
def test_frames_give_the_records_batches(tfds_dir, amplification):
    frames = SIDFrames("train", sid.frames_dir(tfds_dir))
    records = sid.SIDPairs("train", tfds_dir)
    assert len(frames) == len(records) == 5
    kw = dict(global_batch_size=2, crop_size=32, seed=3, amplification=amplification)
    kw.update(process_index=0, process_count=1)
    _assert_equal(_take(make_iterator(frames, **kw), 6), _take(make_iterator(records, **kw), 6))
    rec, ref = frames[2], records[2]
    assert isinstance(rec["mosaic"], np.memmap) and isinstance(rec["target"], np.memmap)
    for k in ("mosaic", "target", "black_levels", "ratio", "white_level"):
        np.testing.assert_array_equal(np.asarray(rec[k]), np.asarray(ref[k]))
    assert rec["short_file"] == ref["short_file"] and rec["pattern"] == ref["pattern"]


def test_amplification_sums_give_the_estimate():
    x = np.random.default_rng(0).random((64, 96), dtype=np.float32) * 0.02
    sums = amplification_sums(x)
    for m in (1.0, 5.0, 8.0):
        assert amplification_from_sums(*sums, m=m) == float(estimate_amplification(x, m))


def test_iterator_state_resumes_and_processes_share_batches(tfds_dir):
    frames = SIDFrames("train", sid.frames_dir(tfds_dir))
    kw = dict(global_batch_size=4, crop_size=32, seed=2)
    whole = _take(make_iterator(frames, process_index=0, process_count=1, **kw), 5)
    it = make_iterator(frames, process_index=0, process_count=1, **kw)
    _take(it, 2)
    resumed = make_iterator(frames, process_index=0, process_count=1, **kw)
    resumed.set_state(it.get_state())
    _assert_equal(whole[2:], _take(resumed, 3))
    parts = [
        _take(make_iterator(frames, process_index=p, process_count=2, **kw), 5) for p in (0, 1)
    ]
    for b, full in enumerate(whole):
        for k in full:
            np.testing.assert_array_equal(np.concatenate([parts[0][b][k], parts[1][b][k]]), full[k])


class _Interrupted(Exception):
    pass


def test_export_resumes_after_an_interruption(tfds_dir, tmp_path):
    complete = sid.frames_dir(tfds_dir)
    calls = {"n": 0}

    def flaky(split):
        records = sid.load_split(split, tfds_dir)

        class Source:
            def __len__(self):
                return len(records)

            def __getitem__(self, i):
                calls["n"] += 1
                if split == "train" and i == 3 and calls["n"] < 100:
                    raise _Interrupted
                return records[i]

        return Source()

    out = tmp_path / "frames"
    with pytest.raises(_Interrupted):
        export_frames(flaky, out)
    assert (out / "train" / "000002.json").is_file() and not (out / "train" / "index.json").exists()
    assert not is_exported(out)
    before = calls["n"]
    calls["n"] = 100
    export_frames(flaky, out)
    assert is_exported(out)
    # only the records not yet done were read again (train 3, 4 + validation 1 + test 2)
    assert calls["n"] - 100 == 2 + 1 + 2, before
    for split in ("ground_truth", "train", "validation", "test"):
        for f in sorted((complete / split).iterdir()):
            assert (out / split / f.name).read_bytes() == f.read_bytes(), f


def test_bad_frames_are_one_line_errors(tfds_dir, tmp_path):
    out = tmp_path / "frames"
    shutil.copytree(sid.frames_dir(tfds_dir), out)
    npy = out / "train" / "000001.npy"
    npy.write_bytes(npy.read_bytes()[:1000])  # truncated
    frames = SIDFrames("train", out)
    with pytest.raises(JaxdarkError, match=r"000001\.npy: cannot read the SID frame") as e:
        frames[1]
    assert "\n" not in str(e.value)
    meta = out / "train" / "000002.json"
    info = json.loads(meta.read_text())
    meta.write_text(json.dumps({**info, "shape": [8, 8]}))
    with pytest.raises(JaxdarkError, match=r"000002\.npy: frame is uint16 \(96, 128\), expected"):
        frames[2]
    frames[0]  # the others still read
    shutil.rmtree(out / "ground_truth")
    with pytest.raises(FileNotFoundError, match="not exported"):
        SIDFrames("train", out)

"""jaxdark.data.sid: the TFDS builder on a generated SID-layout folder (no TensorFlow)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import rawpy

from jaxdark.data import sid
from jaxdark.errors import JaxdarkError
from tests.support.sid_fixture import DEFAULT_SCENES, make_sid_tree, prepare_fixture_dataset


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return prepare_fixture_dataset(tmp_path_factory.mktemp("sid"))


def _list(root, name):
    return [line.split()[:2] for line in (root / name).read_text().splitlines() if line]


def test_no_tensorflow_needed(built):
    assert "tensorflow" not in sys.modules


def test_splits_follow_the_list_files(built):
    root, tfds_dir = built
    for split, list_name in sid.LIST_FILES.items():
        pairs = sid.SIDPairs(split, tfds_dir, with_target=False)
        expected = sorted(s[2:] for s, _ in _list(root, list_name))
        assert sorted(pairs[i]["short_file"] for i in range(len(pairs))) == expected


def test_ground_truth_is_stored_once_per_scene(built):
    _, tfds_dir = built
    gt = sid.load_split(sid.GT_SPLIT, tfds_dir)
    assert len(gt) == len(DEFAULT_SCENES)  # 6 long exposures for 8 pairs
    names = [gt[i]["long_file"].decode() for i in range(len(gt))]
    assert len(set(names)) == len(names)


def test_pair_record_content(built):
    root, tfds_dir = built
    pairs = sid.SIDPairs("train", tfds_dir)
    by_name = {pairs[i]["short_file"]: pairs[i] for i in range(len(pairs))}
    rec = by_name["Sony/short/00001_01_0.04s.ARW"]
    with rawpy.imread(str(root / rec["short_file"])) as raw:
        np.testing.assert_array_equal(rec["mosaic"], raw.raw_image_visible)
    with rawpy.imread(str(root / rec["long_file"])) as raw:
        gt = raw.postprocess(
            use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16
        )
    assert rec["target"].dtype == np.uint16 and rec["target"].shape == (96, 128, 3)
    np.testing.assert_array_equal(rec["target"], gt)
    assert rec["mosaic"].dtype == np.uint16
    assert rec["pattern"] == "RGGB"
    np.testing.assert_array_equal(rec["black_levels"], np.full((2, 2), 512, np.float32))
    assert rec["white_level"] == 16383
    assert rec["short_exposure"] == pytest.approx(0.04)
    assert rec["long_exposure"] == pytest.approx(10.0)
    assert rec["ratio"] == pytest.approx(250.0)
    assert (rec["iso"], rec["aperture"], rec["scene_id"], rec["shot"]) == (200, 5.0, 1, 1)
    # 10 s / 0.033 s = 303 is capped at 300
    assert by_name["Sony/short/00002_00_0.033s.ARW"]["ratio"] == pytest.approx(300.0)


def test_bad_and_missing_files_are_left_out_and_reported(tmp_path):
    root = make_sid_tree(tmp_path / "SID")
    (root / "Sony/short/00001_00_0.1s.ARW").write_bytes(b"not a raw file")
    (root / "Sony/long/10002_00_30s.ARW").unlink()
    builder = sid.prepare(root, tmp_path / "tfds")
    assert len(builder.skipped) == 2
    assert any("00001_00_0.1s.ARW" in s for s in builder.skipped)
    assert any("10002_00_30s.ARW" in s and "pairs are left out" in s for s in builder.skipped)
    assert len(sid.SIDPairs("train", tmp_path / "tfds")) == 4
    test = sid.SIDPairs("test", tmp_path / "tfds")
    assert len(test) == 1 and test[0]["target"].shape == (96, 128, 3)


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Sony_train_list.txt"):
        sid.prepare(tmp_path, tmp_path / "tfds")
    with pytest.raises(FileNotFoundError, match="not prepared"):
        sid.SIDPairs("train", tmp_path / "nothing")
    with pytest.raises(ValueError, match="unknown SID pair split"):
        sid.SIDPairs("ground_truth", tmp_path)
    with pytest.raises(JaxdarkError, match="SID file name"):
        sid.parse_exposure_name("00001_00.ARW")
    bad = tmp_path / "list.txt"
    bad.write_text("./Sony/short/00001_00_0.1s.ARW\n")
    with pytest.raises(JaxdarkError, match="list.txt:1"):
        sid.parse_list_file(bad)


def test_parse_list_line(tmp_path):
    f = tmp_path / "l.txt"
    f.write_text("./Sony/short/00001_00_0.04s.ARW ./Sony/long/00001_00_10s.ARW ISO200 F8\n\n")
    (p,) = sid.parse_list_file(f)
    assert p.short_file == "Sony/short/00001_00_0.04s.ARW"
    assert (p.scene_id, p.shot, p.iso, p.aperture) == (1, 0, 200, 8.0)
    assert p.ratio == pytest.approx(250.0)


def test_command_line(tmp_path, capsys):
    root = make_sid_tree(tmp_path / "SID")
    assert sid.main(["--manual_dir", str(root), "--tfds_dir", str(tmp_path / "t")]) == 0
    assert "train: 5 records" in capsys.readouterr().out
    assert sid.main(["--manual_dir", str(tmp_path / "nope")]) == 2
    assert "SID folder not found" in capsys.readouterr().err

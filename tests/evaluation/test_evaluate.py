"""Tests for jaxdark.evaluation and eval.py on a generated SID-layout dataset."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import ml_collections
import numpy as np
import pytest
import rawpy
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from convert_weights.reference_amplifier import reference_amplification
from jaxdark import evaluation as ev
from jaxdark.data.sid_files import SIDPair, ratio_key, read_pair_list
from jaxdark.evaluation.reports import format_table, summarize
from jaxdark.evaluation.scoring import PairResult, PairScorer
from jaxdark.evaluation.sources import RawFolderSource
from tests.support.paths import REPO_ROOT
from tests.support.sid_fixture import BLACK_LEVEL, WHITE_LEVEL, FixtureScene, make_sid_tree
from tests.support.tensorboard_events import read_events

# x100 and x250 (scene 10001), x300 from 303 (10034, one of the misaligned scenes),
# x300 (10002); two validation pairs; one training pair (the TFDS builder needs all lists).
SCENES = (
    FixtureScene(10001, "test", 10.0, (0.1, 0.04)),
    FixtureScene(10034, "test", 10.0, (0.033,)),
    FixtureScene(10002, "test", 30.0, (0.1,)),
    FixtureScene(20001, "val", 10.0, (0.1,)),
    FixtureScene(20002, "val", 10.0, (0.04,)),
    FixtureScene(1, "train", 10.0, (0.1,)),
)
HEIGHT, WIDTH = 64, 96


@pytest.fixture(scope="module")
def sid_root(tmp_path_factory) -> Path:
    return make_sid_tree(
        tmp_path_factory.mktemp("sid") / "SID", height=HEIGHT, width=WIDTH, scenes=SCENES
    )


@pytest.fixture(scope="module")
def model():
    from jaxdark import create_model

    return create_model(seed=3)


@pytest.fixture(scope="module")
def weights(tmp_path_factory, model) -> Path:
    """The test model as a converted (orbax) checkpoint."""
    from jaxdark.weights.convert import save_converted

    path = tmp_path_factory.mktemp("weights") / "converted"
    save_converted(model, path)
    return path


def _config(root: Path, **kw) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict(
        dict(
            data_dir=str(root),
            tfds_data_dir="",
            eval_source="raw",
            eval_split="test",
            amplification="gt",
            m=5.0,
            drop_misaligned=False,
            eval_tile_size=0,
            eval_tile_overlap=128,
            validation_split="val",
            num_eval_pairs=4,
            model=dict(features=64, growth=32, dense_layers=(4, 5, 5)),
        )
    )
    c.update(kw)
    return c


def _list_lines(root: Path, split: str = "test") -> list[list[str]]:
    name = {"val": "Sony_val_list.txt"}.get(split, f"Sony_{split}_list.txt")
    return [ln.split() for ln in (root / name).read_text().splitlines() if ln.strip()]


def _rows(out_dir: Path) -> list[dict[str, str]]:
    with open(out_dir / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def _gt8_independent(path: Path) -> np.ndarray:
    with rawpy.imread(str(path)) as raw:
        gt = raw.postprocess(
            use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16
        )
    return (np.clip(np.float32(gt / 65535.0), 0, 1) * 255).astype(np.uint8)


def _png(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.dtype == np.uint8 and img.shape[2] == 3
    return img[..., ::-1]


def _mosaic_independent(path: Path) -> np.ndarray:
    with rawpy.imread(str(path)) as raw:
        data = raw.raw_image_visible.astype(np.float32)
    return np.maximum(data - BLACK_LEVEL, 0) / np.float32(WHITE_LEVEL - BLACK_LEVEL)


# ---------------------------------------------------------------------------------------
# list files, ratios, summaries


def _ratio(short: float, long: float) -> float:
    return SIDPair("s", "l", 1, 0, short, long, 100, 8.0).ratio


def test_ratio_and_groups():
    assert _ratio(0.1, 10) == pytest.approx(100)
    assert _ratio(0.04, 10) == pytest.approx(250)
    assert _ratio(0.033, 10) == 300.0  # 303 capped
    assert ratio_key(_ratio(0.1, 30)) == "x300"
    assert ratio_key(_ratio(0.04, 10)) == "x250"


def test_read_pair_list_and_drop_misaligned(sid_root):
    pairs = read_pair_list(sid_root, "test")
    assert [p.short_file for p in pairs] == [
        ln[0].removeprefix("./") for ln in _list_lines(sid_root)
    ]
    assert [p.scene_id for p in pairs] == [10001, 10001, 10034, 10002]
    assert [p.ratio for p in pairs] == pytest.approx([100, 250, 300, 300])
    assert pairs[0].long_file == "Sony/long/10001_00_10s.ARW"
    assert pairs[0].stem == "10001_00_0.1s"
    kept = read_pair_list(sid_root, "test", drop_misaligned=True)
    assert [p.scene_id for p in kept] == [10001, 10001, 10002]
    assert len(read_pair_list(sid_root, "val")) == 2


def test_read_pair_list_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Sony_val_list.txt"):
        read_pair_list(tmp_path, "val")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        read_pair_list(tmp_path, "dev")
    (tmp_path / "Sony_test_list.txt").write_text("./Sony/short/1_00.ARW ./Sony/long/1_00_10s.ARW\n")
    with pytest.raises(Exception, match=r"1_00.ARW: expected a SID file name"):
        read_pair_list(tmp_path, "test")


def _result(ratio, psnr, ssim, error=""):
    pair = SIDPair("Sony/short/a_00_1s.ARW", "Sony/long/a_00_10s.ARW", 1, 0, 10 / ratio, 10.0, 0, 0)
    return PairResult(pair, ratio, psnr, ssim, 0.5, 1.0, error)


def test_summarize_groups_by_ratio():
    rs = [
        _result(100, 30.0, 0.8),
        _result(100, 32.0, 0.9),
        _result(250, 25.0, 0.7),
        _result(300, float("nan"), float("nan"), "x: missing"),
    ]
    s = summarize(rs)
    assert s["overall"]["pairs"] == 3
    assert s["overall"]["psnr"] == pytest.approx(29.0)
    assert s["per_ratio"]["x100"]["psnr"] == pytest.approx(31.0)
    assert s["per_ratio"]["x100"]["ssim"] == pytest.approx(0.85)
    assert s["per_ratio"]["x250"]["pairs"] == 1
    assert s["per_ratio"]["x300"]["pairs"] == 0 and s["per_ratio"]["x300"]["psnr"] is None
    assert list(s["per_ratio"]) == ["x100", "x250", "x300"]
    assert s["failed"] == [{"input": "Sony/short/a_00_1s.ARW", "error": "x: missing"}]
    table = format_table(s)
    assert "x100" in table and "31.000" in table and "failed: 1 pair(s)" in table
    json.dumps(s, allow_nan=False)  # valid strict JSON


# ---------------------------------------------------------------------------------------
# whole runs


def _check_metrics_from_files(root: Path, out_dir: Path, rows: list[dict[str, str]]) -> None:
    """Recompute PSNR/SSIM from the saved PNGs and independently developed ground truth."""
    for row in rows:
        out8 = _png(out_dir / "images" / f"{Path(row['input']).stem}.png")
        gt8 = _gt8_independent(root / row["ground_truth"])
        assert out8.shape == gt8.shape == (HEIGHT, WIDTH, 3)
        assert float(row["psnr"]) == pytest.approx(peak_signal_noise_ratio(gt8, out8), abs=1e-5)
        assert float(row["ssim"]) == pytest.approx(
            structural_similarity(gt8, out8, channel_axis=-1), abs=1e-5
        )


def test_evaluate_gt_amplification(sid_root, weights, model, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="jaxdark")
    summary = ev.evaluate(_config(sid_root), tmp_path, weights)
    out_dir = tmp_path / "eval_test_gt"
    rows = _rows(out_dir)
    lines = _list_lines(sid_root)
    assert len(rows) == len(lines) == 4
    assert [r["input"] for r in rows] == [ln[0].removeprefix("./") for ln in lines]
    assert all(r["error"] == "" for r in rows)
    assert [float(r["amplification"]) for r in rows] == pytest.approx([100, 250, 300, 300])
    assert [float(r["ratio"]) for r in rows] == [float(r["amplification"]) for r in rows]
    assert all(float(r["seconds"]) > 0 for r in rows)
    _check_metrics_from_files(sid_root, out_dir, rows)

    # the restoration is the Restorer's, with the exposure ratio as amplification
    from jaxdark import Restorer

    row = rows[1]
    x = _mosaic_independent(sid_root / row["input"])
    expected = (Restorer(model).restore(x, amplification=250.0) * 255).astype(np.uint8)
    got = _png(out_dir / "images" / f"{Path(row['input']).stem}.png")
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert np.mean(got != expected) < 1e-3

    # summary: means overall and per ratio, equal to the CSV's
    on_disk = json.loads((out_dir / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["evaluated"] == 4 and on_disk["failed"] == []
    assert on_disk["pairs_listed"] == 4 and on_disk["weights"] == str(weights)
    assert on_disk["wall_seconds"] >= sum(float(r["total_seconds"]) for r in rows)
    psnrs = np.array([float(r["psnr"]) for r in rows])
    assert on_disk["overall"]["psnr"] == pytest.approx(psnrs.mean(), abs=1e-5)
    assert on_disk["per_ratio"]["x300"]["psnr"] == pytest.approx(psnrs[2:].mean(), abs=1e-5)
    assert on_disk["per_ratio"]["x100"]["pairs"] == 1
    assert set(on_disk["per_ratio"]) == {"x100", "x250", "x300"}
    printed = caplog.text
    assert "PSNR (dB)" in printed and "x250" in printed


def test_evaluate_estimated_amplification(sid_root, weights, tmp_path):
    config = _config(sid_root, amplification="estimated", m=5.0, drop_misaligned=True)
    summary = ev.evaluate(config, tmp_path, weights)
    out_dir = tmp_path / "eval_test_estimated_m5"
    rows = _rows(out_dir)
    assert len(rows) == 3  # 10034 dropped
    assert all("10034" not in r["input"] for r in rows)
    for r in rows:
        ref = reference_amplification(_mosaic_independent(sid_root / r["input"]), 5.0)
        assert float(r["amplification"]) == pytest.approx(ref, rel=1e-5)
        assert float(r["amplification"]) != pytest.approx(float(r["ratio"]))
    _check_metrics_from_files(sid_root, out_dir, rows)
    assert summary["amplification"] == "estimated" and summary["m"] == 5.0
    assert summary["drop_misaligned"] is True


def _damage(root: Path) -> tuple[str, str, str]:
    """Remove one input, corrupt another, and corrupt the ground truth of a third scene."""
    missing = "Sony/short/10001_00_0.1s.ARW"
    (root / missing).unlink()
    corrupt = "Sony/short/10001_01_0.04s.ARW"
    data = (root / corrupt).read_bytes()
    (root / corrupt).write_bytes(data[:300])
    bad_gt = "Sony/long/10034_00_10s.ARW"
    (root / bad_gt).write_bytes(b"not a raw file at all" * 10)
    return missing, corrupt, bad_gt


def test_missing_and_corrupt_files_are_reported_by_name(sid_root, weights, tmp_path):
    root = tmp_path / "SID"
    shutil.copytree(sid_root, root)
    missing, corrupt, bad_gt = _damage(root)
    workdir = tmp_path / "work"
    cmd = [
        sys.executable,
        "eval.py",
        "--config=configs/sid_sony.py",
        f"--workdir={workdir}",
        f"--weights={weights}",
        f"--config.data_dir={root}",
        "--config.eval_tile_size=0",
    ]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "Traceback" not in output
    rows = _rows(workdir / "eval_test_gt")
    assert len(rows) == len(_list_lines(root)) == 4
    by_input = {r["input"]: r for r in rows}
    assert missing in by_input[missing]["error"]
    assert corrupt in by_input[corrupt]["error"]
    assert bad_gt in by_input["Sony/short/10034_00_0.033s.ARW"]["error"]
    for name in (missing, corrupt, bad_gt):
        assert name in output
    good = by_input["Sony/short/10002_00_0.1s.ARW"]
    assert good["error"] == "" and float(good["psnr"]) > 0
    _check_metrics_from_files(root, workdir / "eval_test_gt", [good])
    summary = json.loads((workdir / "eval_test_gt" / "summary.json").read_text())
    assert summary["evaluated"] == 1 and len(summary["failed"]) == 3
    assert not (workdir / "eval_test_gt" / "images" / "10001_00_0.1s.png").exists()


def test_eval_cli_bad_weights_one_line(sid_root, tmp_path):
    cmd = [
        sys.executable,
        "eval.py",
        "--config=configs/sid_sony.py",
        f"--workdir={tmp_path}",
        f"--config.data_dir={sid_root}",
    ]
    proc = subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "no training checkpoints" in proc.stderr and "--weights" in proc.stderr


def test_default_weights_are_the_latest_training_checkpoint(sid_root, weights, model, tmp_path):
    from jaxdark.training.checkpointing import Checkpointer
    from jaxdark.training.optim import make_optimizer
    from jaxdark.training.step import init_train_state, split_model

    _, params = split_model(model)
    tx, _ = make_optimizer()
    state = init_train_state(params, tx)
    ckpt = Checkpointer(tmp_path / "checkpoints", every_steps=1, async_save=False)
    ckpt.save(7, dataclasses.replace(state, step=np.int32(7)), None)
    ckpt.close()
    config = _config(sid_root, drop_misaligned=True)
    (tmp_path / "config.json").write_text(config.to_json_best_effort())
    summary = ev.evaluate(config, tmp_path, None)
    assert "newest step" in summary["weights"]
    step_dir = ev.evaluate(config, tmp_path / "by_step", tmp_path / "checkpoints" / "7")
    assert "step 7" in step_dir["weights"]
    from jaxdark.errors import CheckpointError

    other_arch = _config(sid_root, model=dict(features=32, growth=16, dense_layers=(4, 5, 5)))
    (tmp_path / "config.json").write_text(other_arch.to_json_best_effort())
    with pytest.raises(CheckpointError, match="shape"):
        ev.evaluate(other_arch, tmp_path, None)
    from_converted = ev.evaluate(config, tmp_path / "other", weights)
    assert [r["psnr"] for r in _rows(tmp_path / "eval_test_gt")] == [
        r["psnr"] for r in _rows(tmp_path / "other" / "eval_test_gt")
    ]
    assert summary["overall"] == {
        **from_converted["overall"],
        **{k: summary["overall"][k] for k in ("seconds", "total_seconds")},
    }


def test_tfds_source_matches_raw_source(sid_root, weights, tmp_path):
    from jaxdark.data import sid

    sid.prepare(sid_root, tmp_path / "tfds")
    config = _config(sid_root, eval_source="tfds", tfds_data_dir=str(tmp_path / "tfds"))
    ev.evaluate(config, tmp_path / "tfds_run", weights)
    ev.evaluate(_config(sid_root), tmp_path / "raw_run", weights)
    tf_rows = _rows(tmp_path / "tfds_run" / "eval_test_gt")
    raw_rows = _rows(tmp_path / "raw_run" / "eval_test_gt")
    keys = ("input", "ground_truth", "ratio", "amplification", "psnr", "ssim", "error")
    assert [[r[k] for k in keys] for r in tf_rows] == [[r[k] for k in keys] for r in raw_rows]


def test_tfds_source_reports_pairs_left_out(sid_root, weights, tmp_path):
    from jaxdark.data import sid

    root = tmp_path / "SID"
    shutil.copytree(sid_root, root)
    corrupt = "Sony/short/10001_01_0.04s.ARW"
    (root / corrupt).write_bytes(b"garbage" * 50)
    sid.prepare(root, tmp_path / "tfds")  # leaves the corrupt pair out
    config = _config(root, eval_source="tfds", tfds_data_dir=str(tmp_path / "tfds"))
    summary = ev.evaluate(config, tmp_path / "run", weights)
    rows = _rows(tmp_path / "run" / "eval_test_gt")
    assert len(rows) == 4
    assert [r["input"] for r in rows if r["error"]] == [corrupt]
    assert corrupt in rows[1]["error"] and "not in the prepared test split" in rows[1]["error"]
    assert summary["evaluated"] == 3


def test_evaluator_for_training(sid_root, model):
    evaluator = ev.Evaluator(_config(sid_root, eval_tile_size=0))
    assert [p.scene_id for p, _ in evaluator.items] == [20001, 20002]
    values = dict(evaluator.run(model))
    assert set(values) == {"psnr", "ssim", "psnr_x100", "ssim_x100", "psnr_x250", "ssim_x250"}
    # the same numbers as a full evaluation of the validation split
    from jaxdark import Restorer

    scorer = PairScorer(RawFolderSource(sid_root), Restorer(model), "gt")
    results = [scorer.score(p)[0] for p in read_pair_list(sid_root, "val")]
    assert values["psnr_x100"] == pytest.approx(results[0].psnr, abs=1e-9)
    assert values["ssim"] == pytest.approx(np.mean([r.ssim for r in results]), abs=1e-9)
    # a second run reuses the compiled functions and gives the same values
    assert dict(evaluator.run(model)) == values


@pytest.mark.slow
def test_validation_during_training(tmp_path):
    """train_and_evaluate logs val/psnr and val/ssim every eval_every_steps."""
    from configs.sid_sony import get_config
    from jaxdark.training.loop import train_and_evaluate

    root = make_sid_tree(tmp_path / "SID", height=HEIGHT, width=WIDTH, scenes=SCENES)
    c = get_config("local")
    c.data_dir, c.tfds_data_dir = str(root), str(tmp_path / "tfds")
    c.crop_size, c.batch_size, c.num_train_steps = 32, 2, 2
    c.checkpoint_every_steps, c.log_every_steps, c.image_every_steps = 2, 1, 0
    c.eval_every_steps, c.num_eval_pairs = 1, 2
    train_and_evaluate(c, tmp_path / "work")
    scalars = read_events(tmp_path / "work" / "tensorboard")
    for tag in ("val/psnr", "val/ssim", "val/psnr_x100", "val/psnr_x250"):
        assert [s for s, _ in scalars[tag]] == [1, 2], tag
    assert all(np.isfinite(v) and v > 0 for _, v in scalars["val/psnr"])
    assert all(0 < v < 1 for _, v in scalars["val/ssim"])
    assert scalars["val/psnr"][0][1] != scalars["val/psnr"][1][1]  # the model changed


def test_official_weights(sid_root, official_weights, tmp_path):
    """The official .pth is read directly (no conversion step)."""
    summary = ev.evaluate(_config(sid_root, eval_split="val"), tmp_path, official_weights)
    rows = _rows(tmp_path / "eval_val_gt")
    assert len(rows) == 2 and all(r["error"] == "" for r in rows)
    assert summary["weights"] == str(official_weights)
    _check_metrics_from_files(sid_root, tmp_path / "eval_val_gt", rows)

"""``benchmarks.learning`` end to end at smoke size: both runs through the real training
loop, the held-out evaluator wired into it, and the plot / tables it writes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from benchmarks.learning import main, markdown, parse_args, read_scalars, tables, write_records
from benchmarks.lineplot import Series, grid, line_chart, nice_ticks
from benchmarks.results_io import RESULTS_DIR, read_results
from tests.support.tiny_model import save_tiny


@pytest.mark.slow  # the training step compiles (~45-80 s on a busy 2-core machine)
def test_smoke_run_writes_plot_and_tables(tmp_path, capsys):
    init, other = save_tiny(tmp_path / "init", seed=0), save_tiny(tmp_path / "other", seed=1)
    out, work = tmp_path / "out", tmp_path / "work"
    argv = [
        "--smoke",
        "--init-weights",
        str(init),
        "--weights",
        str(other),
        "--compile-cache",
        "off",
    ]
    assert main([*argv, "--out", str(out), "--workdir", str(work)]) == 0
    r = json.loads((out / "learning.json").read_text())
    a, b = r["scratch"], r["finetune"]
    noisy, control = b["tuned_on_noisy"], b["tuned_on_original"]
    assert a["steps"] == 4 and noisy["steps"] == control["steps"] == 2
    # step 0 plus the loop's validation at steps 2 and 4 (same evaluator, same pairs)
    assert [s for s, _ in a["val_psnr"]] == [0, 2, 4]
    assert [s for s, _ in noisy["val_psnr"]] == [0, 1, 2]
    assert [s for s, _ in a["loss"]] == [1, 2, 3, 4]
    assert len(a["pairs"]) == 3 and all(np.isfinite(v) for _, v in a["val_psnr"])
    # the loop's last validation is the fine-tuned checkpoint scored by the benchmark,
    # each run on its own camera
    assert noisy["val_psnr"][-1][1] == pytest.approx(noisy["noisy"]["psnr"], abs=1e-6)
    assert control["val_psnr"][-1][1] == pytest.approx(control["original"]["psnr"], abs=1e-6)
    assert b["official"]["original"] == a["official"]
    # the noisier camera makes naive brightening worse on the same photos
    assert b["naive"]["noisy"]["psnr"] < b["naive"]["original"]["psnr"]
    image = cv2.imread(str(out / "learning.png"))
    assert image is not None and image.shape[0] > 400 and image.std() > 10
    text = (out / "learning.md").read_text()
    assert "| naive brightening (same pairs) |" in text and text == markdown(r)
    assert "control: fine-tuned on the original camera" in text
    assert "(b) Fine-tuning the official weights" in capsys.readouterr().out
    assert (work / "scratch" / "checkpoints").is_dir()  # real training runs
    assert (work / "finetune_original" / "checkpoints").is_dir()
    # redrawing from the JSON gives the same tables, without training
    again = tmp_path / "again"
    assert main(["--from-json", str(out / "learning.json"), "--out", str(again)]) == 0
    assert (again / "learning.md").read_text() == text
    # the measuring run also wrote the docs' records; a redraw writes none
    assert read_results("learning_scratch", out)["rows"] == tables(r)[0][1]
    assert not (again / "learning_scratch.json").exists()


def test_flags():
    with pytest.raises(SystemExit):
        parse_args(["--smoke"])  # needs small networks
    with pytest.raises(SystemExit):
        parse_args(["--scratch-steps", "0"])
    args = parse_args([])
    assert args.scratch_steps == 2000 and args.read_noise_scale == 4.0 and args.val_pairs == 9
    assert args.control and not parse_args(["--no-control"]).control


def test_read_scalars(tmp_path):
    from tensorboardX import SummaryWriter

    with SummaryWriter(logdir=str(tmp_path)) as w:
        for step in (1, 2, 3):
            w.add_scalar("train/loss", 1.0 / step, step)
        w.add_image("train/crop_0", np.zeros((4, 4, 3), np.float32), 3, dataformats="HWC")
    got = read_scalars(tmp_path)
    assert list(got) == ["train/loss"]
    assert got["train/loss"] == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]


def test_line_chart():
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(13.2, 24.9) == [14.0, 16.0, 18.0, 20.0, 22.0, 24.0]
    lines = [
        Series("a", [0, 10, 20], [1.0, 0.5, 0.2], "blue"),
        Series("b", [0, 20], [0.3, 0.3], "grey", dashed=True),
    ]
    chart = line_chart(lines, title="t", xlabel="step", ylabel="loss", size=(400, 300), log_y=True)
    kw = {"title": "t", "xlabel": "step", "ylabel": "loss", "size": (400, 300), "log_y": True}
    lower = line_chart(lines, legend="lower right", **kw)
    assert lower.shape == chart.shape and not np.array_equal(chart, lower)  # legend moved
    assert chart.shape == (300, 400, 3) and chart.dtype == np.uint8
    blue = np.all(chart == (0, 114, 178), axis=-1)
    assert blue.sum() > 100  # the line is drawn in its colour
    assert grid([chart, chart, chart], cols=2).shape == (600, 800, 3)
    with pytest.raises(ValueError, match="no finite points"):
        line_chart([Series("x", [0], [float("nan")])], title="e", xlabel="", ylabel="")


def test_records_of_the_recorded_run_match_the_docs_tables(tmp_path):
    """The recorded run, written as `results_io` records, gives the tables the docs show."""
    r = json.loads((RESULTS_DIR / "raw" / "learning.json").read_text())
    write_records(r, tmp_path)
    for name in ("learning_scratch", "learning_finetune"):
        new, recorded = read_results(name, tmp_path), read_results(name, RESULTS_DIR)
        assert new["columns"] == recorded["columns"] and new["rows"] == recorded["rows"]
        assert new["date"] and new["machine"] and new["command"]

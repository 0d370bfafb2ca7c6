"""``python -m benchmarks.gpu_check --smoke`` runs every section on the CPU and writes its files;
the harness records a failing section and goes on, stops at its watchdog, and takes a
benchmark's ``gpu_rows`` function as a section."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading

import pytest

from benchmarks.gpu_check import harness
from benchmarks.gpu_check.check import JSON_NAME, MD_NAME, Check, Profile, render_markdown
from benchmarks.gpu_check.harness import rows_section, section_names
from benchmarks.results_io import read_results
from tests.support.paths import REPO_ROOT


@pytest.mark.slow
def test_smoke_run_writes_every_section(tmp_path, official_weights):
    out = tmp_path / "gpu"
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--smoke", "--out", str(out),
           "--weights", str(official_weights)]  # fmt: skip
    r = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    res = json.loads((out / JSON_NAME).read_text())
    assert res["mode"] == "smoke" and res["finished"] is True
    sections = res["sections"]
    assert list(sections) == section_names()
    for name, entry in sections.items():
        assert entry["status"] == "ok", (name, entry.get("error"), entry.get("skipped"))
        assert entry["rows"], name
    env = sections["env"]
    assert env["versions"]["jax"] and env["torch"]["device"] in ("cpu", "cuda")
    (case,) = sections["parity"]["cases"]
    assert case["fast_vs_torch"] <= 1e-5 and case["model_vs_torch"] <= 1e-5
    assert sections["parity"]["all_within_1e-5"] is True
    configs = {r["config"] for r in sections["restore_4k"]["results"]}
    assert configs == {"fp32-highest", "fp32-default", "bf16"}
    for r in sections["restore_4k"]["results"]:
        assert r["fps"] > 0 and r["latency_median_s"] > 0 and r["compile_s"] >= 0
        assert r["xla_temp_bytes"] > 0
    assert set(sections["restore_4k"]["best"]) == configs
    assert sections["restore_4k"]["nnx_bf16"]["fps"] > 0
    assert 0 < sections["restore_4k"]["errors_vs_fp32_highest"]["bf16"]["max_abs"] < 0.05
    runs = sections["train"]["runs"]
    assert {"jaxdark bfloat16", "PyTorch reference fp32"} <= set(runs)
    assert all(run["step_s"] > 0 for run in runs.values())
    assert sections["train"]["speedup_vs_torch_fp32"]["jaxdark bfloat16"] > 0
    cold, warm = sections["memory"]["probes"]  # compiled in the process, then cached
    assert (cold["phase"], cold["cache_hits"], warm["phase"]) == ("cold", 0, "warm")
    assert warm["cache_hits"] >= 1 and warm["xla_temp_bytes"] > 0
    settings = [p["setting"] for p in sections["concurrency"]["probes"]]
    assert settings[0] == "default" and len(settings) == 4
    assert all(p["ms"]["bfloat16"] > 0 for p in sections["concurrency"]["probes"] if "ms" in p)
    assert sections["amplifier"]["rel_diff"] < 1e-5
    assert len(sections["bf16_error"]["rows_bf16"]) == 6
    md = (out / MD_NAME).read_text()
    assert all(f"## {name}: ok" in md for name in section_names())
    amp = read_results("gpu_amplifier", out / "results")  # the recorded-results format
    assert amp["columns"] == ["quantity", "value", "notes"]
    assert amp["rows"] == sections["amplifier"]["rows"] and "smoke run" in amp["notes"]


def test_a_failing_section_is_recorded_and_the_run_goes_on(tmp_path):
    profile = Profile(
        name="unit", restore=(64, 64), sony=(64, 64), batches=(1,), repeats=1, parity=(),
        demo=(64, 64), amp=(64, 64), train_batch=2, train_crop=32, train_steps=1,
        train_net=None, memory_probes=(), budget_s=60.0,
    )  # fmt: skip
    check = Check(tmp_path, profile, 60.0)

    def failing(check, entry):
        check.row(entry, "before the failure", 1)
        raise RuntimeError("boom\nsecond line")

    def fine(check, entry):
        check.row(entry, "measured", "2 ms", "note")

    check.run_section("a", failing, 10.0)
    check.run_section("b", fine, 10.0)
    res = json.loads((tmp_path / JSON_NAME).read_text())
    a, b = res["sections"]["a"], res["sections"]["b"]
    assert a["status"] == "error" and a["error"] == "RuntimeError: boom"
    assert a["rows"] == [["before the failure", "1", ""]] and "boom" in a["traceback"]
    assert b["status"] == "ok" and b["rows"] == [["measured", "2 ms", "note"]]
    md = render_markdown(res)
    assert "## a: error" in md and "Error: `RuntimeError: boom`" in md
    assert "| measured | 2 ms | note |" in md
    check.deadline = check.t0  # the run's budget is spent: later sections are skipped
    check.run_section("c", fine)
    assert check.results["sections"]["c"]["status"] == "skipped"
    shutil.rmtree(check.tmpdir)


def test_watchdog_writes_the_files_and_exits(tmp_path, monkeypatch):
    profile = Profile(
        name="unit", restore=(64, 64), sony=(64, 64), batches=(1,), repeats=1, parity=(),
        demo=(64, 64), amp=(64, 64), train_batch=2, train_crop=32, train_steps=1,
        train_net=None, memory_probes=(), budget_s=0.0,
    )  # fmt: skip
    check = Check(tmp_path, profile, 0.0)
    check.results["current_section"] = "train"
    codes, exited = [], threading.Event()
    monkeypatch.setattr(harness.os, "_exit", lambda code: (codes.append(code), exited.set()))
    harness.watchdog(check, grace_s=0.0)  # fires after 1 s
    assert exited.wait(30)
    res = json.loads((tmp_path / JSON_NAME).read_text())
    assert codes == [3] and "during section 'train'" in res["watchdog"]
    shutil.rmtree(check.tmpdir)


def gpu_rows(smoke: bool, repeats: int, time_left_s: float) -> list[tuple[str, str, str]]:
    """A benchmark's GPU rows, as the sections made by `rows_section` call them."""
    return [("smoke", str(smoke), f"repeats {repeats}"), ("time left", f"{time_left_s:.0f} s", "")]


def needs_more(size: int) -> list[tuple[str, str, str]]:
    return [("size", str(size), "")]


def test_a_gpu_rows_function_is_a_section_in_one_line(tmp_path):
    from benchmarks.gpu_check.check import PROFILES

    check = Check(tmp_path, PROFILES["smoke"], 60.0)
    section = rows_section("mine", __name__, {"smoke": 30})
    entry = check.run_section(section.name, section.run, section.budget("smoke"))
    assert entry["status"] == "ok", entry.get("error")
    assert entry["rows"][0] == ["smoke", "True", "repeats 1"]
    assert 0 < float(entry["rows"][1][1].split()[0]) <= 30
    assert entry["source"] == f"{__name__}.gpu_rows"
    bad = rows_section("bad", __name__, {}, function="needs_more")
    entry = check.run_section(bad.name, bad.run, bad.budget("smoke"))
    assert entry["status"] == "error" and "needs ['size']" in entry["error"]
    shutil.rmtree(check.tmpdir)

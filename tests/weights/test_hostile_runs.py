"""Training runs as weights, hostile and careless: damaged newest steps, garbage or
malicious model records, a planted module, NaN parameters; and export of runs.

All CLI cases run in one worker process under an address-space limit
(`tests.support.hostile.run_cases`); the planted-module case runs ``python -m jaxdark``
from inside the run folder, as the attack needs.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.support.hostile import Case, Expect, check_command, run_cases
from tests.support.runs import make_run, truncate_step

MARKER = "HOSTILE_MARKER"
ZEN = "Beautiful is better than ugly"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("runs")
    good = make_run(tmp / "good", steps=(1, 2))
    found = {"good": good}

    def variant(name: str) -> Path:
        found[name] = shutil.copytree(good, tmp / name)
        return found[name]

    truncate_step(variant("truncated"), 2)
    both = variant("all_truncated")
    truncate_step(both, 1)
    truncate_step(both, 2)
    (variant("garbage_record") / "checkpoints" / "2" / "model" / "metadata").write_bytes(
        b"\xff\xfe\x00garbage"
    )
    for name, record in (("this_record", "this:lamba2021"), ("planted", "evil:lamba2021")):
        run = variant(name)
        path = run / "checkpoints" / "2" / "model" / "metadata"
        spec = json.loads(path.read_text())
        path.write_text(json.dumps({**spec, "name": record}))
    (found["planted"] / "evil.py").write_text(
        f"import pathlib\npathlib.Path({MARKER!r}).write_text('ran')\n"
        "from jaxdark.models.lamba2021 import DarkRestorationNet  # noqa\n"
    )
    found["nan"] = make_run(tmp / "nan", steps=(1, 2), nan_steps=(2,))
    return found


def test_runs_as_hostile_weights(runs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    step2 = runs["truncated"] / "checkpoints" / "2"
    record = runs["garbage_record"] / "checkpoints" / "2" / "model" / "metadata"
    this = runs["this_record"] / "checkpoints" / "2" / "model" / "metadata"

    def export(src, name: str, *extra: str) -> dict:
        return {"cli": ["export", str(src), str(out / name), *extra]}

    ok = Expect(exit_code=0, stderr_lines=None)
    cases = [
        Case("export run", export(runs["good"], "run.onnx"), ok),
        Case("export step dir", export(runs["good"] / "checkpoints" / "1", "step.onnx"), ok),
        Case(
            "export run stablehlo",
            export(runs["good"], "run.stablehlo", "--format", "stablehlo"),
            ok,
        ),
        Case(
            "truncated step named",
            export(step2, "step2.onnx"),
            Expect(names=(str(step2),), reason="damaged or incomplete checkpoint"),
        ),
        Case(
            "all steps truncated",
            export(runs["all_truncated"], "none.onnx"),
            Expect(stderr_lines=None, reason="no older step is readable"),
        ),
        Case(
            "garbage record",
            export(runs["garbage_record"], "garbage.onnx"),
            Expect(stderr_lines=None, names=(str(record),), reason="not a model record"),
        ),
        Case(
            "this:lamba2021",
            export(runs["this_record"], "this.onnx"),
            Expect(stderr_lines=None, names=(str(this),), reason="not by 'this'"),
        ),
        Case(
            "NaN weights",
            export(runs["nan"] / "checkpoints" / "2", "nan.onnx"),
            Expect(names=("nan",), reason="NaN or infinite"),
        ),
        Case(
            "export output inside the run",
            {"cli": ["export", str(runs["good"]), str(runs["good"] / "checkpoints" / "x.onnx")]},
            Expect(reason="is inside the input"),
        ),
    ]
    results = run_cases(cases, case_timeout=240, timeout=900, trace_memory=False)
    failed = {name: r.problems for name, r in results.items() if r.problems}
    assert not failed, failed
    for name in ("run.onnx", "step.onnx", "run.stablehlo"):
        assert (out / name).stat().st_size > 0
    for name in ("step2.onnx", "none.onnx", "garbage.onnx", "this.onnx", "nan.onnx"):
        assert not (out / name).exists()
    assert ZEN not in results["this:lamba2021"].outcome.stdout
    # one line each for the failures that print only their error
    for name in ("garbage record", "this:lamba2021", "all steps truncated"):
        err = results[name].outcome.stderr
        assert len([ln for ln in err.splitlines() if ln.startswith("jaxdark export")]) == 1


def test_a_damaged_newest_step_falls_back_and_says_so(runs, tmp_path):
    out = tmp_path / "fallback.onnx"
    checked = check_command(
        [sys.executable, "-m", "jaxdark", "export", str(runs["truncated"]), str(out)],
        Expect(exit_code=0, stderr_lines=1, reason=r"checkpoints/2: damaged or incomplete "
               r"checkpoint.*; using the older complete step 1 instead"),
        timeout=300,
    )  # fmt: skip
    assert not checked.problems, (checked.problems, checked.outcome.stderr[-800:])
    assert "could not be restored" not in checked.outcome.stderr
    assert out.stat().st_size > 0 and "wrote" in checked.outcome.stdout


def test_a_planted_module_never_runs(runs, tmp_path):
    """``python -m jaxdark restore --weights .`` from inside a run that ships evil.py and
    records "evil:lamba2021": refused in one line naming the record, evil.py not run."""
    run = runs["planted"]
    dng = tmp_path / "x.dng"
    dng.write_bytes(b"not read: the weights fail first")
    checked = check_command(
        [sys.executable, "-m", "jaxdark", "restore", str(dng), "--weights", ".",
         "--out-dir", str(tmp_path / "o")],
        Expect(stderr_lines=None, reason=r"evil:lamba2021.*not by 'evil'"),
        cwd=run,
        timeout=300,
    )  # fmt: skip
    assert not checked.problems, (checked.problems, checked.outcome.stderr[-500:])
    assert not (run / MARKER).exists()

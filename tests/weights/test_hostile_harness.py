"""The hostile-input harness itself: each check can fail, limits and timeouts hold."""

import sys

from tests.support.hostile import (
    Case,
    Expect,
    Outcome,
    check_command,
    fingerprint,
    problems,
    run_cases,
)


def test_problems_reports_each_broken_expectation(tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(b"original")
    out = tmp_path / "out.png"
    expect = Expect(
        exit_code=2,
        names=(str(src),),
        reason="truncated",
        unchanged=(src,),
        absent=(out,),
        max_seconds=1.0,
        max_peak_bytes=1 << 20,
    )
    before = fingerprint((src,))
    good = Outcome(2, "", f"tool: error: {src}: file is truncated\n", 0.1, peak_bytes=10)
    assert problems(good, expect, before) == []

    src.write_bytes(b"changed")
    out.write_bytes(b"half")
    bad = Outcome(
        1,
        "",
        "Traceback (most recent call last):\n  File x\nValueError: boom\n",
        5.0,
        peak_bytes=2 << 20,
    )
    found = " / ".join(problems(bad, expect, before))
    for part in (
        "exit status 1",
        "traceback",
        "3 stderr lines",
        "does not name",
        "does not match",
        "in.bin changed",
        "out.png was written",
        "took 5.0 s",
        "heap peak 2 MiB",
    ):
        assert part in found
    assert problems(Outcome(None, died="timed out"), expect, before) == [
        "did not finish: timed out"
    ]


def test_address_space_limit_and_timeout(tmp_path):
    grab = [sys.executable, "-c", "b = bytearray(2 << 30)"]
    checked = check_command(grab, Expect(exit_code=0, stderr_lines=0), address_space=1 << 30)
    assert any("MemoryError" in p for p in checked.problems)
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    checked = check_command(sleeper, Expect(exit_code=0), timeout=1)
    assert checked.problems == ["did not finish: timed out after 1 s"]


def test_worker_runs_calls_in_order_and_survives_escapes(tmp_path):
    plain = {"raises": ["builtins.FileNotFoundError"]}  # no jaxdark import: a quick worker
    cases = [
        Case(
            "ok", {"call": "os.path:join", "args": ["a", "b"], **plain}, Expect(0, stderr_lines=0)
        ),
        Case("clean", {"call": "os:listdir", "args": [str(tmp_path / "nope")], **plain}, Expect(2)),
        Case("escape", {"call": "os:listdir", "args": [3.5], **plain}, Expect(2)),
        Case("slow", {"call": "time:sleep", "args": [30], **plain}, Expect(0, stderr_lines=0)),
        Case(
            "after",
            {"call": "os.path:basename", "args": ["/x/y"], **plain},
            Expect(0, stderr_lines=0),
        ),
    ]
    results = run_cases(cases, timeout=120, case_timeout=2, trace_memory=False)
    assert results["ok"].outcome.result == "a/b"
    assert results["clean"].problems == []  # FileNotFoundError is a clean one-line error
    assert any("traceback" in p for p in results["escape"].problems)  # a TypeError escaped
    assert results["slow"].problems == ["did not finish: per-case timeout"]
    assert results["after"].outcome.result == "y"

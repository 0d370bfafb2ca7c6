"""The harness: flags, the section list, the watchdog, and the results files.

`SECTIONS` is the run's order. Adding a section is one module with ``run(check, entry)``
and one `Section` entry here, or, for a benchmark script's ``gpu_rows(...)`` function, one
`rows_section` entry (see the package docstring for the arguments it may take).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import REPO_ROOT, find_weights
from benchmarks.gpu_check import (
    amplifier,
    bf16_error,
    concurrency,
    env,
    memory,
    parity,
    restore,
    train,
)
from benchmarks.gpu_check.check import JSON_NAME, MD_NAME, PROFILES, Check, first_line
from benchmarks.gpu_check.measure import enable_compilation_cache

CARRIED_WEIGHTS = REPO_ROOT / ".whl" / "weights.pth"  # where gpu_check.sh looks first
COLUMNS = ("quantity", "value", "notes")


@dataclass(frozen=True)
class Section:
    """One section: its name, what runs it, and its time budget (s) per mode."""

    name: str
    run: Callable[[Check, dict], None]
    budgets: dict[str, float]

    def budget(self, mode: str) -> float:
        """Seconds for this section in ``mode`` (60 where the entry names none)."""
        return float(self.budgets.get(mode, 60.0))


def budgets(full: float, dry: float, smoke: float) -> dict[str, float]:
    """A section's budgets (s) for the full run, ``--dry`` and ``--smoke``."""
    return {"full": full, "dry": dry, "smoke": smoke}


def rows_section(
    name: str, module: str, budgets: dict[str, float], function: str = "gpu_rows"
) -> Section:
    """A section that calls ``module.function(...)`` (imported when it runs) and records the
    ``(quantity, value, notes)`` rows it returns. The function gets those of these keyword
    arguments that it names: ``smoke``, ``mode``, ``repeats``, ``model``, ``weights``,
    ``state_dict``, ``time_left_s``; any other argument without a default is an error."""

    def run(check: Check, entry: dict) -> None:
        fn = getattr(importlib.import_module(module), function)
        offered: dict[str, Callable[[], Any]] = {
            "smoke": lambda: check.profile.name == "smoke",
            "mode": lambda: check.profile.name,
            "repeats": lambda: check.profile.repeats,
            "model": check.model,
            "weights": check.weights,
            "state_dict": check.state_dict,
            "time_left_s": check.left,
        }
        params = inspect.signature(fn).parameters
        unknown = [
            p
            for p, v in params.items()
            if p not in offered and v.default is inspect.Parameter.empty
        ]
        if unknown:
            raise TypeError(f"{module}.{function} needs {unknown}; offered: {sorted(offered)}")
        entry["source"] = f"{module}.{function}"
        for quantity, value, notes in fn(**{k: offered[k]() for k in params if k in offered}):
            check.row(entry, str(quantity), value, str(notes))

    return Section(name, run, budgets)


SECTIONS: list[Section] = [
    Section("env", env.run, budgets(20, 60, 60)),
    Section("parity", parity.run, budgets(45, 300, 120)),
    Section("restore_4k", restore.run_4k, budgets(130, 600, 300)),
    Section("train", train.run, budgets(140, 600, 300)),
    Section("memory", memory.run, budgets(100, 300, 120)),
    Section("sony", restore.run_sony, budgets(30, 300, 120)),
    Section("amplifier", amplifier.run, budgets(15, 60, 60)),
    Section("bf16_error", bf16_error.run, budgets(20, 300, 120)),
    Section("concurrency", concurrency.run, budgets(110, 300, 180)),
    rows_section("e2e", "benchmarks.bench_e2e", budgets(100, 300, 300), "gpu_check_rows"),
    rows_section("pipeline", "benchmarks.bench_pipeline", budgets(200, 600, 600), "gpu_check_rows"),
]


def section_names() -> list[str]:
    """The names of `SECTIONS`, in order."""
    return [s.name for s in SECTIONS]


def watchdog(check: Check, grace_s: float) -> threading.Timer:
    """Stop the process (status 3) if it runs ``grace_s`` past the budget."""

    def fire():
        check.results["watchdog"] = (
            f"stopped after {check.elapsed():.0f} s during section "
            f"{check.results.get('current_section')!r} (budget {check.results['budget_s']} s)"
        )
        check.write()
        print(check.results["watchdog"], flush=True)
        os._exit(3)

    timer = threading.Timer(max(1.0, check.deadline - time.monotonic() + grace_s), fire)
    timer.daemon = True
    timer.start()
    return timer


def record(check: Check, name: str, entry: dict, directory: Path, command: str) -> None:
    """One section's rows in the recorded-results format: ``directory/gpu_<name>.json``."""
    from benchmarks.results_io import write_results

    notes = f"gpu_check {check.profile.name} run, section {name}: {entry['status']}"
    if entry.get("error"):
        notes += f" ({entry['error']})"
    if entry.get("skipped"):
        notes += "; skipped: " + "; ".join(entry["skipped"])
    try:
        write_results(f"gpu_{name}", COLUMNS, entry["rows"], notes=notes, command=command,
                      directory=directory)  # fmt: skip
    except Exception as e:  # noqa: BLE001 - gpu_check.json keeps the rows anyway
        print(f"  could not write gpu_{name}.json: {first_line(e)}", flush=True)


def parse_args(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The flags (see the package docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_check",
        description="One prepared accelerator check: every number issue 10 asks of a GPU.",
    )
    parser.add_argument("--out", help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--weights", default=None, help="official .pth (default: found)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="tiny sizes (CI, CPU)")
    mode.add_argument("--dry", action="store_true", help="every full-run path, small sizes")
    parser.add_argument("--budget-s", type=float, default=None, help="time budget of the run")
    parser.add_argument(
        "--sections", default=",".join(section_names()), help="comma-separated subset"
    )
    parser.add_argument(
        "--results-dir", default=None, help="where gpu_<section>.json go (default OUT/results)"
    )
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--probe-shape", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--probe-params", default=None, help=argparse.SUPPRESS)
    return parser, parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse flags and run the sections; 0 when every section ran (errors are in the files)."""
    parser, args = parse_args(argv)
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # before jax starts
    if args.memory_probe:
        b, h, w = (int(v) for v in args.probe_shape.split("x"))
        print(json.dumps(memory.probe(args.memory_probe, b, h, w, Path(args.probe_params))))
        return 0
    if not args.out:
        parser.error("--out is required")
    by_name = {s.name: s for s in SECTIONS}
    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in names if s not in by_name]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(by_name)}")
    profile = PROFILES["smoke" if args.smoke else "dry" if args.dry else "full"]
    check = Check(Path(args.out), profile, args.budget_s or profile.budget_s)
    try:
        use_carried = not args.weights and CARRIED_WEIGHTS.exists()
        check.set_weights(CARRIED_WEIGHTS if use_carried else find_weights(args.weights))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results_dir = Path(args.results_dir) if args.results_dir else check.out_dir / "results"
    command = "python -m benchmarks.gpu_check " + shlex.join(sys.argv[1:] if argv is None else argv)
    enable_compilation_cache(check.cache_dir)
    check.write()
    timer = watchdog(check, grace_s=45.0 if profile.name == "full" else 300.0)
    try:
        for name in names:
            section = by_name[name]
            entry = check.run_section(name, section.run, section.budget(profile.name))
            record(check, name, entry, results_dir, command)
    finally:
        timer.cancel()
        shutil.rmtree(check.tmpdir, ignore_errors=True)
    check.results["finished"] = True
    check.write()
    statuses = {n: e["status"] for n, e in check.results["sections"].items()}
    print(f"done in {check.elapsed():.0f} s: {statuses}")
    print(f"wrote {check.out_dir / JSON_NAME}, {check.out_dir / MD_NAME} and {results_dir}/")
    return 0

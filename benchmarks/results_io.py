"""One format for what benchmarks record, so the docs can render it (docs/ reads these files).

Every benchmark that records results writes ``benchmarks/results/<name>.json``:

    {"benchmark": name, "date": "YYYY-MM-DD HH:MM UTC", "machine": "...", "command": "...",
     "load_average": "...", "columns": [...], "rows": [[...], ...], "notes": "..."}

``rows`` hold plain JSON values (numbers or strings; "not measured yet" where a row could not
run on this machine). `write_results` fills date, machine and load average itself.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NOT_MEASURED = "not measured yet"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_description() -> str:
    """``"<CPU model>, N cores[, <accelerator>]"`` of the machine running this process."""
    text = f"{cpu_model()}, {os.cpu_count()} cores"
    try:
        import jax

        devices = jax.devices()
        if devices and devices[0].platform != "cpu":
            text += f", {len(devices)} x {devices[0].device_kind}"
    except Exception:  # noqa: BLE001 - the description is best effort
        pass
    return text


def load_average() -> str:
    """The 1/5/15-minute load averages, as text ("n/a" where the OS has none)."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def invocation() -> str:
    """How this process was started, as a user would type it (``python -m MODULE ...`` for
    a module run with ``-m``, never a machine-specific path)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        module = spec.name.removesuffix(".__main__")
        return shlex.join(["python", "-m", module, *sys.argv[1:]])
    return "python " + shlex.join(sys.argv)


def write_results(
    name: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    notes: str = "",
    command: str | None = None,
    directory: Path | None = None,
) -> Path:
    """Write ``<directory>/<name>.json`` (default `RESULTS_DIR`) in the format above."""
    directory = RESULTS_DIR if directory is None else Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_description(),
        "command": command or invocation(),
        "load_average": load_average(),
        "columns": list(columns),
        "rows": [list(r) for r in rows],
        "notes": notes,
    }
    path = directory / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def read_results(name: str, directory: Path | None = None) -> dict[str, Any]:
    """The record written by `write_results` under ``name``."""
    directory = RESULTS_DIR if directory is None else Path(directory)
    return json.loads((directory / f"{name}.json").read_text())


def markdown_table(record: dict[str, Any]) -> str:
    """The record as a Markdown table followed by its provenance line."""
    cols = record["columns"]
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in record["rows"]]
    lines.append("")
    lines.append(
        f"*{record['date']}, {record['machine']}, load average {record['load_average']}: "
        f"`{record['command']}`*"
    )
    if record.get("notes"):
        lines += ["", record["notes"]]
    return "\n".join(lines)

"""mkdocs hooks: measured tables come from the benchmarks' result files, not from typed prose.

A page says ``<!-- results: NAME -->`` on a line of its own; the build replaces it with
``markdown_table(read_results(NAME))`` from ``benchmarks/results/NAME.json`` (the format of
`benchmarks.results_io`). A marker whose file is missing or malformed is logged as a warning,
which fails ``mkdocs build --strict`` (CI), and shows as a warning box in a non-strict preview.

Images under ``benchmarks/results/`` are linked from the pages as ``../benchmarks/results/X``
(so the Markdown also reads on a code host); the build copies them into the site under
``results/`` and rewrites those links.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.results_io import RESULTS_DIR, markdown_table, read_results  # noqa: E402

log = logging.getLogger("mkdocs.hooks.results")

MARKER = re.compile(r"^<!--\s*results:\s*([A-Za-z0-9_.-]+)\s*-->[ \t]*$", re.MULTILINE)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".svg"}
IMAGE_LINK = re.compile(r"\(\.\./benchmarks/results/([A-Za-z0-9_./-]+)\)")
REQUIRED = ("date", "machine", "command", "columns", "rows")


def render_results(name: str, directory: Path | None = None) -> str:
    """The Markdown table of ``benchmarks/results/<name>.json``; raises ValueError if unusable."""
    directory = RESULTS_DIR if directory is None else Path(directory)
    path = directory / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"results file {path} does not exist")
    try:
        record = read_results(name, directory)
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"results file {path} is not valid JSON: {e}") from None
    missing = [k for k in REQUIRED if not record.get(k)]
    if missing:
        raise ValueError(f"results file {path} lacks {', '.join(missing)}")
    record.setdefault("load_average", "n/a")
    return markdown_table(record)


def on_page_markdown(markdown: str, page, **kwargs) -> str:  # noqa: ANN001 - mkdocs types
    """Replace every results marker by its table and point result images at the copies."""

    def table(match: re.Match) -> str:
        name = match.group(1)
        try:
            return render_results(name)
        except ValueError as e:
            log.warning("%s: %s", page.file.src_uri, e)
            return f'!!! warning "missing results: {name}"\n    {e}'

    markdown = _outside_code(markdown, lambda text: MARKER.sub(table, text))
    depth = page.file.src_uri.count("/")
    prefix = "../" * depth
    return IMAGE_LINK.sub(lambda m: f"({prefix}results/{m.group(1)})", markdown)


def _outside_code(markdown: str, transform) -> str:  # noqa: ANN001
    """Apply ``transform`` to the text outside fenced code blocks (a marker shown as code stays)."""
    out, chunk, fence = [], [], None
    for line in markdown.splitlines(keepends=True):
        stripped = line.lstrip()
        if fence is None and stripped.startswith(("```", "~~~")):
            out.append(transform("".join(chunk)))
            chunk, fence = [line], stripped[:3]
        elif fence is not None:
            chunk.append(line)
            closing = stripped.strip()
            if len(closing) >= 3 and set(closing) == {fence[0]}:
                out.append("".join(chunk))
                chunk, fence = [], None
        else:
            chunk.append(line)
    out.append("".join(chunk) if fence is not None else transform("".join(chunk)))
    return "".join(out)


def on_files(files, config, **kwargs):  # noqa: ANN001, ANN201 - mkdocs types
    """Add the result images to the site under ``results/``."""
    for path in sorted(RESULTS_DIR.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            rel = path.relative_to(RESULTS_DIR).as_posix()
            files.append(File.generated(config, f"results/{rel}", abs_src_path=str(path)))
    return files

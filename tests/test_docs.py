"""The README stays short and its links resolve; recorded results carry their provenance.

The strict site build (`mkdocs build --strict`, run by .ci/run) checks the links inside
docs/; these fast checks cover what it does not see: README.md, and the result files.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "results"

LINK = re.compile(r"\]\(([^)\s]+)\)")
MARKER = re.compile(r"^<!--\s*results:\s*([A-Za-z0-9_.-]+)\s*-->[ \t]*$", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)


def _slug(heading: str) -> str:
    """The anchor mkdocs (Python-Markdown's toc) gives a heading."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", text, re.MULTILINE)}


def _local_links(markdown: str) -> list[str]:
    text = FENCE.sub("", markdown)
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z]+:", t) and not t.startswith("#")]


def test_readme_is_short():
    lines = README.read_text().count("\n")
    assert lines <= 250, f"README.md has {lines} lines; move detail into docs/"


def test_readme_links_resolve():
    links = _local_links(README.read_text())
    assert any(t.startswith("docs/") for t in links), "README.md links no page of docs/"
    for target in links:
        path, _, anchor = target.partition("#")
        file = ROOT / path
        assert file.exists(), f"README.md links {target}, but {path} does not exist"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), f"README.md links {target}: no such heading"


def test_readme_test_command_is_the_one_ci_runs():
    command = 'python -m pytest -m "not slow"'
    assert command in README.read_text()
    assert command in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_results_files_name_date_machine_command(path: Path):
    record = json.loads(path.read_text())
    for key in ("date", "machine", "command"):
        assert isinstance(record.get(key), str) and record[key].strip(), f"{path.name}: {key}"
    columns, rows = record["columns"], record["rows"]
    assert columns and rows, f"{path.name}: no table"
    assert all(len(r) == len(columns) for r in rows), f"{path.name}: ragged rows"


def test_every_results_marker_has_its_file():
    for page in sorted(DOCS.rglob("*.md")):
        for name in MARKER.findall(FENCE.sub("", page.read_text())):
            assert (RESULTS / f"{name}.json").is_file(), f"{page.name}: no results file {name}"


def test_hook_renders_markers_and_refuses_missing_files(tmp_path):
    pytest.importorskip("mkdocs")
    spec = importlib.util.spec_from_file_location("jaxdark_docs_hooks", DOCS / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)  # by path: a `docs` package elsewhere cannot shadow it
    render_results, _outside_code = hooks.render_results, hooks._outside_code

    record = {"date": "2026-01-01", "machine": "m", "command": "python x", "load_average": "1"}
    record |= {"columns": ["a", "b"], "rows": [[1, 2.5]], "notes": ""}
    (tmp_path / "demo.json").write_text(json.dumps(record))
    table = render_results("demo", tmp_path)
    assert table.startswith("| a | b |") and "| 1 | 2.5 |" in table and "`python x`" in table
    with pytest.raises(ValueError, match="does not exist"):
        render_results("missing", tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"columns": ["a"], "rows": [[1]]}))
    with pytest.raises(ValueError, match="lacks date, machine, command"):
        render_results("bad", tmp_path)
    text = "x\n```\n<!-- results: demo -->\n```\n<!-- results: demo -->\n"
    out = _outside_code(text, lambda s: s.replace("<!--", "[["))
    assert out == "x\n```\n<!-- results: demo -->\n```\n[[ results: demo -->\n"


def test_models_page_shows_the_example_as_it_is():
    page = (DOCS / "models.md").read_text()
    start = page.index('@register("tiny_resnet")')
    shown = page[start : page.index("```", start)].strip()
    assert shown in (ROOT / "examples" / "new_variant.py").read_text(), (
        "docs/models.md shows a tiny_resnet that differs from examples/new_variant.py"
    )

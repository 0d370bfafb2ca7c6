"""Where things are: the repository root, for tests that run scripts or subprocesses."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

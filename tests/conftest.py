"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT

OFFICIAL_WEIGHTS_ENV = "JAXDARK_OFFICIAL_WEIGHTS"
DEFAULT_OFFICIAL_WEIGHTS = REPO_ROOT.parent / "shared" / "official" / "weights.pth"


@pytest.fixture(scope="session")
def official_weights() -> Path:
    """Path of the official checkpoint; skip (or, under CI=true, fail) when absent."""
    path = Path(os.environ.get(OFFICIAL_WEIGHTS_ENV, DEFAULT_OFFICIAL_WEIGHTS))
    if not path.is_file():
        msg = f"official checkpoint not found at {path} (set {OFFICIAL_WEIGHTS_ENV} to its path)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + "; it is required under CI")
        pytest.skip(msg)
    return path

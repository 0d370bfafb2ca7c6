"""The light core install: `import jaxdark` loads no training library; entry points name
the extra they need in one line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from jaxdark import extras
from jaxdark.errors import JaxdarkError

TRAINING_MODULES = ("grain", "tensorflow_datasets", "tensorboardX", "ml_collections")


def test_import_jaxdark_loads_no_training_library():
    code = (
        "import sys, jaxdark, jaxdark.cli.restore, jaxdark.cli.convert, jaxdark.cli.demo, "
        "jaxdark.data.sid_files; "
        f"print(sorted(m for m in {TRAINING_MODULES!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_extra_is_named_in_one_line(monkeypatch):
    real = importlib.util.find_spec

    def hide_grain(name, *args):
        return None if name == "grain" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", hide_grain)
    assert extras.missing_modules("train") == ["grain"]
    with pytest.raises(JaxdarkError, match=r"train.py needs the 'train' extra \(missing: grain\)"):
        extras.require_extra("train", "train.py")


def test_installed_extra_passes():
    extras.require_extra("train", "train.py")  # the test environment has the train extra

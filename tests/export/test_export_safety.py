"""``jaxdark export`` never replaces its input, replaces an existing output only with
--overwrite, turns float16 and absurd sizes into a file or one line, and keeps a StableHLO
model and its sidecar consistent (one worker process under an address-space limit)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.support.hostile import Case, Expect, run_cases
from tests.support.tiny_model import save_tiny


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("w") / "tiny")


def test_export_outputs_never_replace_inputs(weights, tmp_path):
    pth = tmp_path / "W.pth"
    pth.write_bytes(b"an input checkpoint (never read: refused before)")
    (tmp_path / "dir").mkdir()
    existing = tmp_path / "existing.onnx"
    existing.write_bytes(b"an earlier export")
    replaced = tmp_path / "replaced.onnx"
    replaced.write_bytes(b"an earlier export")
    sidecar_only = tmp_path / "side.stablehlo.json"
    sidecar_only.write_text("{}")
    copy = shutil.copytree(weights, tmp_path / "conv")

    def cli(*args: str) -> dict:
        return {"cli": ["export", *map(str, args)]}

    cases = [
        Case(
            "W W",
            cli(pth, pth, "--format", "onnx"),
            Expect(names=("W.pth",), reason="is the input", unchanged=(pth,)),
        ),
        Case(
            "W dir/../W",
            cli(pth, f"{tmp_path}/dir/../W.pth", "--format", "onnx"),
            Expect(reason="is the input", unchanged=(pth,)),
        ),
        Case(
            "W W --overwrite",
            cli(pth, pth, "--format", "onnx", "--overwrite"),
            Expect(reason="is the input", unchanged=(pth,)),
        ),
        Case(
            "into the checkpoint dir",
            cli(copy, copy / "params.onnx"),
            Expect(reason="is inside the input", absent=(copy / "params.onnx",)),
        ),
        Case(
            "sidecar is the input",
            cli(sidecar_only, tmp_path / "side.stablehlo", "--format", "stablehlo"),
            Expect(reason="is the input", unchanged=(sidecar_only,)),
        ),
        Case(
            "existing output",
            cli(weights, existing),
            Expect(names=(str(existing),), reason="--overwrite", unchanged=(existing,)),
        ),
        Case(
            "existing output --overwrite",
            cli(weights, replaced, "--overwrite"),
            Expect(exit_code=0, stderr_lines=None),
        ),
        Case(
            "float16 stablehlo",
            cli(weights, tmp_path / "h.stablehlo", "--dtype", "float16"),
            Expect(exit_code=0, stderr_lines=None),
        ),
        Case(
            "huge batch",
            cli(weights, tmp_path / "b.stablehlo", "--batch", "99999999999999999999999"),
            Expect(
                reason="batch must be a positive integer up to", absent=(tmp_path / "b.stablehlo",)
            ),
        ),
        Case(
            "huge height",
            cli(weights, tmp_path / "c.onnx", "--height", str(2**40)),
            Expect(reason="height .* up to", absent=(tmp_path / "c.onnx",)),
        ),
    ]
    results = run_cases(cases, case_timeout=240, timeout=900, trace_memory=False)
    failed = {name: r.problems for name, r in results.items() if r.problems}
    assert not failed, failed
    assert replaced.read_bytes() != b"an earlier export" and replaced.stat().st_size > 1000
    meta = json.loads((tmp_path / "h.stablehlo.json").read_text())
    assert meta["dtype"] == "float16" and "stablehlo_sha256" in meta


def test_float16_stablehlo_matches_the_model(weights, tmp_path):
    from jaxdark.export import export
    from jaxdark.export.stablehlo import load_stablehlo
    from jaxdark.weights.load import load_model

    out = export(weights, tmp_path / "h.stablehlo", format="stablehlo", dtype="float16")
    x = np.random.default_rng(0).uniform(0, 1, (1, 64, 64, 1)).astype(np.float32)
    got = np.asarray(load_stablehlo(out.path).call(x.astype(np.float16)), np.float32)
    want = np.asarray(load_model(weights)(x))
    assert got.shape == want.shape and np.abs(got - want).max() < 0.05


def test_a_sidecar_from_another_export_is_detected(weights, tmp_path):
    """A kill between the two renames leaves the new sidecar beside the old model (the
    sidecar is written first): `load_stablehlo` refuses the pair in one line."""
    from jaxdark.export import ExportError, export
    from jaxdark.export.stablehlo import load_stablehlo

    out = tmp_path / "m.stablehlo"
    export(weights, out, format="stablehlo")
    old = out.read_bytes()
    assert load_stablehlo(out) is not None
    export(weights, out, format="stablehlo", batch=1, overwrite=True)  # another export
    out.write_bytes(old)  # as if killed after the sidecar's rename, before the model's
    with pytest.raises(ExportError, match="describes another export") as info:
        load_stablehlo(out)
    assert "\n" not in str(info.value)

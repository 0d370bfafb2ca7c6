"""What travels with an exported network (ONNX metadata_props, StableHLO sidecar)."""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from jaxdark.constants import INPUT_MULTIPLE as MULTIPLE
from jaxdark.export.spec import ExportSpec

EXPECTED_INPUT = (
    "black-level-corrected RGGB Bayer mosaic, (raw - black) / (white - black), multiplied by "
    "the amplification (jaxdark.estimate_amplification or a chosen factor), one channel, "
    f"height and width multiples of {MULTIPLE}"
)
VALUE_RANGE = (
    "input >= 0: the normalised mosaic (0 at black, 1 at white, a little over 1 where "
    "saturated) times the amplification (1 to 300); output in [0, 1]"
)
OUTPUT = "sRGB (gamma-encoded, camera white balance), same height and width as the input"


def jaxdark_version() -> str:
    """The installed jaxdark version, or ``"unknown"`` when it is run from a bare source tree."""
    try:
        return importlib.metadata.version("jaxdark")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def parameters_sha256(model: nnx.Module) -> str:
    """sha256 of the model's parameters (paths and float32 bytes in path order)."""
    h = hashlib.sha256()
    leaves = jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))
    for path, leaf in sorted(leaves, key=lambda item: jax.tree_util.keystr(item[0])):
        a = np.ascontiguousarray(np.asarray(leaf, np.float32))
        h.update(jax.tree_util.keystr(path).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def source_sha256(path: str | Path | None) -> str | None:
    """sha256 of the checkpoint file, or for a ``jaxdark convert`` directory the sha256 of the
    file it was converted from (as recorded at conversion); None when unknown (a training
    run, whose parameters are identified by ``parameters_sha256``)."""
    if path is None:
        return None
    from jaxdark.fileio import sha256_of
    from jaxdark.weights.convert import read_converted_metadata
    from jaxdark.weights.load import run_directory

    path = Path(path)
    if run_directory(path) is not None:  # a training run: trained here, no source file
        return None
    if path.is_dir():
        return read_converted_metadata(path).get("source_sha256")
    return sha256_of(path)


def build_metadata(
    model: nnx.Module, spec: ExportSpec, source: str | Path | None, **extra: Any
) -> dict[str, Any]:
    """The metadata record of one export (all values JSON-serialisable)."""
    b, h, w, c = spec.dims()
    return {
        "producer": "jaxdark",
        "jaxdark_version": jaxdark_version(),
        "model": type(model).__name__,
        "format": spec.format,
        "dtype": spec.dtype,
        "input_name": "mosaic",
        "input_layout": "NHWC",
        "input_shape": [b, h, w, c],
        "input": EXPECTED_INPUT,
        "output_name": "rgb",
        "output_layout": "NHWC",
        "output_shape": [b, h, w, 3],
        "output": OUTPUT,
        "value_range": VALUE_RANGE,
        "size_multiple": MULTIPLE,
        "source": None if source is None else Path(source).name,
        "source_sha256": source_sha256(source),
        "parameters_sha256": parameters_sha256(model),
        **extra,
    }

"""Export the restoration network for deployment without a JAX model: ONNX or StableHLO.

    from jaxdark.export import export
    export("weights.pth", "jaxdark.onnx")                        # dynamic batch, height, width
    export("weights.pth", "jaxdark.stablehlo", format="stablehlo")  # + jaxdark.stablehlo.json
    export(model, "fixed.onnx", dtype="float16", batch=1, height=2144, width=3840)

Both formats take (B, H, W, 1) amplified, black-level-corrected RGGB mosaics (H and W
multiples of 32) and give (B, H, W, 3) sRGB in [0, 1], like ``model(x)``. The metadata
(layout, expected input, value range, source sha256, jaxdark version) is in the ONNX file's
``metadata_props`` and in a JSON sidecar ``OUT.json`` beside a StableHLO file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flax import nnx

from jaxdark.export.spec import DTYPES, FORMATS, ExportError, ExportSpec
from jaxdark.fileio import check_writable_dir, write_atomic

__all__ = ["DTYPES", "FORMATS", "ExportError", "ExportSpec", "Exported", "export"]


@dataclass(frozen=True)
class Exported:
    """What `export` wrote: the model file, the metadata sidecar (StableHLO only), the metadata."""

    path: Path
    sidecar: Path | None
    metadata: dict[str, Any]


def export(
    weights: str | os.PathLike | nnx.Module,
    out: str | os.PathLike,
    format: str = "onnx",
    dtype: str = "float32",
    batch: int | None = None,
    height: int | None = None,
    width: int | None = None,
) -> Exported:
    """Write ``weights`` (a .pth, a ``jaxdark convert`` directory or a model) to ``out``.

    Args:
      weights: path read with `jaxdark.load_model`, or an ``nnx.Module`` (ONNX needs a
        `jaxdark.DarkRestorationNet`; StableHLO takes any module with the same contract).
      out: the file to write (replaced atomically if it exists; parent folders are created).
      format: ``"onnx"`` (opset 17) or ``"stablehlo"`` (``jax.export`` serialisation).
      dtype: ``"float32"`` or ``"float16"`` (input, output, weights and arithmetic).
      batch: static batch size; None (default) leaves it dynamic.
      height: static height, a multiple of 32; None (default) leaves it dynamic.
      width: static width, a multiple of 32; None (default) leaves it dynamic.

    Raises:
      ExportError: an unsupported option or model, as one line.
    """
    spec = ExportSpec(format, dtype, batch, height, width)
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"{out} is a folder; give the path of the file to write")
    check_writable_dir(out.parent, "destination of")
    source = None
    if isinstance(weights, nnx.Module):
        model = weights
    else:
        from jaxdark.weights.load import load_model
        from jaxdark.weights.official import resolve_weights

        source = resolve_weights(weights)
        model = load_model(source)

    from jaxdark.export.metadata import build_metadata

    out.parent.mkdir(parents=True, exist_ok=True)

    if spec.format == "onnx":
        from jaxdark.export.onnx import OPSET, build_onnx

        metadata = build_metadata(model, spec, source, onnx_opset=OPSET)
        data = build_onnx(model, spec, metadata).SerializeToString()
        write_atomic(out, lambda tmp: tmp.write_bytes(data))
        return Exported(out, None, metadata)

    import jax

    from jaxdark.export.stablehlo import export_stablehlo, sidecar_path

    exported = export_stablehlo(model, spec)
    metadata = build_metadata(
        model,
        spec,
        source,
        input_shape_symbolic=str(exported.in_avals[0].shape),
        platforms=list(exported.platforms),
        jax_version=jax.__version__,
        calling_convention_version=exported.calling_convention_version,
        load_with="jax.export.deserialize(open(path, 'rb').read()).call(x)",
    )
    sidecar = sidecar_path(out)
    write_atomic(out, lambda tmp: tmp.write_bytes(bytes(exported.serialize())))
    write_atomic(sidecar, lambda tmp: tmp.write_text(json.dumps(metadata, indent=2) + "\n"))
    return Exported(out, sidecar, metadata)

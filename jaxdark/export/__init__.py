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
from jaxdark.fileio import check_writable_dir, refuse_input_as_output, write_atomic

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
    overwrite: bool = False,
) -> Exported:
    """Write ``weights`` (a .pth, a ``jaxdark convert`` directory or a model) to ``out``.

    Args:
      weights: path read with `jaxdark.load_model`, or an ``nnx.Module`` (ONNX needs a
        `jaxdark.DarkRestorationNet`; StableHLO takes any module with the same contract).
      out: the file to write (parent folders are created). It must not be, or lie
        inside, the weights it is exported from.
      overwrite: replace ``out`` (and its sidecar) if it exists (atomically); without it
        an existing file is an error and the export is written exclusively.
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
    targets = [out] if spec.format == "onnx" else [out, _sidecar(out)]
    source = None
    if not isinstance(weights, nnx.Module):
        from jaxdark.weights.official import resolve_weights

        source = resolve_weights(weights)
        refuse_input_as_output(targets, [source], "choose another output file")
    existing = [t for t in targets if os.path.lexists(t)]
    if existing and not overwrite:
        raise ExportError(f"{existing[0]} exists; pass --overwrite to replace it")
    if isinstance(weights, nnx.Module):
        model = weights
    else:
        from jaxdark.weights.load import load_model

        model = load_model(source)

    from jaxdark.export.metadata import build_metadata

    out.parent.mkdir(parents=True, exist_ok=True)

    if spec.format == "onnx":
        from jaxdark.export.onnx import OPSET, build_onnx

        metadata = build_metadata(model, spec, source, onnx_opset=OPSET)
        data = build_onnx(model, spec, metadata).SerializeToString()
        write_atomic(out, lambda tmp: tmp.write_bytes(data), replace=overwrite)
        return Exported(out, None, metadata)

    import hashlib

    import jax

    from jaxdark.export.stablehlo import export_stablehlo

    exported = export_stablehlo(model, spec)
    metadata = build_metadata(
        model,
        spec,
        source,
        input_shape_symbolic=str(exported.in_avals[0].shape),
        platforms=list(exported.platforms),
        jax_version=jax.__version__,
        calling_convention_version=exported.calling_convention_version,
        load_with="jaxdark.export.stablehlo.load_stablehlo(path).call(x), or "
        "jax.export.deserialize(open(path, 'rb').read()).call(x)",
    )
    data = bytes(exported.serialize())
    metadata["stablehlo_sha256"] = hashlib.sha256(data).hexdigest()
    sidecar = _sidecar(out)
    # The sidecar names the sha256 of the model it describes, so a pair left mismatched
    # by a kill between the two renames is detected by `load_stablehlo`.
    text = json.dumps(metadata, indent=2) + "\n"
    write_atomic(sidecar, lambda tmp: tmp.write_text(text), replace=overwrite)
    write_atomic(out, lambda tmp: tmp.write_bytes(data), replace=overwrite)
    return Exported(out, sidecar, metadata)


def _sidecar(out: Path) -> Path:
    from jaxdark.export.stablehlo import sidecar_path

    return sidecar_path(out)

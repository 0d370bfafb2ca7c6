"""Any NNX restoration network as a serialised StableHLO module (`jax.export`).

The network's parameters are baked into the module as constants, so the file is the whole
model: ``jax.export.deserialize(data).call(x)`` runs it in any JAX process, without jaxdark.
Works for every ``nnx.Module`` with the (B, H, W, 1) -> (B, H, W, 3) contract of
`jaxdark.DarkRestorationNet`; the exported computation is ``model(x)`` itself, so the
result equals the model's. Sizes left out are symbolic: batch ``b``, height ``32*h`` and
width ``32*w`` (so only multiples of 32 are accepted, checked by `jax.export` at call time).
The metadata goes to a JSON sidecar (`sidecar_path`); the serialised bytes stay exactly what
`jax.export.serialize` wrote.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdark.constants import INPUT_MULTIPLE as MULTIPLE
from jaxdark.export.spec import ExportError, ExportSpec

DEFAULT_PLATFORMS = ("cpu", "cuda")


def input_shape(spec: ExportSpec) -> tuple:
    """The (possibly symbolic) input shape of ``spec``: ``b, 32*h, 32*w, 1`` where dynamic."""
    b = "b" if spec.batch is None else str(spec.batch)
    h = f"{MULTIPLE}*h" if spec.height is None else str(spec.height)
    w = f"{MULTIPLE}*w" if spec.width is None else str(spec.width)
    return jax.export.symbolic_shape(f"{b}, {h}, {w}, 1")


def export_stablehlo(
    model: nnx.Module, spec: ExportSpec, platforms: tuple[str, ...] = DEFAULT_PLATFORMS
) -> jax.export.Exported:
    """``jax.export`` of ``model(x)`` for ``spec`` (parameters as constants)."""
    dtype = jnp.dtype(spec.dtype)
    if dtype != jnp.float32:
        model = _computing_in(model, dtype)
    graphdef, state = nnx.split(model)
    if dtype != jnp.float32:
        state = jax.tree_util.tree_map(
            lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, state
        )

    def restore(x: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, state)(x)

    arg = jax.ShapeDtypeStruct(input_shape(spec), dtype)
    try:
        return jax.export.export(jax.jit(restore), platforms=platforms)(arg)
    except Exception as e:  # noqa: BLE001 - any failure to trace is one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(
            f"{type(model).__name__} cannot be exported with input {arg.shape} {spec.dtype}: "
            f"{first}"
        ) from None


def _computing_in(model: nnx.Module, dtype: jnp.dtype) -> nnx.Module:
    """A copy of ``model`` whose layers that take a compute ``dtype`` (jaxdark's layers,
    flax's ``nnx.Conv``...) compute in ``dtype``, so float16 weights meet float16
    activations in every convolution."""
    model = nnx.clone(model)
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Module) and hasattr(node, "dtype"):
            current = node.dtype
            if current is None or jnp.issubdtype(jnp.dtype(current), jnp.floating):
                node.dtype = dtype
    return model


def sidecar_path(out: str | Path) -> Path:
    """Where the metadata of a StableHLO export at ``out`` is written: ``OUT.json``."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def load_stablehlo(path: str | Path) -> jax.export.Exported:
    """The exported network at ``path``, checked against its sidecar: if ``OUT.json``
    records a ``stablehlo_sha256`` that is not the file's, the pair is from two different
    exports (e.g. one killed between its two renames) and `ExportError` says so."""
    import hashlib
    import json

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ExportError(f"{path}: cannot read ({e.strerror or e})") from None
    sidecar = sidecar_path(path)
    if sidecar.exists():
        try:
            recorded = json.loads(sidecar.read_text()).get("stablehlo_sha256")
        except (OSError, ValueError, AttributeError) as e:
            raise ExportError(f"{sidecar}: unreadable metadata ({type(e).__name__})") from None
        if recorded is not None and recorded != hashlib.sha256(data).hexdigest():
            raise ExportError(
                f"{sidecar} describes another export than {path.name} (interrupted export?); "
                "export again"
            )
    try:
        return jax.export.deserialize(bytearray(data))
    except Exception as e:  # noqa: BLE001 - whatever the deserialiser raises
        raise ExportError(f"{path}: not a StableHLO export ({type(e).__name__})") from None

"""Reference (PyTorch) state dict <-> jaxdark parameters, and jaxdark checkpoints on disk.

One table, `conv_table`, maps every weight-normalised convolution of the reference to
its path in `DarkRestorationNet`; `LEAVES` says how each tensor of a convolution is
renamed and transposed. Conversion checks every tensor against a freshly built model
and fails with a one-line `CheckpointError` naming the key and both shapes.

A converted checkpoint is a directory written by orbax with two items: ``params``
(a flat ``{"conv32x.0.v": array, ...}`` dict of float32 arrays, Flax layout) and
``metadata`` (JSON: format version, model configuration, parameter count, source file
and its sha256).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from jaxdark.errors import CheckpointError, flatten, printable_path
from jaxdark.fileio import sha256_of
from jaxdark.models import build
from jaxdark.models.lamba2021 import DarkRestorationNet, count_params, create_model
from jaxdark.weights.checkpoint_format import (  # noqa: F401  (re-exported)
    CONFIG_LIMITS,
    FORMAT_VERSION,
    MAX_PARAMS,
    METADATA_KEYS,
    validate_metadata,
    validate_model_config,
)
from jaxdark.weights.pytorch.reader import extract_state_dict, read_torch_checkpoint

Path_ = tuple[str | int, ...]

# torch leaf name -> (flax leaf name, torch -> flax array transform, flax -> torch transform)
LEAVES: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray], Callable]] = {
    "weight_v": ("v", lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1)),
    "weight_g": ("g", lambda a: a.reshape(-1), lambda a: a.reshape(-1, 1, 1, 1)),
    "bias": ("bias", lambda a: a, lambda a: a),
}


def conv_table(dense_layers: tuple[int, ...] = (4, 5, 5)) -> list[tuple[str, Path_]]:
    """Reference module prefix -> jaxdark module path, for every convolution."""
    table: list[tuple[str, Path_]] = [
        ("conv32x.0.0", ("conv32x", 0)),
        ("conv32x.1.0", ("conv32x", 1)),
    ]
    for b, n in enumerate(dense_layers):
        for i in range(n):
            # the first dense layer has no activation before its conv, so its index is 0
            table.append(
                (
                    f"RDB{b + 1}.dense_layers.{i}.conv.{0 if i == 0 else 1}",
                    ("rdb", b, "dense_layers", i, "conv"),
                )
            )
        table.append((f"RDB{b + 1}.conv_1x1.0", ("rdb", b, "conv_1x1")))
    table += [
        ("rdball.0", ("rdball",)),
        ("conv_rdb8x.0", ("conv_rdb8x",)),
        ("resblock8x.conv1.0", ("resblock8x", "conv1")),
        ("resblock8x.conv2.0", ("resblock8x", "conv2")),
        ("conv32_8_cat.0.0", ("conv32_8_cat", 0)),
        ("conv32_8_cat.1.0", ("conv32_8_cat", 1)),
        ("conv2x.0", ("conv2x",)),
        ("conv_2_8_32.0", ("conv_2_8_32",)),
    ]
    return table


def flat_key(path: Path_) -> str:
    """The string key of a parameter path in converted checkpoints: ``"rdb.0.conv_1x1.v"``."""
    return ".".join(str(p) for p in path)


def model_config(model: nnx.Module) -> dict[str, Any]:
    """The architecture record that rebuilds ``model``: ``{"name": ..., **sizes}``
    (`jaxdark.models.spec_of`; records without a name are ``lamba2021``)."""
    from jaxdark.models import spec_of

    return spec_of(model)


def _leading_dim(state_dict: dict[str, np.ndarray], key: str) -> int:
    value = state_dict.get(key)
    if value is None:
        raise CheckpointError(f"missing key {key} (not a reference checkpoint?)")
    if np.ndim(value) != 4:
        raise CheckpointError(f"{key} has shape {tuple(np.shape(value))}, expected 4 dimensions")
    return int(np.shape(value)[0])


def infer_config(state_dict: dict[str, np.ndarray]) -> dict[str, Any]:
    """Architecture arguments of a reference state dict (so research variants load too).

    The dense layers of each block must be numbered 0..L-1 without gaps (a stray key far
    beyond them is reported as unexpected rather than building a huge model), and the
    result must pass `validate_model_config`.
    """
    features = _leading_dim(state_dict, "conv32x.1.0.weight_v")
    growth = _leading_dim(state_dict, "RDB1.dense_layers.0.conv.0.weight_v")
    indices: dict[int, set[int]] = {}
    first_key: dict[tuple[int, int], str] = {}
    for key in state_dict:
        m = re.match(r"RDB(\d{1,4})\.dense_layers\.(\d{1,6})\.", key)
        if m:
            b, i = int(m[1]), int(m[2])
            indices.setdefault(b, set()).add(i)
            first_key.setdefault((b, i), key)
    if not indices or sorted(indices) != list(range(1, len(indices) + 1)):
        found = ", ".join(str(b) for b in sorted(indices)[:10])
        raise CheckpointError(f"residual dense blocks are not numbered 1..N (found: {found})")
    for b, seen in sorted(indices.items()):
        n = next(i for i in range(len(seen) + 1) if i not in seen)  # layers 0..n-1 present
        stray = sorted(i for i in seen if i > n)
        if stray:
            run = f"numbered 0..{n - 1}, then {stray[0]}" if n else "missing layer 0"
            raise CheckpointError(
                f"unexpected key {first_key[(b, stray[0])]}: the dense layers of RDB{b} are {run}"
            )
    config = {
        "features": features,
        "growth": growth,
        "dense_layers": [len(indices[b]) for b in sorted(indices)],
    }
    return validate_model_config(config)


def _param_refs(model: DarkRestorationNet) -> dict[str, nnx.Param]:
    """Flat key -> Param variable of ``model`` (for in-place assignment)."""
    refs = {}
    for path, var in nnx.iter_graph(model):
        if isinstance(var, nnx.Param):
            refs[flat_key(path)] = var
    return refs


def state_dict_to_params(
    state_dict: dict[str, np.ndarray], model: DarkRestorationNet
) -> dict[str, np.ndarray]:
    """Rename and transpose a reference state dict into ``model``'s flat parameter dict.

    Every tensor is checked against ``model``; missing keys, unexpected keys and shape
    mismatches raise a one-line `CheckpointError`.
    """
    refs = _param_refs(model)
    out: dict[str, np.ndarray] = {}
    seen: set[str] = set()
    for prefix, path in conv_table(model.dense_layer_counts):
        for torch_leaf, (flax_leaf, to_flax, to_torch) in LEAVES.items():
            key = flat_key((*path, flax_leaf))
            tkey = f"{prefix}.{torch_leaf}"
            if key not in refs:
                if tkey in state_dict:
                    raise CheckpointError(f"unexpected key {tkey}: this layer has no {torch_leaf}")
                continue
            # a zero-strided stand-in: the expected shape without allocating the tensor
            stand_in = np.broadcast_to(np.float32(0), refs[key].shape)
            expected = tuple(to_torch(stand_in).shape)
            if tkey not in state_dict:
                raise CheckpointError(f"missing key {tkey} (expected shape {expected})")
            value = np.asarray(state_dict[tkey])
            if value.shape != expected:
                raise CheckpointError(
                    f"shape mismatch for {tkey}: checkpoint {tuple(value.shape)}, model {expected}"
                )
            if not np.issubdtype(value.dtype, np.floating):
                raise CheckpointError(f"{tkey} has dtype {value.dtype}, expected floating point")
            out[key] = np.ascontiguousarray(to_flax(value.astype(np.float32)))
            seen.add(tkey)
    unexpected = sorted(set(state_dict) - seen)
    if unexpected:
        shape = tuple(np.shape(state_dict[unexpected[0]]))
        more = f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""
        raise CheckpointError(f"unexpected key {unexpected[0]} (shape {shape}){more}")
    return out


def params_to_state_dict(model: DarkRestorationNet) -> dict[str, np.ndarray]:
    """The reference state dict (torch names and layouts, NumPy arrays) of ``model``."""
    refs = _param_refs(model)
    out = {}
    for prefix, path in conv_table(model.dense_layer_counts):
        for torch_leaf, (flax_leaf, _, to_torch) in LEAVES.items():
            key = flat_key((*path, flax_leaf))
            if key in refs:
                out[f"{prefix}.{torch_leaf}"] = np.ascontiguousarray(
                    to_torch(np.asarray(refs[key][...]))
                )
    return out


def assign_params(model: DarkRestorationNet, params: dict[str, np.ndarray]) -> None:
    """Write a flat parameter dict into ``model`` in place, checking keys and shapes."""
    refs = _param_refs(model)
    missing = sorted(set(refs) - set(params))
    if missing:
        raise CheckpointError(f"missing parameter {missing[0]} (shape {refs[missing[0]].shape})")
    unexpected = sorted(set(params) - set(refs))
    if unexpected:
        raise CheckpointError(f"unexpected parameter {unexpected[0]}")
    for key, var in refs.items():
        value = np.asarray(params[key])
        if value.shape != var.shape:
            raise CheckpointError(
                f"shape mismatch for {key}: checkpoint {value.shape}, model {var.shape}"
            )
        var.set_value(jax.numpy.asarray(value, dtype=var.dtype))


def model_params(model: DarkRestorationNet) -> dict[str, np.ndarray]:
    """The flat parameter dict of ``model`` (NumPy copies)."""
    return {k: np.asarray(v[...]) for k, v in _param_refs(model).items()}


def load_torch_model(path: str | Path) -> DarkRestorationNet:
    """The model with weights from a PyTorch checkpoint of the reference (no torch needed)."""
    name = printable_path(path)
    state_dict = extract_state_dict(read_torch_checkpoint(path), name)
    try:
        model = create_model(abstract=True, **infer_config(state_dict))
        assign_params(model, state_dict_to_params(state_dict, model))
    except (CheckpointError, ValueError) as e:
        raise CheckpointError(f"{name}: {flatten(str(e))}") from None
    except MemoryError:
        raise CheckpointError(f"{name}: not enough memory to build the model") from None
    return model


def save_converted(
    model: DarkRestorationNet, dst: str | Path, *, source: str | Path | None = None
) -> dict[str, Any]:
    """Write ``model``'s parameters and a metadata record as an orbax checkpoint at ``dst``."""
    import orbax.checkpoint as ocp

    dst = Path(dst).absolute()
    if dst.exists():
        raise CheckpointError(f"{dst}: already exists (choose a new destination)")
    params = model_params(model)
    metadata = {
        "format": "jaxdark-params",
        "format_version": FORMAT_VERSION,
        "model_config": model_config(model),
        "param_count": count_params(model),
        "source": str(source) if source is not None else None,
        "source_sha256": sha256_of(source) if source and Path(source).is_file() else None,
    }
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
        ckptr.save(
            dst,
            ocp.args.Composite(
                params=ocp.args.StandardSave(params), metadata=ocp.args.JsonSave(metadata)
            ),
        )
    return metadata


def read_converted_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata record of a converted checkpoint, checked by `validate_metadata`."""
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    name = printable_path(path)
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
        try:
            meta = ckptr.restore(path, ocp.args.Composite(metadata=ocp.args.JsonRestore()))
        except Exception as e:  # orbax raises several types for a bad directory
            raise CheckpointError(f"{name}: not a jaxdark checkpoint ({flatten(str(e))})") from None
    try:
        return validate_metadata(meta["metadata"])
    except CheckpointError as e:
        raise CheckpointError(f"{name}: {e}") from None


def load_converted_model(path: str | Path) -> DarkRestorationNet:
    """The model stored in a converted checkpoint directory."""
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    name = printable_path(path)
    meta = read_converted_metadata(path)
    model = build(meta["model_config"], abstract=True)
    if count_params(model) != meta["param_count"]:
        raise CheckpointError(
            f"{name}: param_count is {meta['param_count']:,}, but model_config has "
            f"{count_params(model):,} parameters"
        )
    target = {k: jax.ShapeDtypeStruct(v.shape, np.float32) for k, v in _param_refs(model).items()}
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
        try:
            restored = ckptr.restore(
                path, ocp.args.Composite(params=ocp.args.StandardRestore(target))
            )
        except Exception as e:
            raise CheckpointError(
                f"{name}: cannot restore parameters ({flatten(str(e))})"
            ) from None
    try:
        assign_params(model, restored["params"])
    except CheckpointError as e:
        raise CheckpointError(f"{name}: {e}") from None
    return model

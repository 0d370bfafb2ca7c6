"""What the metadata of a converted checkpoint may hold, checked field by field: the
model record's types and ranges (`validate_model_config`) and the whole record
(`validate_metadata`).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from jaxdark.errors import CheckpointError
from jaxdark.models import DEFAULT_MODEL
from jaxdark.weights.pytorch.safe_pickle import describe

FORMAT_VERSION = 1

# Architectures a checkpoint may ask for: far beyond the published one (64, 32, (4, 5, 5)),
# small enough that building the (abstract) model takes seconds, not minutes.
CONFIG_LIMITS = {"features": (16, 512), "growth": (1, 256), "blocks": (1, 8), "layers": (2, 16)}
MAX_PARAMS = 64_000_000  # 82 times the published model: 256 MB of float32
METADATA_KEYS = {
    "format",
    "format_version",
    "model_config",
    "param_count",
    "source",
    "source_sha256",
}


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


def validate_model_config(config: Any) -> dict[str, Any]:
    """``config`` checked against `CONFIG_LIMITS` (types, ranges, keys); returns a clean copy.

    Raises a one-line `CheckpointError` (without a file name; callers add it).
    """
    if not isinstance(config, dict):
        raise CheckpointError(f"model config is {describe(config)}, expected a dict")
    name = config.get("name", DEFAULT_MODEL)
    if name != DEFAULT_MODEL:
        return _validate_other_model(name, config)
    named = "name" in config  # records written since the model zoo name their network
    config = {k: v for k, v in config.items() if k != "name"}
    unknown = sorted(str(k) for k in set(config) - {"features", "growth", "dense_layers"})
    if unknown:
        raise CheckpointError(f"model config has unknown key {describe(unknown[0])}")
    out: dict[str, Any] = {}
    for key in ("features", "growth"):
        value = config.get(key)
        lo, hi = CONFIG_LIMITS[key]
        if not _is_int(value) or not lo <= value <= hi:
            raise CheckpointError(f"{key} is {describe(value)}, expected an integer {lo}..{hi}")
        out[key] = int(value)
    if out["features"] % 16:
        raise CheckpointError(f"features is {out['features']}, expected a multiple of 16")
    layers = config.get("dense_layers")
    (blo, bhi), (llo, lhi) = CONFIG_LIMITS["blocks"], CONFIG_LIMITS["layers"]
    if not isinstance(layers, list | tuple) or not blo <= len(layers) <= bhi:
        raise CheckpointError(f"dense_layers is {describe(layers)}, expected {blo} to {bhi} blocks")
    for n in layers:
        if not _is_int(n) or not llo <= n <= lhi:
            raise CheckpointError(
                f"a block has {describe(n)} dense layers, expected an integer {llo}..{lhi}"
            )
    out["dense_layers"] = [int(n) for n in layers]
    return {"name": DEFAULT_MODEL, **out} if named else out


def _validate_other_model(name: Any, config: dict[str, Any]) -> dict[str, Any]:
    """The record of a registered model other than the published one: a known name and
    sizes that are small integers, booleans, strings or lists of those."""
    from jaxdark.errors import ModelError
    from jaxdark.models import get

    if not isinstance(name, str):
        raise CheckpointError(f"model name is {describe(name)}, expected a string")
    try:
        get(name)
    except ModelError as e:
        raise CheckpointError(str(e)) from None

    def plain(v: Any, depth: int = 0) -> bool:
        if isinstance(v, list | tuple):
            return depth < 2 and len(v) <= 64 and all(plain(x, depth + 1) for x in v)
        if _is_int(v):
            return -(2**31) <= v < 2**31
        return v is None or isinstance(v, bool | float | str) and len(str(v)) <= 64

    for key, value in config.items():
        if not isinstance(key, str) or not plain(value):
            raise CheckpointError(f"model config entry {describe(key)} is {describe(value)}")
    return dict(config)


def validate_metadata(meta: Any) -> dict[str, Any]:
    """A converted checkpoint's metadata record checked: exactly `METADATA_KEYS`, each of
    the right type and range (``model_config`` through `validate_model_config`).

    Returns the record with a clean ``model_config``; raises a one-line `CheckpointError`
    without the file name (callers add it).
    """
    if not isinstance(meta, dict) or meta.get("format") != "jaxdark-params":
        raise CheckpointError("not a jaxdark parameter checkpoint")
    version = meta.get("format_version")
    if not _is_int(version) or version != FORMAT_VERSION:
        raise CheckpointError(f"format version {describe(version)}, expected {FORMAT_VERSION}")
    unknown = sorted(str(k) for k in set(meta) - METADATA_KEYS)
    if unknown:
        raise CheckpointError(f"metadata has unknown key {describe(unknown[0])}")
    missing = sorted(METADATA_KEYS - set(meta))
    if missing:
        raise CheckpointError(f"metadata lacks {describe(missing[0])}")
    count = meta["param_count"]
    if not _is_int(count) or not 0 < count <= MAX_PARAMS:
        raise CheckpointError(f"param_count is {describe(count)}, expected 1 to {MAX_PARAMS:,}")
    source, digest = meta["source"], meta["source_sha256"]
    if source is not None and not isinstance(source, str):
        raise CheckpointError(f"source is {describe(source)}, expected a string or null")
    if digest is not None and not (
        isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)
    ):
        raise CheckpointError(f"source_sha256 is {describe(digest)}, expected 64 hex digits")
    try:
        config = validate_model_config(meta["model_config"])
    except CheckpointError as e:
        raise CheckpointError(f"model_config: {e}") from None
    return {**meta, "model_config": config}

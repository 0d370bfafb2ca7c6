"""The fields a training or evaluation config must declare, checked once, up front.

Code reads config fields directly (``config.batch_size``); a config file that lacks
one, or holds a value out of range, is refused here with one line, before any work.
``configs/sid_sony.py`` declares every field with its default and meaning.
"""

from __future__ import annotations

import math
from typing import Any

from jaxdark.constants import AMPLIFICATION_MODES, INPUT_MULTIPLE, MAX_M
from jaxdark.errors import JaxdarkError
from jaxdark.models.precision import resolve_dtype

EVAL_FIELDS = (
    "data_dir", "tfds_data_dir", "amplification", "m", "eval_split", "eval_source",
    "drop_misaligned", "eval_tile_size", "eval_tile_overlap", "model",
)  # fmt: skip
VALIDATION_FIELDS = ("eval_every_steps", "validation_split", "num_eval_pairs")
TRAIN_FIELDS = EVAL_FIELDS + VALIDATION_FIELDS + (
    "prepare_dataset", "train_split", "batch_size", "crop_size", "hflip_prob", "vflip_prob",
    "worker_count", "worker_buffer_size", "read_threads", "prefetch_batches", "init_weights",
    "num_train_steps", "learning_rate", "lr_decay_steps", "lr_decay_factor",
    "min_learning_rate", "seed", "num_devices", "checkpoint_every_steps",
    "checkpoints_to_keep", "async_checkpointing", "log_every_steps", "image_every_steps",
    "num_logged_images", "compute_dtype", "photo_dir", "synthetic_fraction", "synthetic_window",
    "synthetic_variants", "synthetic_val_fraction", "synthetic_ratios", "synthetic_ratio_range",
    "synthetic_read_model", "synthetic_read_noise_scale", "synthetic_tone_curve",
    "synthetic_white_balance_spread", "synthetic_color_matrix_spread", "sid_storage",
    "sid_frames_dir", "synthetic_on_device",
)  # fmt: skip
SID_STORAGES = ("frames", "records")


def _require(config: Any, fields: tuple[str, ...]) -> None:
    missing = [f for f in fields if f not in config]
    if missing:
        raise JaxdarkError(
            f"the config has no field {missing[0]!r}"
            + (f" (nor {', '.join(missing[1:])})" if len(missing) > 1 else "")
            + "; start from configs/sid_sony.py"
        )


def _check_common(config: Any) -> None:
    if config.amplification not in AMPLIFICATION_MODES:
        raise JaxdarkError(
            f"config.amplification must be one of {AMPLIFICATION_MODES}, "
            f"got {config.amplification!r}"
        )
    m = config.m
    if (
        isinstance(m, bool)
        or not isinstance(m, int | float)
        or not (math.isfinite(m) and 0 < m <= MAX_M)
    ):
        raise JaxdarkError(f"config.m must be a number in (0, {MAX_M:g}], got {m!r}")


def _check_finite(value: Any, name: str) -> None:
    """One-line `JaxdarkError` if a number anywhere in ``value`` is NaN or infinite (a
    non-finite learning rate trains on NaN and loses the run)."""
    if hasattr(value, "items"):
        for key, item in value.items():
            _check_finite(item, f"{name}.{key}" if name else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_finite(item, f"{name}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise JaxdarkError(f"config.{name} must be a finite number, got {value!r}")


def check_eval_config(config: Any) -> None:
    """One-line `JaxdarkError` unless ``config`` has every evaluation field, in range."""
    _require(config, EVAL_FIELDS)
    _check_finite(config, "")
    _check_common(config)


def check_train_config(config: Any) -> None:
    """One-line `JaxdarkError` unless ``config`` has every training field, in range."""
    _require(config, TRAIN_FIELDS)
    _check_finite(config, "")
    _check_common(config)
    for name in ("learning_rate", "min_learning_rate", "lr_decay_factor"):
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise JaxdarkError(f"config.{name} must be a number >= 0, got {value!r}")
    if not config.data_dir and not config.tfds_data_dir and not config.synthetic_fraction:
        raise JaxdarkError(
            "set --config.data_dir to the extracted SID folder, or train on synthetic pairs "
            "(--config=configs/synthetic.py)"
        )
    for name in ("batch_size", "crop_size", "num_train_steps", "checkpoint_every_steps"):
        if int(config[name]) <= 0:
            raise JaxdarkError(f"config.{name} must be > 0, got {config[name]}")
    if config.sid_storage not in SID_STORAGES:
        raise JaxdarkError(
            f"config.sid_storage must be one of {SID_STORAGES}, got {config.sid_storage!r}"
        )
    resolve_dtype(config.compute_dtype)
    if config.crop_size % INPUT_MULTIPLE:
        raise JaxdarkError(
            f"config.crop_size must be a multiple of {INPUT_MULTIPLE}, got {config.crop_size}"
        )

"""Where a network's weights come from: one `load_model` for every kind of source.

* a PyTorch checkpoint of the reference (the official ``.pth``), read without PyTorch;
* a directory written by ``jaxdark convert``;
* a training run's work directory (its newest complete checkpoint) or one step's
  directory ``WORKDIR/checkpoints/<step>``; the architecture is the record saved with the
  checkpoint (`MODEL_ITEM`), else the run's saved config (``WORKDIR/config.json``, field
  ``model``).

A training run lays out its files as `RUN_CONFIG`, `RUN_CHECKPOINTS`/<step>/`STATE_ITEM`
(see `jaxdark.training.checkpointing`, which writes them); this module only reads them
and needs no training library.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from jaxdark.errors import CheckpointError, JaxdarkError, flatten, one_line, printable_path

log = logging.getLogger(__name__)

RUN_CONFIG = "config.json"  # the run's config, saved by the training loop
RUN_CHECKPOINTS = "checkpoints"  # orbax CheckpointManager directory of a run
STATE_ITEM = "state"  # item holding {"step", "params", "opt_state"} in each step
MODEL_ITEM = "model"  # JSON item holding the architecture record {"name": ..., **sizes}
MODEL_RECORD_FILE = "metadata"  # the file orbax's JSON handler writes in the item folder
MAX_RECORD_BYTES = 1 << 20


class DamagedStepError(CheckpointError):
    """A step whose parameter files cannot be read (truncated, missing pieces)."""


def complete_steps(directory: str | os.PathLike) -> list[int]:
    """Steps of the complete checkpoints under a run's ``checkpoints`` folder, oldest first
    (orbax's view: a save interrupted before its final rename is not listed)."""
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()
    if not directory.is_dir():
        raise CheckpointError(f"{printable_path(directory)}: not a folder of checkpoints")
    with ocp.CheckpointManager(directory) as manager:
        return sorted(manager.all_steps())


def read_model_spec(directory: str | os.PathLike, step: int | None = None) -> dict[str, Any] | None:
    """The architecture record ``{"name": ..., **sizes}`` saved with the checkpoint at
    ``step`` (default: the newest complete one) under ``directory`` (a run's
    ``checkpoints`` folder); None if that checkpoint has none (written before models were
    recorded). A record that is not a JSON object with a name is a one-line
    `CheckpointError` naming its file."""
    directory = Path(directory).absolute()
    if step is None:
        steps = complete_steps(directory)
        if not steps:
            raise CheckpointError(f"{printable_path(directory)}: no complete checkpoint")
        step = steps[-1]
    item = directory / str(step) / MODEL_ITEM
    if not item.exists():
        return None
    return _read_record(item / MODEL_RECORD_FILE)


def _read_record(path: Path) -> dict[str, Any]:
    """A model record file: a JSON object with a string ``name`` (checked, one line)."""
    where = printable_path(path)
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise CheckpointError(f"{where}: {path.stat().st_size} bytes, not a model record")
        record = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{where}: not a model record (not UTF-8 text)") from None
    except ValueError as e:
        raise CheckpointError(f"{where}: not a model record (bad JSON: {one_line(e)})") from None
    except OSError as e:
        raise CheckpointError(
            f"{where}: cannot read the model record ({e.strerror or e})"
        ) from None
    if not isinstance(record, dict) or not isinstance(record.get("name", ""), str):
        raise CheckpointError(f"{where}: not a model record (expected an object with a name)")
    return record


def run_directory(path: str | os.PathLike) -> tuple[Path, int | None] | None:
    """``(workdir, step)`` if ``path`` is a training run's work directory (step None:
    the newest) or one of its step directories, else None."""
    p = Path(path).absolute()
    if (p / RUN_CHECKPOINTS).is_dir():
        return p, None
    if p.parent.name == RUN_CHECKPOINTS and p.name.isdigit() and (p / STATE_ITEM).is_dir():
        return p.parent.parent, int(p.name)
    return None


def run_model_config(workdir: str | os.PathLike) -> dict[str, Any]:
    """The ``model`` field of a run's saved config (the architecture it trained)."""
    path = Path(workdir) / RUN_CONFIG
    try:
        config = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (the run's saved config names its model)") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: cannot read the run's config (not UTF-8 text)") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read the run's config ({one_line(e)})") from None
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict):
        raise CheckpointError(f"{path}: no 'model' section (not a jaxdark training run?)")
    return model


def _flat_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    import jax

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
        ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): tuple(leaf.shape)
        for path, leaf in leaves
    }


def check_param_shapes(saved: Any, target: Any, where: str) -> None:
    """One-line `CheckpointError` unless the saved parameter tree has ``target``'s keys and
    shapes (checked before anything is read, so a mismatch is named clearly)."""
    have, want = _flat_shapes(saved), _flat_shapes(target)
    for key in sorted(want):
        if key not in have:
            raise CheckpointError(f"{where}: no parameter {key}; does the model config match?")
        if have[key] != want[key]:
            raise CheckpointError(
                f"{where}: parameter {key} has shape {have[key]}, the model expects {want[key]}"
            )
    extra = sorted(set(have) - set(want))
    if extra:
        raise CheckpointError(f"{where}: unexpected parameter {extra[0]}; does the model match?")


def load_run_model(
    path: str | os.PathLike, model_config: dict[str, Any] | None = None
) -> tuple[Any, int]:
    """The network of a training run's checkpoint and its step.

    ``path`` is the run's work directory (newest complete checkpoint) or a step
    directory. Only the parameters are read (not the optimiser state); the architecture
    is ``model_config`` or, by default, the checkpoint's record, else the run's saved
    config. A damaged step named explicitly is a one-line `CheckpointError`; when the
    newest step of a work directory is damaged (its parameter files cannot be read), the
    newest readable older one is used and a warning says so. A bad model record is never
    skipped: it is a one-line error naming its file.
    """
    found = run_directory(path)
    if found is None:
        raise CheckpointError(f"{path}: not a training run (no {RUN_CHECKPOINTS}/ folder)")
    workdir, step = found
    directory = workdir / RUN_CHECKPOINTS
    steps = complete_steps(directory)
    if step is not None and step not in steps:
        raise CheckpointError(f"{directory / str(step)}: not a complete training checkpoint")
    candidates = [step] if step is not None else steps[::-1]
    if not candidates:
        raise CheckpointError(f"{directory}: no complete training checkpoint")
    failures: list[str] = []
    for s in candidates:
        try:
            model = _run_step_model(workdir, s, model_config)
        except DamagedStepError as e:  # a bad record or a NaN is not skipped: it is refused
            if step is not None:
                raise
            failures.append(str(e))
            continue
        if failures:
            log.warning(
                "%s; using the older complete step %d instead (%d newer step(s) damaged)",
                failures[0],
                s,
                len(failures),
            )
        return model, int(s)
    raise CheckpointError(f"{failures[0]} (and no older step is readable)")


def _run_step_model(workdir: Path, step: int, model_config: dict[str, Any] | None) -> Any:
    """The network of checkpoint ``step`` of the run at ``workdir`` (parameters only)."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp
    from flax import nnx

    from jaxdark.models import build

    directory = workdir / RUN_CHECKPOINTS
    where = printable_path(directory / str(step))
    if model_config is None:
        model_config = read_model_spec(directory, step)
        record = directory / str(step) / MODEL_ITEM / MODEL_RECORD_FILE
        if model_config is None:
            model_config, record = run_model_config(workdir), workdir / RUN_CONFIG
    else:
        record = None
    try:
        model = build(dict(model_config), abstract=True)
    except (TypeError, ValueError, JaxdarkError) as e:
        named = printable_path(record) if record is not None else f"{where} (given model)"
        raise CheckpointError(f"{named}: bad model record ({one_line(e)})") from None
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    target = nnx.to_pure_dict(params)
    state_dir = directory / str(step) / STATE_ITEM
    handler = ocp.PyTreeCheckpointHandler()
    try:
        meta = handler.metadata(state_dir)
        saved = getattr(meta, "tree", meta)
        if not isinstance(saved, dict) or "params" not in saved:
            raise CheckpointError(f"{where}: no parameters in the saved state")
        check_param_shapes(saved["params"], target, where)
        item = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), target)
        restore_args = jax.tree_util.tree_map(
            lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target
        )
        restored = handler.restore(
            state_dir,
            args=ocp.args.PyTreeRestore(
                item={"params": item}, restore_args={"params": restore_args}, partial_restore=True
            ),
        )
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - orbax/tensorstore raise anything, Exception included
        _quiet_closed_loop_errors()
        raise DamagedStepError(
            f"{where}: damaged or incomplete checkpoint, cannot read the parameters "
            f"({flatten(one_line(e), 160)})"
        ) from None
    finally:
        handler.close()
    nnx.replace_by_pure_dict(params, restored["params"])
    return nnx.merge(graphdef, params, rest)


def _is_closed_loop_error(error: BaseException | None) -> bool:
    return isinstance(error, RuntimeError) and str(error) == "Event loop is closed"


def _quiet_closed_loop_errors() -> None:
    """After orbax gives up on a damaged checkpoint, reads it had started may finish later
    and call back into its closed event loop; Python would print that error's traceback
    after our one-line message. Drop exactly that error (others are reported as usual)."""
    import sys
    import threading

    if getattr(sys.unraisablehook, "_jaxdark", False):
        return
    unraisable, thread_hook = sys.unraisablehook, threading.excepthook

    def on_unraisable(info):
        if not _is_closed_loop_error(info.exc_value):
            unraisable(info)

    def on_thread_error(args):
        if not _is_closed_loop_error(args.exc_value):
            thread_hook(args)

    def log_filter(record: logging.LogRecord) -> bool:  # "exception calling callback"
        return not (record.exc_info and _is_closed_loop_error(record.exc_info[1]))

    on_unraisable._jaxdark = True  # type: ignore[attr-defined]
    sys.unraisablehook = on_unraisable
    threading.excepthook = on_thread_error
    for name in ("concurrent.futures", "asyncio"):
        logging.getLogger(name).addFilter(log_filter)


def load_model(path: str | os.PathLike) -> Any:
    """The network with weights from ``path``: the official .pth (or any reference-format
    PyTorch checkpoint), a ``jaxdark convert`` directory, a training run's work
    directory or step directory (see the module docstring), or ``"official"``: the
    official checkpoint, downloaded once into the cache (`jaxdark.weights.official`)."""
    from jaxdark.weights import convert
    from jaxdark.weights.official import resolve_weights

    p = resolve_weights(path)
    if run_directory(p) is not None:
        model = load_run_model(p)[0]
    elif p.is_dir():
        model = convert.load_converted_model(p)
    elif not os.path.lexists(p):
        raise FileNotFoundError(f"weights not found: {printable_path(p)}")
    else:
        model = convert.load_torch_model(p)  # refuses, by name, anything not a regular file
    check_finite_weights(model, p)
    return model


def check_finite_weights(model: Any, where: str | os.PathLike) -> None:
    """One-line `CheckpointError` naming ``where`` and the first parameter holding NaN or
    infinite values (such weights restore every image to black or garbage)."""
    import jax
    import numpy as np
    from flax import nnx

    flat = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(model, nnx.Param)))[0]
    for key, leaf in flat:
        if not np.isfinite(np.asarray(leaf)).all():
            name = ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in key)
            raise CheckpointError(
                f"{printable_path(where)}: parameter {name} holds NaN or infinite values "
                "(a diverged training run?); these weights cannot restore images"
            )


def describe_weights(path: str | os.PathLike) -> str:
    """A short description of where ``path``'s weights come from (for reports)."""
    found = run_directory(path)
    if found is None:
        return str(path)
    workdir, step = found
    return f"{workdir / RUN_CHECKPOINTS} ({'newest step' if step is None else f'step {step}'})"

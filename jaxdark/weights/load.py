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
import os
from pathlib import Path
from typing import Any

from jaxdark.errors import CheckpointError, JaxdarkError, one_line, printable_path

RUN_CONFIG = "config.json"  # the run's config, saved by the training loop
RUN_CHECKPOINTS = "checkpoints"  # orbax CheckpointManager directory of a run
STATE_ITEM = "state"  # item holding {"step", "params", "opt_state"} in each step
MODEL_ITEM = "model"  # JSON item holding the architecture record {"name": ..., **sizes}


def read_model_spec(directory: str | os.PathLike, step: int | None = None) -> dict[str, Any] | None:
    """The architecture record ``{"name": ..., **sizes}`` saved with the checkpoint at
    ``step`` (default: the newest complete one) under ``directory`` (a run's
    ``checkpoints`` folder); None if that checkpoint has none (written before models were
    recorded)."""
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()
    with ocp.CheckpointManager(
        directory, item_handlers={MODEL_ITEM: ocp.JsonCheckpointHandler()}
    ) as manager:
        step = manager.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"{directory}: no complete checkpoint")
        if not (directory / str(step) / MODEL_ITEM).exists():
            return None
        restored = manager.restore(
            step, args=ocp.args.Composite(**{MODEL_ITEM: ocp.args.JsonRestore()})
        )
    return dict(restored[MODEL_ITEM])


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
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (the run's saved config names its model)") from None
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
    directory. Only the parameters are read; the architecture is ``model_config`` or,
    by default, the run's saved config.
    """
    import jax
    import orbax.checkpoint as ocp
    from flax import nnx

    from jaxdark.models import build

    found = run_directory(path)
    if found is None:
        raise CheckpointError(f"{path}: not a training run (no {RUN_CHECKPOINTS}/ folder)")
    workdir, step = found
    directory = workdir / RUN_CHECKPOINTS
    if model_config is None:
        model_config = read_model_spec(directory, step) or run_model_config(workdir)
    try:
        model = build(dict(model_config), abstract=True)
    except (TypeError, ValueError, JaxdarkError) as e:
        raise CheckpointError(f"{workdir}: bad model record ({one_line(e)})") from None
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    target = nnx.to_pure_dict(params)
    with ocp.CheckpointManager(
        directory, item_handlers={STATE_ITEM: ocp.StandardCheckpointHandler()}
    ) as manager:
        if step is None:
            step = manager.latest_step()
        if step is None or step not in manager.all_steps():
            raise CheckpointError(f"{directory}: no complete training checkpoint")
        where = f"{directory / str(step)}"
        try:
            meta = manager.item_metadata(step)[STATE_ITEM]
            check_param_shapes(meta["params"], target, where)
            abstract = jax.tree_util.tree_map(
                lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), dict(meta)
            )
            abstract["params"] = jax.tree_util.tree_map(
                lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), target
            )
            restored = manager.restore(
                step, args=ocp.args.Composite(**{STATE_ITEM: ocp.args.StandardRestore(abstract)})
            )[STATE_ITEM]
        except (ValueError, KeyError, TypeError, FileNotFoundError) as e:
            raise CheckpointError(f"{where}: cannot read the parameters ({one_line(e)})") from None
    nnx.replace_by_pure_dict(params, restored["params"])
    return nnx.merge(graphdef, params, rest), int(step)


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

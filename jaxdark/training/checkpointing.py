"""Training checkpoints with orbax: async, atomic, every N steps and at the end, last K kept.

A checkpoint holds the train state (step, parameters, optimiser state) and the grain
iterator's state (one small JSON file per process), so a resumed run continues the same
data stream. Orbax writes each checkpoint to a temporary directory and renames it when
complete; a run killed at any moment, even mid-save, therefore resumes from the last
complete checkpoint (leftover temporary directories are removed on start).

`PreemptionGuard` turns SIGTERM (and SIGINT) into a flag the training loop polls, so it
can save and exit cleanly; across processes the flag is combined so all stop at the
same step.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jaxdark.errors import CheckpointError, flatten, one_line
from jaxdark.training.step import TrainState
from jaxdark.weights.load import MODEL_ITEM, STATE_ITEM, read_model_spec  # noqa: F401


def _state_tree(state: TrainState) -> dict:
    return {"step": state.step, "params": state.params, "opt_state": state.opt_state}


def _abstract(tree: Any) -> Any:
    def spec(x):
        sharding = getattr(x, "sharding", None)
        return jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding)

    return jax.tree_util.tree_map(spec, tree)


class NonFiniteError(CheckpointError):
    """The train state holds NaN or infinite values: it is not saved (a finite checkpoint
    is never rotated away for it)."""


def check_finite_state(step: int, params: Any, loss: float | None = None) -> None:
    """One-line `NonFiniteError` if ``loss`` or any parameter is NaN or infinite."""
    if loss is not None and not np.isfinite(loss):
        raise NonFiniteError(
            f"step {step}: the loss is {loss} (diverged: lower the learning rate?); stopping "
            "without saving, the last checkpoint is kept"
        )
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        return
    finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in leaves]))
    if not bool(jax.device_get(finite)):
        raise NonFiniteError(
            f"step {step}: the parameters hold NaN or infinite values (diverged: lower the "
            "learning rate?); stopping without saving, the last checkpoint is kept"
        )


class Checkpointer:
    """Saves and restores (train state, data iterator) under ``directory``.

    Args:
      directory: where step directories go (created if missing).
      every_steps: save when ``step % every_steps == 0`` (plus `save(..., force=True)`).
      max_to_keep: number of most recent checkpoints kept.
      async_save: write in a background thread while training continues.
      model_spec: the architecture record ``{"name": ..., **sizes}``
        (`jaxdark.models.spec_of`), saved with every checkpoint as the JSON item
        ``model`` so the checkpoint says which network it holds (`read_model_spec`).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        every_steps: int,
        max_to_keep: int = 3,
        async_save: bool = True,
        model_spec: dict[str, Any] | None = None,
    ):
        if every_steps <= 0:
            raise ValueError(f"checkpoint_every_steps must be > 0, got {every_steps}")
        if max_to_keep <= 0:
            raise ValueError(f"checkpoints_to_keep must be > 0, got {max_to_keep}")
        self.directory = Path(directory).absolute()
        self.every_steps = int(every_steps)
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=every_steps,
            max_to_keep=max_to_keep,
            create=True,
            cleanup_tmp_directories=True,
            enable_async_checkpointing=async_save,
        )
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_handlers={
                STATE_ITEM: ocp.StandardCheckpointHandler(),
                "data": grain.checkpoint.CheckpointHandler(),
                MODEL_ITEM: ocp.JsonCheckpointHandler(),
            },
        )
        self.model_spec = None if model_spec is None else dict(model_spec)
        # Orbax removes leftovers of interrupted saves in the background; finish that
        # before this run writes checkpoints of its own.
        cleanup = getattr(self._manager, "_cleanup_tmp_directory_future", None)
        if cleanup is not None:
            cleanup.result()

    def latest_step(self) -> int | None:
        """Step of the newest complete checkpoint, or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """Steps of all complete checkpoints kept, oldest first."""
        return sorted(self._manager.all_steps())

    def due(self, step: int) -> bool:
        """Whether `save` would write a checkpoint after ``step`` (unforced)."""
        return step % self.every_steps == 0 and step not in self._manager.all_steps()

    def save(
        self, step: int, state: TrainState, data_iterator: Any, *, force: bool = False
    ) -> bool:
        """Save ``state`` (after ``step`` updates) if ``step`` is a checkpoint step or
        ``force``; returns whether a save was started. The write is asynchronous; the
        state is copied first (so later donated steps cannot change it) and the iterator
        state is taken now. A state with non-finite parameters is never saved
        (`NonFiniteError`)."""
        if not (force or step % self.every_steps == 0) or step in self._manager.all_steps():
            return False
        check_finite_state(step, state.params)
        snapshot = jax.tree_util.tree_map(jnp.copy, _state_tree(state))
        args = {STATE_ITEM: ocp.args.StandardSave(snapshot)}
        if data_iterator is not None:
            args["data"] = grain.checkpoint.CheckpointSave(data_iterator)
        if self.model_spec is not None:
            args[MODEL_ITEM] = ocp.args.JsonSave(self.model_spec)
        # The decision is ours (orbax would also save the first step of a run).
        return self._manager.save(step, args=ocp.args.Composite(**args), force=True)

    def restore(
        self, template: TrainState, data_iterator: Any, step: int | None = None
    ) -> TrainState:
        """Restore the checkpoint at ``step`` (default: latest) into arrays shaped and
        sharded like ``template``; ``data_iterator`` (if given) is set to its saved state."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"{self.directory}: no complete checkpoint to restore")
        args = {STATE_ITEM: ocp.args.StandardRestore(_abstract(_state_tree(template)))}
        if data_iterator is not None:
            args["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(**args))
        except (ValueError, KeyError, FileNotFoundError) as e:
            raise CheckpointError(
                f"{self.directory}: checkpoint {step} does not fit this run "
                f"(model, optimiser or data settings changed?): {one_line(e)}"
            ) from None
        except Exception as e:  # noqa: BLE001 - tensorstore raises bare Exception on damage
            raise CheckpointError(
                f"{self.directory}: checkpoint {step} is damaged or incomplete "
                f"({flatten(one_line(e), 160)}); move that step folder away to resume from "
                "the one before"
            ) from None
        tree = restored[STATE_ITEM]
        return TrainState(step=tree["step"], params=tree["params"], opt_state=tree["opt_state"])

    def wait(self) -> None:
        """Block until pending saves are complete."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release resources."""
        self._manager.wait_until_finished()
        self._manager.close()


class PreemptionGuard:
    """Context manager: SIGTERM/SIGINT set a flag instead of killing the process.

    ``guard.should_stop(step)`` is True once a signal arrived on any process (checked
    across processes every ``sync_every`` steps when there are several). A second
    SIGINT restores the default behaviour (immediate KeyboardInterrupt).
    """

    def __init__(self, sync_every: int = 10):
        self.sync_every = max(1, int(sync_every))
        self._event = threading.Event()
        self._previous: dict[int, Any] = {}
        self.signal_name: str | None = None

    def _handler(self, signum, frame):
        del frame
        if self._event.is_set() and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        self.signal_name = signal.Signals(signum).name
        self._event.set()

    def __enter__(self) -> PreemptionGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        """Whether this process received a stop signal."""
        return self._event.is_set()

    def should_stop(self, step: int) -> bool:
        """Whether all processes should stop (and save) after ``step``."""
        if jax.process_count() == 1:
            return self.requested
        if step % self.sync_every:
            return False
        from jax.experimental import multihost_utils  # noqa: PLC0415

        flags = multihost_utils.process_allgather(np.int32(self.requested))
        return bool(np.max(flags))

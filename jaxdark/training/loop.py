"""`train_and_evaluate(config, workdir)`: train the network on SID Sony.

One loop for every setting: one CPU, several local devices, a GPU, or a pod after
``jax.distributed.initialize()``. Each step feeds this process's share of the global
batch (`jaxdark.data.pipeline`) into the jitted shard_map step (`jaxdark.training.step`);
orbax checkpoints (`jaxdark.training.checkpointing`) hold the train state and the data iterator,
and a run started on a workdir that has one resumes from it. SIGTERM/SIGINT save a
checkpoint and return. Logs: TensorBoard event files under ``WORKDIR/tensorboard`` and a
console progress line (process 0).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

from jaxdark.data import sid
from jaxdark.data.device_synthesis import device_stage, sharded_synthesis
from jaxdark.data.pipeline import make_iterator
from jaxdark.data.sid_frames import SIDFrames, is_exported
from jaxdark.data.synthetic_source import make_train_source
from jaxdark.errors import CheckpointError, JaxdarkError, one_line
from jaxdark.fileio import write_atomic
from jaxdark.models import spec_of
from jaxdark.training.checkpointing import Checkpointer, PreemptionGuard, check_finite_state
from jaxdark.training.config import check_train_config
from jaxdark.training.optim import make_optimizer
from jaxdark.training.progress import ProgressLogger, panels
from jaxdark.training.state import setup_training
from jaxdark.training.step import (
    DATA_AXIS,
    host_scalars,
    make_data_mesh,
    make_global_batch,
    make_predict_fn,
    to_host,
)
from jaxdark.weights.load import RUN_CHECKPOINTS, RUN_CONFIG, read_model_spec

log = logging.getLogger("jaxdark.training")


def _train_source(config: ml_collections.ConfigDict) -> sid.SIDPairs | SIDFrames:
    tfds_dir = config.tfds_data_dir or None
    frames = config.sid_storage == "frames"
    out = config.sid_frames_dir or sid.frames_dir(tfds_dir)
    missing = not sid.is_prepared(tfds_dir) or (
        frames and not is_exported(out, (config.train_split,))
    )
    if missing:
        if not config.prepare_dataset or jax.process_count() > 1:
            raise JaxdarkError(
                f"{sid.NAME} is not prepared in {tfds_dir or '~/tensorflow_datasets'}"
                + (f" (frames: {out})" if frames else "")
                + f"; run python -m jaxdark.data.sid --manual_dir={config.data_dir or 'SID'} "
                f"--tfds_dir={tfds_dir or 'DIR'}"
            )
        log.info("preparing %s from %s (once) ...", sid.NAME, config.data_dir)
        sid.prepare(config.data_dir, tfds_dir, frames=False)
        if frames:
            sid.export_frames(tfds_dir, out)
    if frames:
        return SIDFrames(config.train_split, out)
    return sid.SIDPairs(config.train_split, tfds_dir)


def _initial_model(config: ml_collections.ConfigDict) -> nnx.Module:
    """``config.init_weights`` (anything `load_model` reads) or a fresh ``config.model``."""
    from jaxdark.models import build
    from jaxdark.weights.load import load_model

    if config.init_weights:
        return load_model(config.init_weights)
    return build(config.model.to_dict(), int(config.seed))


def _mesh(config: ml_collections.ConfigDict):
    n = int(config.num_devices or 0)
    if n and jax.process_count() > 1 and n != jax.device_count():
        raise JaxdarkError("config.num_devices must be 0 (all devices) in multi-process runs")
    mesh = make_data_mesh(n or None)
    if config.batch_size % mesh.size:
        raise JaxdarkError(
            f"config.batch_size {config.batch_size} must be a multiple of the number of "
            f"devices ({mesh.size})"
        )
    return mesh


def _device_batch(local: dict, mesh, synthesize: Callable | None) -> dict:
    """The global batch of this process's share: placed as is, or (``synthesize``)
    photo crops and seeds placed and made into pairs on the devices."""
    if synthesize is None:
        return make_global_batch({"input": local["input"], "target": local["target"]}, mesh)
    g = make_global_batch({"photo": local["photo"], "seed": local["seed"]}, mesh)
    made = synthesize(g["photo"], g["seed"])
    return {"input": made["input"], "target": made["target"]}


def _local_rows(x: jax.Array) -> np.ndarray:
    """This process's rows of a batch-sharded global array, in order."""
    shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
    return np.concatenate([np.asarray(s.data) for s in shards])


def _evaluator(config: ml_collections.ConfigDict):
    """The validation evaluator (process 0, when enabled), or None."""
    if config.eval_every_steps <= 0 or jax.process_index() != 0:
        return None
    from jaxdark.evaluation.synthetic import make_evaluator

    try:
        return make_evaluator(config)  # SID's Evaluator, or held-out synthetic pairs
    except (JaxdarkError, OSError, ValueError) as e:
        log.warning("validation disabled: %s", one_line(e))
        return None


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    *,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train per ``config`` (see configs/sid_sony.py), checkpointing under ``workdir``.

    Resumes from the newest complete checkpoint in ``WORKDIR/checkpoints``. Returns a
    summary: ``step`` reached, ``preempted`` (stopped by a signal), ``resumed_from`` and
    the last logged ``metrics``. ``on_step`` (tests) is called after every step.
    """
    check_train_config(config)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mesh = _mesh(config)

    source = make_train_source(config, lambda: _train_source(config))
    transform = synthesize = None
    if config.synthetic_on_device:  # the host sends photo crops and seeds only
        source, transform, setting = device_stage(config, source)
        synthesize = sharded_synthesis(mesh, setting, DATA_AXIS)
    data_iter = make_iterator(
        source,
        global_batch_size=int(config.batch_size),
        crop_size=int(config.crop_size),
        seed=int(config.seed),
        amplification=config.amplification,
        m=float(config.m),
        hflip_prob=float(config.hflip_prob),
        vflip_prob=float(config.vflip_prob),
        worker_count=int(config.worker_count),
        worker_buffer_size=int(config.worker_buffer_size),
        read_threads=int(config.read_threads),
        prefetch_batches=int(config.prefetch_batches),
        transform=transform,
    )

    tx, schedule = make_optimizer(
        float(config.learning_rate),
        int(config.lr_decay_steps),
        float(config.lr_decay_factor),
        float(config.min_learning_rate),
    )
    model = _initial_model(config)
    spec = spec_of(model)
    if config.crop_size % model.input_multiple:
        raise JaxdarkError(
            f"config.crop_size {config.crop_size} must be a multiple of {spec['name']}'s input "
            f"multiple {model.input_multiple}"
        )
    setup = setup_training(model, tx, mesh, compute_dtype=config.compute_dtype)
    graphdef, state, train_step = setup.graphdef, setup.state, setup.train_step
    del model
    ckpt = Checkpointer(
        workdir / RUN_CHECKPOINTS,
        model_spec=spec,
        every_steps=int(config.checkpoint_every_steps),
        max_to_keep=int(config.checkpoints_to_keep),
        async_save=bool(config.async_checkpointing),
    )
    resumed_from = ckpt.latest_step()
    if resumed_from is not None:
        saved = read_model_spec(workdir / RUN_CHECKPOINTS, resumed_from)
        if saved is not None and saved != spec:
            raise CheckpointError(
                f"{workdir / RUN_CHECKPOINTS}: the checkpoint holds {saved}, but the config "
                f"builds {spec}; use another --workdir or the run's config"
            )
        state = ckpt.restore(state, data_iter)
        if jax.process_index() == 0:
            log.info("resumed from checkpoint at step %d", resumed_from)
    if jax.process_index() == 0:  # only once the run is known to fit its workdir
        text = config.to_json_best_effort(indent=2)
        write_atomic(workdir / RUN_CONFIG, lambda tmp: tmp.write_text(text))
    step = int(to_host(state.step))

    predict = make_predict_fn(graphdef, mesh)
    logger = ProgressLogger(workdir, int(config.num_train_steps))
    log_every = max(1, int(config.log_every_steps))
    image_every = int(config.image_every_steps)
    n_images = int(config.num_logged_images)
    eval_every = int(config.eval_every_steps)
    evaluator = _evaluator(config)
    pending: list[dict] = []
    last_metrics: dict[str, float] = {}
    preempted = False
    t_last, step_last = time.perf_counter(), step
    waited = 0.0  # seconds blocked on the data iterator since the last log line
    in_flight = None
    try:
        with PreemptionGuard() as guard:
            while step < config.num_train_steps:
                t_wait = time.perf_counter()
                local = next(data_iter)
                waited += time.perf_counter() - t_wait
                batch = _device_batch(local, mesh, synthesize)
                state, metrics = train_step(state, batch)
                step += 1
                if in_flight is not None:  # one step queued: waiting on data means starving
                    jax.block_until_ready(in_flight)
                in_flight = metrics
                pending.append(metrics)
                if ckpt.due(step):  # a diverged step stops the run, unsaved (one line)
                    check_finite_state(step, (), host_scalars(metrics)["loss"])
                ckpt.save(step, state, data_iter)
                if step % log_every == 0 or step == config.num_train_steps:
                    values = [host_scalars(m) for m in pending]
                    pending.clear()
                    now = time.perf_counter()
                    rate = (step - step_last) / max(now - t_last, 1e-9)
                    wait_share = waited / max(now - t_last, 1e-9)
                    t_last, step_last, waited = now, step, 0.0
                    last_metrics = {k: float(np.mean([v[k] for v in values])) for k in values[0]}
                    check_finite_state(step, (), last_metrics.get("loss"))
                    last_metrics.update(
                        learning_rate=float(schedule(step - 1)),
                        steps_per_sec=rate,
                        examples_per_sec=rate * int(config.batch_size),
                        data_wait_share=wait_share,
                    )
                    logger.scalars(step, last_metrics)
                if image_every and step % image_every == 0 and n_images > 0:
                    preds = predict(state.params, batch["input"])
                    logger.images(
                        step,
                        panels(
                            _local_rows(batch["input"]),
                            _local_rows(preds),
                            _local_rows(batch["target"]),
                            n_images,
                        ),
                    )
                if evaluator is not None and step % eval_every == 0:
                    values = dict(evaluator.run(nnx.merge(graphdef, to_host(state.params))))
                    logger.scalars(step, values, prefix="val")
                if on_step is not None:
                    on_step(step)
                if guard.should_stop(step):
                    preempted = True
                    if jax.process_index() == 0:
                        log.info(
                            "%s received: saving step %d and stopping",
                            guard.signal_name or "stop signal",
                            step,
                        )
                    break
            ckpt.save(step, state, data_iter, force=True)
            ckpt.wait()
    finally:
        ckpt.close()
        logger.close()
        close = getattr(data_iter, "close", None)
        if close is not None:
            close()
    summary = {
        "step": step,
        "preempted": preempted,
        "resumed_from": resumed_from,
        "metrics": last_metrics,
    }
    if jax.process_index() == 0:
        (workdir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary

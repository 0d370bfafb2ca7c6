"""`train_and_evaluate(config, workdir)`: train the network on SID Sony.

One loop for every setting: one CPU, several local devices, a GPU, or a pod after
``jax.distributed.initialize()``. Each step feeds this process's share of the global
batch (`jaxdark.data.pipeline`) into the jitted shard_map step (`jaxdark.train_step`);
orbax checkpoints (`jaxdark.checkpointing`) hold the train state and the data iterator,
and a run started on a workdir that has one resumes from it. SIGTERM/SIGINT save a
checkpoint and return. Logs: TensorBoard event files under ``WORKDIR/tensorboard`` and a
console progress line (process 0).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

from jaxdark.checkpointing import Checkpointer, PreemptionGuard
from jaxdark.convert import build_model
from jaxdark.data import sid
from jaxdark.data.pipeline import AMPLIFICATIONS, make_iterator
from jaxdark.errors import JaxdarkError
from jaxdark.optim import make_optimizer
from jaxdark.precision import resolve_dtype
from jaxdark.train_step import (
    TrainState,
    host_scalars,
    init_train_state,
    make_data_mesh,
    make_global_batch,
    make_predict_fn,
    make_train_step,
    replicate,
    split_model,
    to_host,
)

REQUIRED_FIELDS = (
    "data_dir", "batch_size", "crop_size", "num_train_steps", "checkpoint_every_steps",
    "learning_rate", "amplification", "seed",
)  # fmt: skip


def _check_config(config: ml_collections.ConfigDict) -> None:
    for name in REQUIRED_FIELDS:
        if name not in config:
            raise JaxdarkError(f"config has no field {name!r}")
    if not config.data_dir and not config.get("tfds_data_dir"):
        raise JaxdarkError("set --config.data_dir to the extracted SID folder")
    if config.amplification not in AMPLIFICATIONS:
        raise JaxdarkError(
            f"config.amplification must be one of {AMPLIFICATIONS}, got {config.amplification!r}"
        )
    for name in ("batch_size", "crop_size", "num_train_steps", "checkpoint_every_steps"):
        if int(config[name]) <= 0:
            raise JaxdarkError(f"config.{name} must be > 0, got {config[name]}")
    if config.crop_size % 32:
        raise JaxdarkError(f"config.crop_size must be a multiple of 32, got {config.crop_size}")
    resolve_dtype(config.get("compute_dtype", "float32"))  # one-line error if unknown


def _train_source(config: ml_collections.ConfigDict) -> sid.SIDPairs:
    tfds_dir = config.get("tfds_data_dir") or None
    if not sid.is_prepared(tfds_dir):
        if not config.get("prepare_dataset", True) or jax.process_count() > 1:
            raise JaxdarkError(
                f"{sid.NAME} is not prepared in {tfds_dir or '~/tensorflow_datasets'}; run "
                f"python -m jaxdark.data.sid --manual_dir={config.data_dir or 'SID'} "
                f"--tfds_dir={tfds_dir or 'DIR'}"
            )
        print(f"preparing {sid.NAME} from {config.data_dir} (once) ...", flush=True)
        sid.prepare(config.data_dir, tfds_dir)
    return sid.SIDPairs(config.get("train_split", "train"), tfds_dir)


def _initial_model(config: ml_collections.ConfigDict) -> nnx.Module:
    if config.get("init_weights"):
        from jaxdark import load_model  # noqa: PLC0415

        return load_model(config.init_weights)
    m = config.get("model", {})
    m = m.to_dict() if hasattr(m, "to_dict") else dict(m)
    return build_model(m, seed=int(config.seed))


def _mesh(config: ml_collections.ConfigDict):
    n = int(config.get("num_devices", 0) or 0)
    if n and jax.process_count() > 1 and n != jax.device_count():
        raise JaxdarkError("config.num_devices must be 0 (all devices) in multi-process runs")
    mesh = make_data_mesh(n or None)
    if config.batch_size % mesh.size:
        raise JaxdarkError(
            f"config.batch_size {config.batch_size} must be a multiple of the number of "
            f"devices ({mesh.size})"
        )
    return mesh


class _Logger:
    """TensorBoard scalars/images and a console line, on process 0 only."""

    def __init__(self, workdir: Path, total_steps: int):
        self.enabled = jax.process_index() == 0
        self.total = total_steps
        self.writer = None
        if self.enabled:
            from tensorboardX import SummaryWriter  # noqa: PLC0415

            self.writer = SummaryWriter(logdir=str(workdir / "tensorboard"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        for k, v in values.items():
            self.writer.add_scalar(f"train/{k}", v, step)
        eta = (self.total - step) / max(values["steps_per_sec"], 1e-9)
        print(
            f"step {step}/{self.total} | loss {values['loss']:.4f} l1 {values['l1']:.4f} "
            f"ms-ssim {values['ms_ssim']:.4f} | lr {values['learning_rate']:.2e} | "
            f"{values['steps_per_sec']:.2f} steps/s {values['examples_per_sec']:.1f} ex/s | "
            f"eta {_duration(eta)}",
            flush=True,
        )

    def images(self, step: int, panels: np.ndarray) -> None:
        if self.enabled:
            for i, panel in enumerate(panels):
                self.writer.add_image(f"train/crop_{i}", panel, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _duration(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d{h:02d}h" if d else f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _panels(inputs: np.ndarray, preds: np.ndarray, targets: np.ndarray, n: int) -> np.ndarray:
    """(n, H, 3W, 3): amplified input (grey, clipped), restored, ground truth."""
    n = min(n, inputs.shape[0])
    grey = np.repeat(np.clip(inputs[:n], 0, 1), 3, axis=-1)
    return np.concatenate([grey, preds[:n], targets[:n]], axis=2).astype(np.float32)


def _local_rows(x: jax.Array) -> np.ndarray:
    """This process's rows of a batch-sharded global array, in order."""
    shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
    return np.concatenate([np.asarray(s.data) for s in shards])


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
    _check_config(config)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mesh = _mesh(config)
    if jax.process_index() == 0:
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))

    source = _train_source(config)
    data_iter = make_iterator(
        source,
        global_batch_size=int(config.batch_size),
        crop_size=int(config.crop_size),
        seed=int(config.seed),
        amplification=config.amplification,
        brightness=float(config.get("amplification_brightness", 5.0)),
        hflip_prob=float(config.get("hflip_prob", 0.5)),
        vflip_prob=float(config.get("vflip_prob", 0.2)),
        worker_count=int(config.get("worker_count", 0)),
        worker_buffer_size=int(config.get("worker_buffer_size", 2)),
        read_threads=int(config.get("read_threads", 4)),
        prefetch_batches=int(config.get("prefetch_batches", 4)),
    )

    graphdef, params = split_model(_initial_model(config))
    tx, schedule = make_optimizer(
        float(config.learning_rate),
        int(config.get("lr_decay_steps", 500_000)),
        float(config.get("lr_decay_factor", 0.1)),
        float(config.get("min_learning_rate", 1e-5)),
    )
    state: TrainState = replicate(init_train_state(params, tx), mesh)
    ckpt = Checkpointer(
        workdir / "checkpoints",
        every_steps=int(config.checkpoint_every_steps),
        max_to_keep=int(config.get("checkpoints_to_keep", 3)),
        async_save=bool(config.get("async_checkpointing", True)),
    )
    resumed_from = ckpt.latest_step()
    if resumed_from is not None:
        state = ckpt.restore(state, data_iter)
        if jax.process_index() == 0:
            print(f"resumed from checkpoint at step {resumed_from}", flush=True)
    step = int(to_host(state.step))

    compute_dtype = config.get("compute_dtype", "float32")  # float32 or bfloat16
    train_step = make_train_step(graphdef, tx, mesh, compute_dtype=compute_dtype)
    predict = make_predict_fn(graphdef, mesh)
    logger = _Logger(workdir, int(config.num_train_steps))
    log_every = max(1, int(config.get("log_every_steps", 100)))
    image_every = int(config.get("image_every_steps", 0))
    n_images = int(config.get("num_logged_images", 3))
    eval_every = int(config.get("eval_every_steps", 0))
    evaluator = None  # validation (jaxdark.evaluate.Evaluator), process 0 only
    if eval_every > 0 and jax.process_index() == 0:
        from jaxdark.evaluate import Evaluator  # noqa: PLC0415

        try:
            evaluator = Evaluator(config)
        except (JaxdarkError, OSError, ValueError) as e:
            print(f"validation disabled: {e}", flush=True)
    pending: list[dict] = []
    last_metrics: dict[str, float] = {}
    preempted = False
    t_last, step_last = time.perf_counter(), step
    try:
        with PreemptionGuard() as guard:
            while step < config.num_train_steps:
                local = next(data_iter)
                batch = make_global_batch(
                    {"input": local["input"], "target": local["target"]}, mesh
                )
                state, metrics = train_step(state, batch)
                step += 1
                pending.append(metrics)
                ckpt.save(step, state, data_iter)
                if step % log_every == 0 or step == config.num_train_steps:
                    values = [host_scalars(m) for m in pending]
                    pending.clear()
                    now = time.perf_counter()
                    rate = (step - step_last) / max(now - t_last, 1e-9)
                    t_last, step_last = now, step
                    last_metrics = {k: float(np.mean([v[k] for v in values])) for k in values[0]}
                    last_metrics.update(
                        learning_rate=float(schedule(step - 1)),
                        steps_per_sec=rate,
                        examples_per_sec=rate * int(config.batch_size),
                    )
                    logger.scalars(step, last_metrics)
                if image_every and step % image_every == 0 and n_images > 0:
                    preds = predict(state.params, batch["input"])
                    logger.images(
                        step,
                        _panels(
                            _local_rows(batch["input"]),
                            _local_rows(preds),
                            _local_rows(batch["target"]),
                            n_images,
                        ),
                    )
                if evaluator is not None and step % eval_every == 0:
                    values = dict(evaluator.run(nnx.merge(graphdef, to_host(state.params))))
                    for k, v in values.items():
                        logger.writer.add_scalar(f"val/{k}", v, step)
                    print(f"step {step} validation: " + " ".join(
                        f"{k} {v:.4f}" for k, v in values.items()), flush=True)  # fmt: skip
                if on_step is not None:
                    on_step(step)
                if guard.should_stop(step):
                    preempted = True
                    if jax.process_index() == 0:
                        print(
                            f"{guard.signal_name or 'stop signal'} received: saving step "
                            f"{step} and stopping",
                            flush=True,
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

"""Non-finite numbers never cost a run its checkpoints: NaN/inf hyperparameters are refused
up front, and a step whose loss or parameters are not finite stops the run in one line
before anything is saved, so checkpoint rotation never deletes a finite step for it."""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest

from jaxdark.errors import JaxdarkError
from jaxdark.training import loop
from jaxdark.training.checkpointing import Checkpointer, NonFiniteError
from jaxdark.training.config import check_train_config
from jaxdark.training.optim import make_optimizer
from jaxdark.training.step import init_train_state, split_model
from tests.support.tiny_model import TINY, numpy_model


def _config(**overrides):
    from configs.synthetic import get_config

    c = get_config("local")
    c.model.update(TINY)
    c.crop_size = 32
    c.batch_size = 1
    c.checkpoint_every_steps = 1
    c.checkpoints_to_keep = 1
    c.log_every_steps = 1
    c.eval_every_steps = 0
    c.image_every_steps = 0
    c.synthetic_window = 0
    c.worker_count = 0
    for k, v in overrides.items():
        c[k] = v
    return c


@pytest.mark.parametrize(
    "field, value",
    [("learning_rate", math.nan), ("learning_rate", math.inf), ("min_learning_rate", -math.inf),
     ("lr_decay_factor", math.nan), ("m", math.nan), ("synthetic_ratio_range", (100.0, math.inf))],
)  # fmt: skip
def test_non_finite_hyperparameters_are_refused(field, value):
    with pytest.raises(JaxdarkError) as info:
        check_train_config(_config(**{field: value}))
    assert field in str(info.value) and "\n" not in str(info.value)


def test_a_non_finite_state_is_never_saved_nor_rotates_a_finite_one(tmp_path):
    tx, _ = make_optimizer()
    _, params = split_model(numpy_model(0, **TINY))
    state = dataclasses.replace(init_train_state(params, tx), step=np.int32(1))
    ckpt = Checkpointer(tmp_path, every_steps=1, max_to_keep=1, async_save=False)
    assert ckpt.save(1, state, None)
    bad = dict(state.params)
    first = next(iter(bad))
    bad[first] = {k: v * jnp.nan for k, v in bad[first].items()}
    with pytest.raises(NonFiniteError, match="step 2: the parameters hold NaN"):
        ckpt.save(2, dataclasses.replace(state, params=bad, step=np.int32(2)), None)
    ckpt.close()
    assert Checkpointer(tmp_path, every_steps=1).all_steps() == [1]


def _fake_training(monkeypatch, loss_at: dict[int, float], nan_params_at: int | None = None):
    """The loop with its jitted step replaced by a cheap one (params unchanged, loss as
    given), so the loop's own guard is what is tested."""
    real = loop.setup_training

    def setup(*args, **kwargs):
        s = real(*args, **kwargs)

        def step(state, batch):
            n = int(state.step) + 1
            params = state.params
            if n == nan_params_at:
                params = jax_tree_map(lambda x: x * jnp.nan, params)
            loss = jnp.float32(loss_at.get(n, 0.1))
            metrics = {"loss": loss, "l1": loss, "ms_ssim": jnp.float32(0.5)}
            return dataclasses.replace(state, step=state.step + 1, params=params), metrics

        return dataclasses.replace(s, train_step=step)

    monkeypatch.setattr(loop, "setup_training", setup)


def jax_tree_map(f, tree):
    import jax

    return jax.tree_util.tree_map(f, tree)


@pytest.mark.slow
def test_training_stops_before_saving_a_diverged_step(tmp_path, monkeypatch):
    work = tmp_path / "run"
    _fake_training(monkeypatch, {})
    loop.train_and_evaluate(_config(num_train_steps=2), work)
    ckpts = work / "checkpoints"
    assert sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) == [2]

    _fake_training(monkeypatch, {3: math.nan})  # resume: the loss of step 3 is NaN
    with pytest.raises(NonFiniteError, match="step 3: the loss is nan") as info:
        loop.train_and_evaluate(_config(num_train_steps=5), work)
    assert "\n" not in str(info.value)
    assert sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) == [2]

    _fake_training(monkeypatch, {}, nan_params_at=3)  # finite loss, NaN parameters
    with pytest.raises(NonFiniteError, match="step 3: the parameters hold NaN"):
        loop.train_and_evaluate(_config(num_train_steps=5), work)
    assert sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) == [2]

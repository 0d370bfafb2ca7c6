"""jaxdark.training.optim: the step schedule and Adam against torch.optim.Adam."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdark.training.optim import learning_rate_schedule, make_optimizer


def test_schedule_steps_down_once_at_500k():
    sched = learning_rate_schedule()
    assert float(sched(0)) == pytest.approx(1e-4)
    assert float(sched(499_999)) == pytest.approx(1e-4)
    assert float(sched(500_000)) == pytest.approx(1e-5)
    assert float(sched(999_999)) == pytest.approx(1e-5)


def test_schedule_floor_and_bad_values():
    sched = learning_rate_schedule(1e-4, decay_step=10, decay_factor=0.01, min_learning_rate=1e-5)
    assert float(sched(10)) == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="learning_rate"):
        learning_rate_schedule(0.0)


def test_adam_matches_torch_adam_with_schedule():
    torch = pytest.importorskip("torch")
    tx, _ = make_optimizer(1e-2, decay_step=3, decay_factor=0.1, min_learning_rate=1e-5)
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(5).astype(np.float32)
    grads = rng.standard_normal((6, 5)).astype(np.float32)
    params = jnp.asarray(p0)
    state = tx.init(params)
    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    topt = torch.optim.Adam([tp], lr=1e-2)
    tsched = torch.optim.lr_scheduler.MultiStepLR(topt, milestones=[3], gamma=0.1)
    for g in grads:
        updates, state = tx.update(jnp.asarray(g), state, params)
        params = optax.apply_updates(params, updates)
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
        tsched.step()
    np.testing.assert_allclose(np.asarray(params), tp.detach().numpy(), rtol=1e-5, atol=1e-7)

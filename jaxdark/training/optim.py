"""Optimiser of the reference recipe: Adam, lr 1e-4, x0.1 at step 500,000, floor 1e-5."""

from __future__ import annotations

import jax.numpy as jnp
import optax

BASE_LEARNING_RATE = 1e-4
DECAY_STEP = 500_000
DECAY_FACTOR = 0.1
MIN_LEARNING_RATE = 1e-5


def learning_rate_schedule(
    learning_rate: float = BASE_LEARNING_RATE,
    decay_step: int = DECAY_STEP,
    decay_factor: float = DECAY_FACTOR,
    min_learning_rate: float = MIN_LEARNING_RATE,
) -> optax.Schedule:
    """Step schedule: ``learning_rate`` before ``decay_step`` (0-based update count),
    ``max(learning_rate * decay_factor, min_learning_rate)`` from it on."""
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    if decay_step < 0:
        raise ValueError(f"lr decay step must be >= 0, got {decay_step}")
    decayed = max(learning_rate * decay_factor, min_learning_rate)

    def schedule(step):
        return jnp.where(jnp.asarray(step) < decay_step, learning_rate, decayed).astype(jnp.float32)

    return schedule


def make_optimizer(
    learning_rate: float = BASE_LEARNING_RATE,
    decay_step: int = DECAY_STEP,
    decay_factor: float = DECAY_FACTOR,
    min_learning_rate: float = MIN_LEARNING_RATE,
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Adam (torch defaults: b1 0.9, b2 0.999, eps 1e-8) on the step schedule.

    Returns the optimiser and its schedule (for logging the learning rate).
    """
    schedule = learning_rate_schedule(learning_rate, decay_step, decay_factor, min_learning_rate)
    return optax.adam(learning_rate=schedule, b1=0.9, b2=0.999, eps=1e-8), schedule

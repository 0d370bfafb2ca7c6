"""Training with synthetic pairs made on the device (config.synthetic_on_device): the
step runs, resumes, and logs its data wait (the photo-crop stream's exact resume is the
pipeline's, tested in tests/data)."""

from __future__ import annotations

import numpy as np
import pytest

SMALL_UNET = (8, 16, 32, 64, 128)


def _config(steps, on_device=True):
    from configs.synthetic import get_config

    c = get_config("local")
    c.model.name = "sid_unet"
    c.model.widths = SMALL_UNET
    c.crop_size, c.batch_size, c.num_train_steps = 32, 2, steps
    c.checkpoint_every_steps, c.log_every_steps, c.image_every_steps = 2, 1, 0
    c.eval_every_steps = 0
    c.synthetic_variants = 2
    c.async_checkpointing = False
    c.synthetic_on_device = on_device
    return c


@pytest.mark.slow
def test_device_synthesis_trains_and_resumes(tmp_path):
    from jaxdark.training.loop import train_and_evaluate

    first = train_and_evaluate(_config(2), tmp_path / "run")
    assert first["step"] == 2 and np.isfinite(first["metrics"]["loss"])
    assert 0.0 <= first["metrics"]["data_wait_share"] <= 1.0
    second = train_and_evaluate(_config(3), tmp_path / "run")
    assert second["resumed_from"] == 2 and second["step"] == 3
    assert np.isfinite(second["metrics"]["loss"])


def test_device_synthesis_needs_synthetic_pairs_only(tmp_path):
    from jaxdark.data.device_synthesis import device_stage
    from jaxdark.errors import JaxdarkError

    with pytest.raises(JaxdarkError, match="synthetic pairs only"):
        device_stage(_config(1), object())

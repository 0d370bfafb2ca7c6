"""jaxdark.training.losses against pytorch_msssim and by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdark.training.losses import ms_ssim, restoration_loss

torch = pytest.importorskip("torch")
pytorch_msssim = pytest.importorskip("pytorch_msssim")


def _pair(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.random(shape, dtype=np.float32)
    # a correlated, noisy version of x so SSIM is far from 0 and 1
    y = np.clip(0.7 * x + 0.3 * rng.random(shape, dtype=np.float32) - 0.05, 0, 1)
    return x.astype(np.float32), y.astype(np.float32)


def _torch_ms_ssim(x, y, size_average=True):
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    ty = torch.from_numpy(np.ascontiguousarray(y.transpose(0, 3, 1, 2)))
    return pytorch_msssim.ms_ssim(tx, ty, data_range=1.0, size_average=size_average).numpy()


@pytest.mark.parametrize("shape", [(2, 176, 176, 3), (1, 193, 201, 3), (2, 256, 192, 3)])
def test_ms_ssim_matches_pytorch_msssim(shape):
    x, y = _pair(shape, seed=sum(shape))
    ours = np.asarray(jax.jit(ms_ssim)(jnp.asarray(x), jnp.asarray(y)))
    ref = _torch_ms_ssim(x, y)
    assert 0.05 < float(ref) < 0.95
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    per_image = np.asarray(
        jax.jit(ms_ssim, static_argnames="reduce")(jnp.asarray(x), jnp.asarray(y), reduce=False)
    )
    np.testing.assert_allclose(per_image, _torch_ms_ssim(x, y, False), atol=1e-5, rtol=0)


def test_ms_ssim_of_identical_images_is_one_and_small_images_work():
    x, _ = _pair((1, 64, 64, 3), 0)
    assert float(ms_ssim(jnp.asarray(x), jnp.asarray(x))) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="sides >= 16"):
        ms_ssim(jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 8, 8, 3)))


def test_restoration_loss_value_and_gradient_match_torch():
    x, y = _pair((2, 192, 176, 3), 7)
    loss, parts = jax.jit(restoration_loss)(jnp.asarray(x), jnp.asarray(y))
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_(True)
    ty = torch.from_numpy(np.ascontiguousarray(y.transpose(0, 3, 1, 2)))
    tloss = torch.mean(torch.abs(tx - ty)) + 0.2 * (
        1 - pytorch_msssim.ms_ssim(tx, ty, data_range=1.0)
    )
    tloss.backward()
    tloss = tloss.detach()
    np.testing.assert_allclose(float(loss), float(tloss), atol=1e-5, rtol=0)
    np.testing.assert_allclose(float(parts["l1"]), np.abs(x - y).mean(), rtol=1e-6)
    grad = jax.jit(jax.grad(lambda p: restoration_loss(p, jnp.asarray(y))[0]))(jnp.asarray(x))
    tgrad = tx.grad.numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(grad), tgrad, atol=1e-7, rtol=1e-3)

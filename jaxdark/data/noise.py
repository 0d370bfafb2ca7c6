"""The noise of a dark exposure on the Sony a7S II, the SID camera: the physics-based model
of Wei et al., CVPR 2020 ("A Physics-based Noise Formation Model for Extreme Low-light Raw
Denoising", ELD) with its published a7S II calibration.

Photon shot noise through the system gain K, read noise (Gaussian or Tukey lambda), row
noise and quantisation; per image, K is drawn log-uniformly and the other scales from
their log-linear fits against K (`NoiseCalibration.sample`). Used by
`jaxdark.data.synthetic` to make training pairs.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class LogLinear:
    """``log(scale) = slope * log(K) + bias + N(0, sigma)``: a noise scale against gain."""

    slope: float
    bias: float
    sigma: float

    def sample(self, log_k: float, rng: np.random.Generator) -> float:
        """One scale drawn for system gain ``exp(log_k)``."""
        return math.exp(self.slope * log_k + self.bias + self.sigma * rng.standard_normal())


@dataclasses.dataclass(frozen=True)
class NoiseCalibration:
    """A camera's ELD calibration: range of the system gain K (DN per electron) and the
    fits of the read-noise and row-noise scales against it (natural logs, DN)."""

    k_min: float
    k_max: float
    tukey_shapes: tuple[float, ...]  # measured Tukey-lambda shapes (one is drawn)
    tukey_scale: LogLinear
    gaussian_scale: LogLinear
    row_scale: LogLinear
    name: str = ""

    def sample(
        self,
        rng: np.random.Generator,
        read_model: str = "tukey-lambda",
        read_noise_scale: float = 1.0,
    ) -> NoiseParams:
        """ELD's sampling: log K uniform in [log k_min, log k_max], a measured shape, and
        scales from the log-linear fits with their residual spread. ``read_noise_scale``
        multiplies the read and row noise (a noisier camera of the same gain)."""
        if read_model not in READ_MODELS:
            raise ValueError(f"read_model must be one of {READ_MODELS}, got {read_model!r}")
        log_k = float(rng.uniform(math.log(self.k_min), math.log(self.k_max)))
        shape = float(self.tukey_shapes[int(rng.integers(len(self.tukey_shapes)))])
        tukey = self.tukey_scale.sample(log_k, rng)
        gauss = self.gaussian_scale.sample(log_k, rng)
        row = self.row_scale.sample(log_k, rng)
        s = float(read_noise_scale)
        if read_model == "tukey-lambda":
            return NoiseParams(math.exp(log_k), read_model, tukey * s, row * s, shape)
        return NoiseParams(math.exp(log_k), read_model, gauss * s, row * s, 0.0)


READ_MODELS = ("tukey-lambda", "gaussian")

# ELD's released calibration of the Sony a7S II: camera_params/release/SonyA7S2_params.npy
# of github.com/Vandermode/ELD (Wei et al., CVPR 2020 / TPAMI 2021), "Profile-1" (values
# as stored there, 16 significant digits cut to 6): K in DN/e- at 14 bits from 0.0939161
# to 6.01063; Tukey-lambda scale "G_scale": slope 0.462105, bias 0.565715, sigma 0.263371;
# Gaussian read noise "g_scale": slope 0.540750, bias 1.21824, sigma 0.267512; row noise
# "R_scale": slope 0.527536, bias -0.591700, sigma 0.294288; and the 18 measured
# Tukey-lambda shapes "G_shape" below. (Its per-gain colour bias is not modelled.)
SONY_A7S2_ELD = NoiseCalibration(
    k_min=0.0939161,
    k_max=6.01063,
    tukey_shapes=(
        0.114286,
        0.128571,
        0.057143,
        0.042857,
        0.0,
        0.0,
        -0.042857,
        -0.057143,
        -0.085714,
        -0.085714,
        -0.085714,
        -0.085714,
        -0.114286,
        -0.114286,
        -0.142857,
        -0.128571,
        -0.142857,
        -0.142857,
    ),  # fmt: skip
    tukey_scale=LogLinear(0.462105, 0.565715, 0.263371),
    gaussian_scale=LogLinear(0.540750, 1.21824, 0.267512),
    row_scale=LogLinear(0.527536, -0.591700, 0.294288),
    name="Sony a7S II (ELD)",
)


@dataclasses.dataclass(frozen=True)
class NoiseParams:
    """One image's noise: system gain ``k`` (DN per electron), read noise of ``read_model``
    with ``read_scale`` (Tukey-lambda scale or Gaussian sigma, DN) and ``tukey_shape``,
    row-noise sigma ``row_scale`` (DN) and the quantisation step (DN)."""

    k: float
    read_model: str
    read_scale: float
    row_scale: float
    tukey_shape: float = 0.0
    quantisation_step: float = 1.0

    def read_variance(self) -> float:
        """Variance of the read noise (DN^2)."""
        s2 = self.read_scale**2
        if self.read_model == "gaussian":
            return s2
        lam = self.tukey_shape
        if abs(lam) < 1e-6:  # logistic limit
            return s2 * math.pi**2 / 3
        beta = math.exp(2 * math.lgamma(lam + 1) - math.lgamma(2 * lam + 2))
        return s2 * 2 / lam**2 * (1 / (1 + 2 * lam) - beta)

    def variance(self, mean_dn: np.ndarray | float) -> np.ndarray | float:
        """The model's variance of a pixel whose expected dark signal is ``mean_dn`` DN:
        ``K * mean + Var(read) + row_scale^2 + step^2 / 12``."""
        return (
            self.k * np.asarray(mean_dn)
            + self.read_variance()
            + self.row_scale**2
            + self.quantisation_step**2 / 12
        )


def tukey_lambda(
    rng: np.random.Generator, shape: tuple[int, ...], lam: float, scale: float
) -> np.ndarray:
    """Tukey-lambda samples (float32) by the inverse CDF ``(u^l - (1-u)^l) / l``."""
    u = np.maximum(rng.random(shape, dtype=np.float32), np.float32(2.0**-25))  # in (0, 1)
    log_u, log_v = np.log(u), np.log(1 - u)
    if abs(lam) < 1e-6:  # the logistic limit
        return (log_u - log_v) * np.float32(scale)
    lam32 = np.float32(lam)
    # u^l - (1-u)^l as exp(l log u) - exp(l log(1-u)): faster than two powers
    q = np.exp(log_u * lam32) - np.exp(log_v * lam32)
    return q * np.float32(scale / lam)


def add_noise(signal_dn: np.ndarray, noise: NoiseParams, rng: np.random.Generator) -> np.ndarray:
    """A noisy exposure of the expected signal ``signal_dn`` (H, W, DN above black):
    shot noise through K, read noise, row noise, then quantisation. Float32 DN."""
    # (float64 rates: NumPy's sampler takes float64, and converting first is faster)
    electrons = rng.poisson(np.maximum(signal_dn, 0).astype(np.float64) * (1.0 / noise.k))
    x = electrons.astype(np.float32)
    x *= np.float32(noise.k)
    if noise.read_model == "gaussian":
        read = rng.standard_normal(x.shape, dtype=np.float32)
        read *= np.float32(noise.read_scale)
    else:
        read = tukey_lambda(rng, x.shape, noise.tukey_shape, noise.read_scale)
    x += read
    x += (rng.standard_normal(x.shape[0], dtype=np.float32) * np.float32(noise.row_scale))[:, None]
    step = np.float32(noise.quantisation_step)
    if step != 1:
        x /= step
    np.rint(x, out=x)
    if step != 1:
        x *= step
    return x

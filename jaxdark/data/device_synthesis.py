"""Synthetic pairs made on the accelerator: `jaxdark.data.synthetic` as jitted JAX.

The host sends only 8-bit photo crops and two 32-bit seeds per example (`PhotoCrop`, a
grain transform: a random ``crop`` window of the photo, flipped as the SID pipeline
flips); `synthesize_batch` then makes, on the device, what `synthesize_pair` +
`jaxdark.data.pipeline.CropAmplify` make on the host: the per-image draws (white balance,
colour matrix, exposure ratio, ELD noise parameters), the unprocessing, the ELD noise
(Poisson shot noise, Tukey-lambda or Gaussian read noise, row noise, quantisation) and
the rawpy-style target. The NumPy path stays the reference; tests/data/test_device_synthesis.py
holds the two to the same distribution.

Differences from the host path, all small: draws come from ``jax.random`` (same
distributions, other numbers); the crop is cut from the photo before synthesis, so
LibRaw's data maximum (the white point) and the estimated amplification are taken over
the crop rather than over the 2-pixel-larger window; 16-bit photos are reduced to 8 bits
on the host; the target's float32 matrix product may round a few pixels one code apart.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np

from jaxdark.constants import SID_BLACK_LEVEL as BLACK_LEVEL
from jaxdark.constants import SID_WHITE_LEVEL as WHITE_LEVEL
from jaxdark.data.synthetic import (
    ADJUST_MAXIMUM_THR,
    DAYLIGHT_GAINS,
    TUNGSTEN_GAINS,
    SynthesisConfig,
    camera_to_srgb_matrix,
    libraw_gamma_curve,
    photo_to_linear_lut,
)
from jaxdark.errors import JaxdarkError
from jaxdark.imaging.amplifier import estimate_amplification

AMPLIFICATIONS = ("gt", "estimated")


@dataclasses.dataclass(frozen=True)
class PhotoCrop(grain.transforms.RandomMap):
    """A photo record (``{"photo": (H, W, 3)}``, as `PhotoSource` gives) -> ``{"photo":
    (crop, crop, 3) uint8, "seed": (2,) uint32}``: a uniform window, flipped left-right /
    up-down with the given probabilities, and the seeds of its device draws."""

    crop_size: int
    hflip_prob: float = 0.5
    vflip_prob: float = 0.2

    def random_map(self, element: dict, rng: np.random.Generator) -> dict:
        photo = element["photo"]
        h, w = photo.shape[:2]
        c = self.crop_size
        if h < c or w < c:
            raise ValueError(f"{element.get('name', 'photo')}: {h}x{w} is smaller than crop {c}")
        vflip = bool(rng.random() < self.vflip_prob)
        hflip = bool(rng.random() < self.hflip_prob)
        top, left = int(rng.integers(h - c + 1)), int(rng.integers(w - c + 1))
        crop = photo[top : top + c, left : left + c, :3]
        if vflip:
            crop = crop[::-1]
        if hflip:
            crop = crop[:, ::-1]
        if crop.dtype == np.uint16:
            crop = (crop.astype(np.uint32) * 255 + 32767) // 65535
        seed = rng.integers(0, 2**32, size=2, dtype=np.uint64).astype(np.uint32)
        return {"photo": np.ascontiguousarray(crop, dtype=np.uint8), "seed": seed}


class PhotoSource:
    """Random-access source of whole photos of a `SyntheticPairs` (record ``i``: photo
    ``i % n``, ``variants`` times per pass), for `PhotoCrop`. Picklable."""

    def __init__(self, pairs: Any):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        k, photo = self.pairs.usable_photo(int(index) % len(self.pairs.photos))
        return {"photo": photo, "name": self.pairs.names[k]}

    def __repr__(self) -> str:
        return f"PhotoSource({self.pairs!r})"


def device_stage(config: Any, source: Any) -> tuple[PhotoSource, PhotoCrop, DeviceSynthesis]:
    """For ``config.synthetic_on_device``: the host source and transform that replace the
    synthetic ``source`` (`SyntheticPairs`) in the grain pipeline, and the setting of
    `synthesize_batch`. One-line `JaxdarkError` if ``source`` is not synthetic pairs only."""
    from jaxdark.data.synthetic_source import SyntheticPairs  # noqa: PLC0415

    if not isinstance(source, SyntheticPairs):
        raise JaxdarkError(
            "config.synthetic_on_device needs synthetic pairs only (synthetic_fraction 1, or "
            f"no SID data_dir/tfds_data_dir), not {type(source).__name__}"
        )
    transform = PhotoCrop(int(config.crop_size), float(config.hflip_prob), float(config.vflip_prob))
    setting = DeviceSynthesis(source.config, str(config.amplification), float(config.m))
    return PhotoSource(source), transform, setting


# ----------------------------------------------------------------------- device side


@dataclasses.dataclass(frozen=True)
class DeviceSynthesis:
    """The constants of one synthesis setting, as arrays the jitted code closes over."""

    config: SynthesisConfig
    amplification: str = "gt"
    m: float = 5.0

    def __post_init__(self):
        if self.amplification not in AMPLIFICATIONS:
            raise ValueError(
                f"amplification must be one of {AMPLIFICATIONS}, got {self.amplification!r}"
            )


def _log_linear(key, fit, log_k):
    return jnp.exp(fit.slope * log_k + fit.bias + fit.sigma * jax.random.normal(key))


def draw_params(key: jax.Array, config: SynthesisConfig) -> dict[str, jax.Array]:
    """One image's draws, as `jaxdark.data.synthetic` makes them: ``gains`` (3,),
    ``to_camera`` (3, 3), ``ratio``, and the noise ``k``, ``read_scale``, ``row_scale``,
    ``tukey_shape``."""
    keys = jax.random.split(key, 10)
    t = jax.random.uniform(keys[0])
    day, tung = jnp.asarray(DAYLIGHT_GAINS, jnp.float32), jnp.asarray(TUNGSTEN_GAINS, jnp.float32)
    gains = day ** (1 - t) * tung**t
    gains = gains * jnp.exp(config.white_balance_spread * jax.random.normal(keys[1], (3,)))
    gains = jnp.maximum(gains.at[1].set(1.0), 1.0)
    base = jnp.asarray(np.linalg.inv(camera_to_srgb_matrix()), jnp.float32)
    m = base * (1.0 + config.color_matrix_spread * jax.random.normal(keys[2], (3, 3)))
    to_camera = m / m.sum(axis=1, keepdims=True)
    if config.ratio_range is not None:
        lo, hi = config.ratio_range
        ratio = jax.random.uniform(keys[3], minval=lo, maxval=hi)
    else:
        ratio = jax.random.choice(keys[3], jnp.asarray(config.ratios, jnp.float32))
    cal = config.calibration
    log_k = jax.random.uniform(keys[4], minval=math.log(cal.k_min), maxval=math.log(cal.k_max))
    shape = jax.random.choice(keys[5], jnp.asarray(cal.tukey_shapes, jnp.float32))
    s = config.read_noise_scale
    if config.read_model == "tukey-lambda":
        read = _log_linear(keys[6], cal.tukey_scale, log_k) * s
    else:
        read = _log_linear(keys[6], cal.gaussian_scale, log_k) * s
        shape = jnp.float32(0.0)
    row = _log_linear(keys[7], cal.row_scale, log_k) * s
    return {
        "gains": gains,
        "to_camera": to_camera,
        "ratio": ratio,
        "k": jnp.exp(log_k),
        "read_scale": read,
        "row_scale": row,
        "tukey_shape": shape,
    }


def apply_matrix(m: jax.Array, rgb: jax.Array) -> jax.Array:
    """``m @ pixel`` for every pixel of (H, W, 3) values, as elementwise products and sums
    in float32 (fused with its neighbours; a 3x3 dot is slow on a CPU)."""
    return jnp.stack(
        [rgb[..., 0] * m[i, 0] + rgb[..., 1] * m[i, 1] + rgb[..., 2] * m[i, 2] for i in range(3)],
        axis=-1,
    )


def mosaic(planes: jax.Array) -> jax.Array:
    """(H, W) RGGB mosaic of (H, W, 3) values."""
    h, w, _ = planes.shape
    cell = planes.reshape(h // 2, 2, w // 2, 2, 3)
    r, g1 = cell[:, 0, :, 0, 0], cell[:, 0, :, 1, 1]
    g2, b = cell[:, 1, :, 0, 1], cell[:, 1, :, 1, 2]
    top = jnp.stack([r, g1], axis=-1).reshape(h // 2, w)
    bottom = jnp.stack([g2, b], axis=-1).reshape(h // 2, w)
    return jnp.stack([top, bottom], axis=1).reshape(h, w)


def develop(clean_dn: jax.Array, gains: jax.Array, data_maximum: jax.Array) -> jax.Array:
    """`jaxdark.data.synthetic.develop` (rawpy's 16-bit output) as float codes 0..65535."""
    maximum = jnp.float32(WHITE_LEVEL - BLACK_LEVEL)
    use_data = (ADJUST_MAXIMUM_THR * maximum < data_maximum) & (data_maximum < maximum)
    maximum = jnp.where(use_data, data_maximum, maximum)
    scale = gains / gains.min() * 65535.0 / maximum
    scaled = jnp.minimum(jnp.floor(clean_dn * scale), 65535.0)
    srgb = jnp.asarray(camera_to_srgb_matrix(), jnp.float32)
    rgb = apply_matrix(srgb, scaled)
    codes = jnp.clip(rgb, 0.0, 65535.0).astype(jnp.int32)
    return jnp.asarray(libraw_gamma_curve(), jnp.float32)[codes]


# Poisson draws: exact inversion of the CDF below this mean, a skew-corrected normal
# approximation above it (`poisson`).
POISSON_EXACT_BELOW = 10.0
_POISSON_TERMS = 36  # P(X >= 36) < 1e-8 for a mean below 10


def poisson(key: jax.Array, lam: jax.Array) -> jax.Array:
    """Poisson draws of mean ``lam`` (float32), fast on every backend.

    ``jax.random.poisson`` rejection-samples in a while loop (2 s for 0.5 M draws on a CPU
    core). Here one uniform per draw: below `POISSON_EXACT_BELOW`, exact inversion of the
    CDF (a fixed number of elementwise terms, fused by XLA); above it, the Cornish-Fisher
    approximation ``lam + sqrt(lam) z + (z^2 - 1) / 6`` rounded (mean, variance and
    skewness of the Poisson law to O(1/lam)).
    """
    k_u, k_z = jax.random.split(key)
    u = jax.random.uniform(k_u, lam.shape)
    small = jnp.minimum(lam, POISSON_EXACT_BELOW)
    term = jnp.exp(-small)  # P(X = 0)
    cdf = term
    count = jnp.zeros_like(lam)
    for j in range(1, _POISSON_TERMS):
        count = count + (u > cdf)
        term = term * small / j
        cdf = cdf + term
    z = jax.random.normal(k_z, lam.shape)
    approx = jnp.maximum(jnp.floor(lam + jnp.sqrt(lam) * z + (z * z - 1.0) / 6.0 + 0.5), 0.0)
    return jnp.where(lam < POISSON_EXACT_BELOW, count, approx)


def add_noise(key: jax.Array, signal: jax.Array, p: dict, read_model: str) -> jax.Array:
    """ELD noise of `jaxdark.data.noise.add_noise` on an (H, W) expected signal in DN."""
    k_shot, k_read, k_row = jax.random.split(key, 3)
    x = poisson(k_shot, jnp.maximum(signal, 0.0) / p["k"]) * p["k"]
    if read_model == "gaussian":
        read = jax.random.normal(k_read, signal.shape) * p["read_scale"]
    else:
        u = jax.random.uniform(k_read, signal.shape, minval=2.0**-25, maxval=1.0)
        log_u, log_v = jnp.log(u), jnp.log1p(-u)
        lam = p["tukey_shape"]
        small = jnp.abs(lam) < 1e-6
        safe = jnp.where(small, 1.0, lam)
        q = jnp.where(small, log_u - log_v, (jnp.exp(log_u * safe) - jnp.exp(log_v * safe)) / safe)
        read = q * p["read_scale"]
    rows = jax.random.normal(k_row, (signal.shape[0], 1)) * p["row_scale"]
    return jnp.rint(x + read + rows)


def synthesize_one(
    photo: jax.Array, seed: jax.Array, setting: DeviceSynthesis, with_params: bool = False
) -> dict[str, jax.Array]:
    """One (c, c, 3) uint8 photo crop and its (2,) uint32 seed -> ``input`` (c, c, 1),
    amplified and normalised, ``target`` (c, c, 3) in [0, 1], ``amplification`` (and the
    draws, ``params``, with ``with_params``)."""
    config = setting.config
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(0), seed[0]), seed[1])
    k_params, k_noise = jax.random.split(key)
    p = draw_params(k_params, config)
    lut = jnp.asarray(photo_to_linear_lut(256, config.tone_curve))
    lin = lut[photo.astype(jnp.int32)]
    span = float(WHITE_LEVEL - BLACK_LEVEL)
    matrix = p["to_camera"] / p["gains"][:, None] * span
    camera = apply_matrix(matrix, lin)
    camera = jnp.clip(camera, 0.0, span)
    clean_dn = jnp.rint(camera)
    target = develop(clean_dn, p["gains"], mosaic(clean_dn).max()) / 65535.0
    signal = mosaic(camera) / p["ratio"]
    dark = jnp.clip(add_noise(k_noise, signal, p, config.read_model) + BLACK_LEVEL, 0, WHITE_LEVEL)
    dark = jnp.floor(dark)  # the uint16 raw file
    x = jnp.maximum(dark - BLACK_LEVEL, 0.0) / span
    if setting.amplification == "gt":
        amp = p["ratio"]
    else:
        amp = estimate_amplification(x, setting.m)
    out = {"input": (x * amp)[..., None], "target": target, "amplification": amp}
    if with_params:
        out["params"] = p
    return out


def _vmapped(photos, seeds, setting, with_params=False):
    return jax.vmap(lambda p, s: synthesize_one(p, s, setting, with_params))(photos, seeds)


def sharded_synthesis(
    mesh: jax.sharding.Mesh, setting: DeviceSynthesis, axis: str
) -> Callable[[jax.Array, jax.Array], dict[str, jax.Array]]:
    """`synthesize_batch` for batch-sharded global arrays on ``mesh``: a jitted
    ``shard_map`` over ``axis`` in which every device makes its own examples."""
    spec = jax.sharding.PartitionSpec(axis)
    return jax.jit(
        jax.shard_map(
            functools.partial(_vmapped, setting=setting),
            mesh=mesh,
            in_specs=(spec, spec),
            out_specs=spec,
        )
    )


@functools.partial(jax.jit, static_argnames=("setting", "with_params"))
def synthesize_batch(
    photos: jax.Array, seeds: jax.Array, setting: DeviceSynthesis, with_params: bool = False
) -> dict[str, jax.Array]:
    """`synthesize_one` over a batch: ``photos`` (B, c, c, 3) uint8, ``seeds`` (B, 2)
    uint32. Elementwise over the batch, so a batch-sharded input gives a batch-sharded
    output (each device makes its own examples)."""
    return _vmapped(photos, seeds, setting, with_params)

"""The whole frame as one device function: raw integers in, the final image out.

`frame_function(apply_fn, spec)` returns a pure function of ``(params, raw, black, white,
factor)`` that does, in one XLA program:

1. normalisation of the raw integers: ``max(raw - black, 0) / (white - black)`` with a
   black level per CFA position (`jaxdark.imaging.raw.normalise`, the host's code);
   a float32 mosaic that is normalised already skips this step;
2. the amplification: the estimate of `jaxdark.imaging.amplifier` on the mosaic as given
   (``factor`` is then ``m``), or ``factor`` itself;
3. the Bayer phase and the reflect padding to the model's input multiple
   (`jaxdark.imaging.raw.to_rggb`, `jaxdark.imaging.raw.pad_to_multiple`);
4. the network, ``apply_fn(params, a * x)``, and the crop back onto the input's grid;
5. quantisation to uint8 / uint16 (`jaxdark.fileio.to_uint`, the writer's rule) or
   float32.

It returns ``(image, amplification)``: only the final image (and one scalar) ever
needs to come back to the host. With ``spec.batch`` the function takes a stack of
same-shape frames (``raw`` (B, H, W), ``black`` (B, 4), ``white``/``factor`` (B,)).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdark.fileio import to_uint
from jaxdark.imaging.amplifier import estimate_amplification
from jaxdark.imaging.raw import check_sides, from_rggb, normalise, pad_to_multiple, to_rggb

OUTPUT_BITS = {"uint8": 8, "uint16": 16, "float32": None}


@dataclass(frozen=True)
class Restoration:
    """One restored frame: the image and how it was made."""

    image: np.ndarray  # (H, W, 3) sRGB: float32 in [0, 1], or uint8 / uint16
    amplification: float  # the factor the network input was multiplied by
    seconds: float  # wall time of the restoration (amplifier + network + copies)


@dataclass(frozen=True)
class FrameSpec:
    """What one compiled frame function is specialised to (its cache key).

    Attributes:
      shape: (H, W) of the raw mosaic as given.
      dtype: the raw mosaic's dtype name; ``"float32"`` means normalised already.
      pattern: Bayer layout of the mosaic's top-left 2x2 cell.
      multiple: the model's input multiple (sides are padded to multiples of it).
      estimate: True: ``factor`` is ``m`` of the amplification estimate; False: it is
        the amplification itself.
      out: ``"uint8"``, ``"uint16"`` or ``"float32"``.
      batch: None for one (H, W) frame, else the number of stacked frames.
    """

    shape: tuple[int, int]
    dtype: str
    pattern: str
    multiple: int
    estimate: bool
    out: str
    batch: int | None = None

    @property
    def normalised(self) -> bool:
        return self.dtype == "float32"


def check_out(out: str) -> str:
    """``out`` if it names an output type, else a one-line ValueError."""
    if out not in OUTPUT_BITS:
        raise ValueError(f"out must be one of {', '.join(OUTPUT_BITS)}, got {out!r}")
    return out


def frame_function(
    apply_fn: Callable[[Any, jax.Array], jax.Array], spec: FrameSpec
) -> Callable[..., tuple[jax.Array, jax.Array]]:
    """The pure frame function for ``spec`` (see the module docstring); jit it."""
    bits = OUTPUT_BITS[check_out(spec.out)]

    def one(params: Any, raw, black, white, factor):
        x = raw if spec.normalised else normalise(raw, black, white)
        a = estimate_amplification(x, factor) if spec.estimate else factor
        a = jnp.asarray(a, jnp.float32)
        rggb, offset = to_rggb(x, spec.pattern)
        padded = pad_to_multiple(rggb, spec.multiple)
        y = apply_fn(params, (a * padded)[None, :, :, None])[0]
        y = from_rggb(y, offset, spec.shape)
        image = y.astype(jnp.float32) if bits is None else to_uint(y, bits)
        return image, a

    if spec.batch is None:
        return one
    return jax.vmap(one, in_axes=(None, 0, 0, 0, 0))


def abstract_args(spec: FrameSpec) -> tuple[jax.ShapeDtypeStruct, ...]:
    """Shapes and dtypes of ``(raw, black, white, factor)`` for ``spec`` (for lowering)."""
    lead = () if spec.batch is None else (spec.batch,)
    return (
        jax.ShapeDtypeStruct(lead + tuple(spec.shape), np.dtype(spec.dtype)),
        jax.ShapeDtypeStruct(lead + (4,), jnp.float32),
        jax.ShapeDtypeStruct(lead, jnp.float32),
        jax.ShapeDtypeStruct(lead, jnp.float32),
    )


def check_mosaic(mosaic: Any, multiple: int, normalised: bool = True) -> np.ndarray:
    """A host (H, W) mosaic checked for the device path: float32 and finite when
    ``normalised``, else the sensor's integers; sides >= ``multiple`` (one-line ValueError)."""
    x = np.asarray(mosaic)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 2:
        raise ValueError(f"expected a (H, W) mosaic, got shape {x.shape}")
    check_sides(x.shape, multiple)
    if normalised or x.dtype.kind == "f":
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise ValueError("mosaic contains NaN or infinite values")
    elif x.dtype.kind not in "ui":
        raise ValueError(f"raw counts must be integers or floats, got {x.dtype}")
    if not normalised and x.dtype == np.float32:
        raise ValueError("raw counts given with levels must be integers (float32 is normalised)")
    return x


def check_levels(black_levels: Any, white_level: Any) -> tuple[np.ndarray, np.float32]:
    """Black levels (4, per 2x2 position) and a white level above them, as float32
    (a one-line ValueError otherwise)."""
    black = np.asarray(black_levels, np.float32).reshape(-1)
    if black.shape != (4,) and black.shape != (1,):
        raise ValueError(f"black_levels needs 4 values (one per 2x2 position), got {black.size}")
    black = np.broadcast_to(black, (4,)).copy()
    white = np.float32(white_level if white_level is not None else np.nan)
    if not (np.isfinite(black).all() and np.isfinite(white) and white > black.max()):
        raise ValueError(
            f"white level {white_level!r} is not above the black levels {black.tolist()}"
        )
    return black, white


class PendingRestoration:
    """A frame the device is restoring; `result` waits for it (see `Restorer.submit`)."""

    def __init__(self, image: Any, amplification: Any, start: float, index: int | None = None):
        self._image, self._amplification = image, amplification
        self._start, self._index = start, index
        self._done: Restoration | None = None

    @classmethod
    def done(cls, restoration: Restoration) -> PendingRestoration:
        """An already finished restoration (the tiled path runs synchronously)."""
        pending = cls(None, None, 0.0)
        pending._done = restoration
        return pending

    def result(self) -> Restoration:
        """The `Restoration`, copied to the host (blocks until the device is done)."""
        if self._done is None:
            image, a = np.asarray(self._image), np.asarray(self._amplification)
            if self._index is not None:
                image, a = image[self._index], a[self._index]
            self._done = Restoration(image, float(a), time.perf_counter() - self._start)
            self._image = self._amplification = None
        return self._done

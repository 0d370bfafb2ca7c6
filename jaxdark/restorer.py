"""`Restorer`: dark RAW mosaic in, sRGB image out, at the input's exact resolution.

The path of one frame:

1. the amplification: given, or `jaxdark.estimate_amplification(mosaic, m)` on the
   mosaic as given (the reference estimates on its whole, cropped frame);
2. a non-RGGB mosaic is brought to the RGGB phase (`jaxdark.imaging.raw.to_rggb`) and the sides
   reflect-padded to multiples of 32 (`jaxdark.imaging.raw.pad_to_multiple`), on the host;
3. one compiled function computes ``apply_fn(params, amplification * x)``; it is
   compiled once per padded shape and kept (`Restorer.compiled_shapes`), so frames of
   a size seen before never recompile, and the amplification is an argument, not a
   constant;
4. the result is cropped back to the input's pixel grid.

``apply_fn(params, x)`` is a pure function of a parameter pytree and a (B, H, W, 1)
batch returning (B, H, W, 3); by default it is `jaxdark.models.lamba2021_folded.apply_folded` on the
model's `jaxdark.models.lamba2021_folded.fold_params` (weight norm folded away once, equal to the
model
within 1e-5), and any equivalent function can replace it.

Tiling (``tile_size``) bounds memory on very large frames: the padded frame is cut into
``tile_size`` squares, each restored with ``tile_overlap`` pixels of context on every
side (reflect-padded at the frame's borders), and only the square's centre is kept.
The network's 1/32-scale branch sees hundreds of pixels, so tiles do not reproduce the
whole-frame output exactly; docs/restoring.md ("Tiling") gives the measured deviation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdark.constants import INPUT_MULTIPLE, MAX_USER_AMPLIFICATION
from jaxdark.imaging.amplifier import check_m, estimate_amplification
from jaxdark.imaging.raw import RawFrame, from_rggb, pad_to_multiple, read_raw, to_rggb
from jaxdark.models.precision import resolve_dtype

ApplyFn = Callable[[Any, jax.Array], jax.Array]


@dataclass(frozen=True)
class Restoration:
    """One restored frame: the image and how it was made."""

    image: np.ndarray  # (H, W, 3) float32 sRGB in [0, 1]
    amplification: float  # the factor the network input was multiplied by
    seconds: float  # wall time of the restoration (amplifier + network + copies)


class Restorer:
    """Restore normalised dark RAW mosaics (or RAW files) with the network.

    Args:
      model: a weights path (the official .pth or a directory written by
        ``jaxdark convert``, read with `jaxdark.load_model`) or a network
        of `jaxdark.models` (``lamba2021`` runs folded, `jaxdark.models.lamba2021_folded`;
        others as is).
      tile_size: restore in tiles of this many pixels a side (a multiple of 32, or of
        the input multiple) to bound memory on very large frames; None (default)
        restores whole frames.
      tile_overlap: context restored around each tile and thrown away (a multiple of
        32, or of the input multiple; default 128).
      apply_fn: replace the network call by ``apply_fn(params, x)`` (give ``params``
        too; ``model`` is then ignored and may be None).
      params: the parameters ``apply_fn`` takes (only with ``apply_fn``).
      dtype: ``"float32"`` (default) or ``"bfloat16"``: the dtype of the folded
        kernels, so of the convolutions' multiplies (accumulation, activations and the
        output stay float32; `jaxdark.models.lamba2021_folded.fold_params`). Not with ``apply_fn``.
      input_multiple: pad frame sides to multiples of this; default: the model's
        ``input_multiple`` (`jaxdark.models` contract), else 32.
    """

    def __init__(
        self,
        model: nnx.Module | str | os.PathLike | None,
        *,
        tile_size: int | None = None,
        tile_overlap: int = 128,
        apply_fn: ApplyFn | None = None,
        params: Any = None,
        dtype: str | Any = None,
        input_multiple: int | None = None,
    ):
        for name, value, low, optional in (
            ("tile_size", tile_size, 2, True),
            ("tile_overlap", tile_overlap, 0, False),
        ):
            if value is None and optional:
                continue
            is_int = isinstance(value, int | np.integer) and not isinstance(value, bool)
            if not is_int or value < low:
                raise ValueError(
                    f"{name} must be an integer multiple of the input multiple (32) and "
                    f">= {low}, got {value!r}"
                )
        if (apply_fn is None) != (params is None):
            raise ValueError("give both apply_fn and params, or neither")
        if dtype is not None and apply_fn is not None:
            raise ValueError("dtype applies to the built-in network call, not to apply_fn")
        self.dtype = resolve_dtype(dtype)
        if apply_fn is None:
            if model is None:
                raise ValueError("Restorer needs a model, a weights path, or apply_fn + params")
            if isinstance(model, str | os.PathLike):
                from jaxdark.weights.load import load_model

                model = load_model(model)
            if not isinstance(model, nnx.Module):
                raise ValueError(
                    f"Restorer needs an nnx.Module or a weights path, got {type(model).__name__}"
                )
            from jaxdark.models import inference_apply

            apply_fn, params = inference_apply(model, self.dtype)
            self._params_of = lambda m: inference_apply(m, self.dtype)[1]
        else:
            self._params_of = None
        multiple = input_multiple or getattr(model, "input_multiple", None) or INPUT_MULTIPLE
        if int(multiple) != multiple or multiple < 2 or multiple % 2:
            raise ValueError(f"input_multiple must be an even number >= 2, got {multiple}")
        self.input_multiple = multiple = int(multiple)
        for name, value in (("tile_size", tile_size), ("tile_overlap", tile_overlap)):
            if value is not None and value % multiple:
                raise ValueError(
                    f"{name} must be an integer multiple of {multiple} (the model's input "
                    f"multiple), got {value}"
                )
        self.tile_size = None if tile_size is None else int(tile_size)
        self.tile_overlap = int(tile_overlap)
        self.apply_fn = apply_fn
        self.params = params
        self._jitted = jax.jit(self._amplified_apply)
        self._compiled: dict[tuple[int, int], Any] = {}

    def set_weights(self, model: nnx.Module) -> None:
        """Swap in ``model``'s weights (same architecture as before, e.g. a newer training
        state); the compiled functions are reused, nothing recompiles."""
        if self._params_of is None:
            raise ValueError("this Restorer was built from apply_fn + params; use set_params")
        self.set_params(self._params_of(model))

    def set_params(self, params: Any) -> None:
        """Swap the parameters passed to ``apply_fn`` (same structure, shapes and dtypes)."""
        old = jax.tree_util.tree_structure(self.params)
        if jax.tree_util.tree_structure(params) != old:
            raise ValueError("set_params needs parameters with the same structure as before")
        self.params = params

    # ------------------------------------------------------------------ compiled core

    def _amplified_apply(self, params: Any, x: jax.Array, amplification: jax.Array) -> jax.Array:
        """(H, W) padded RGGB mosaic and a factor -> (H, W, 3): the one compiled function."""
        y = self.apply_fn(params, (amplification * x)[None, :, :, None])
        return y[0]

    def _compiled_for(self, shape: tuple[int, int]) -> Any:
        fn = self._compiled.get(shape)
        if fn is None:
            spec = jax.ShapeDtypeStruct(shape, jnp.float32)
            amp = jax.ShapeDtypeStruct((), jnp.float32)
            fn = self._jitted.lower(self.params, spec, amp).compile()
            self._compiled[shape] = fn
        return fn

    @property
    def compiled_shapes(self) -> list[tuple[int, int]]:
        """Padded (H, W) shapes compiled so far, in order (one entry per compilation)."""
        return list(self._compiled)

    def _run(self, x: np.ndarray, amplification: float) -> np.ndarray:
        """Padded RGGB mosaic (sides multiples of ``input_multiple``) -> (H, W, 3), tiled."""
        if self.tile_size is None or max(x.shape) <= self.tile_size:
            fn = self._compiled_for(x.shape)
            return np.asarray(fn(self.params, jnp.asarray(x), np.float32(amplification)))
        return self._run_tiled(x, amplification)

    def _run_tiled(self, x: np.ndarray, amplification: float) -> np.ndarray:
        t = self.tile_size
        h, w = x.shape
        # context beyond the frame is only mirrored frame: no tile needs more than the frame
        m = self.input_multiple
        o = min(self.tile_overlap, -(-max(h, w) // m) * m)
        nh, nw = -(-h // t), -(-w // t)
        # Extend to whole tiles plus the context ring; reflect keeps the Bayer phase
        # because every pad is even. np.pad mirrors repeatedly if a pad exceeds the side.
        ext = _reflect_pad(x, (o, nh * t - h + o), (o, nw * t - w + o))
        fn = self._compiled_for((t + 2 * o, t + 2 * o))
        out = np.empty((nh * t, nw * t, 3), np.float32)
        a = np.float32(amplification)
        for i in range(nh):
            for j in range(nw):
                tile = ext[i * t : i * t + t + 2 * o, j * t : j * t + t + 2 * o]
                y = np.asarray(fn(self.params, jnp.asarray(tile), a))
                out[i * t : (i + 1) * t, j * t : (j + 1) * t] = y[o : o + t, o : o + t]
        return out[:h, :w]

    # ------------------------------------------------------------------ public API

    def amplification(self, mosaic: np.ndarray, m: float = 5.0) -> float:
        """The estimated factor ``estimate_amplification(mosaic, m)`` as a Python float."""
        return float(estimate_amplification(np.asarray(mosaic, np.float32), m))

    def restore_mosaic(
        self,
        mosaic: np.ndarray,
        amplification: float | None = None,
        m: float = 5.0,
        pattern: str = "RGGB",
    ) -> Restoration:
        """Like `restore`, returning a `Restoration` (image, factor used, time)."""
        start = time.perf_counter()
        x = _check_mosaic(mosaic)
        if amplification is None:
            check_m(m)
            amplification = self.amplification(x, m)
        else:
            amplification = check_amplification(amplification)
        rggb, offset = to_rggb(x, pattern)
        padded = pad_to_multiple(rggb, self.input_multiple)
        y = self._run(padded, amplification)
        image = from_rggb(y[: rggb.shape[0], : rggb.shape[1]], offset, x.shape)
        image = np.ascontiguousarray(image, dtype=np.float32)
        return Restoration(image, amplification, time.perf_counter() - start)

    def restore(
        self,
        mosaic: np.ndarray,
        amplification: float | None = None,
        m: float = 5.0,
        pattern: str = "RGGB",
    ) -> np.ndarray:
        """Restore a normalised mosaic to sRGB.

        Args:
          mosaic: (H, W) black-level-corrected mosaic, white level 1 (as
            `jaxdark.imaging.raw.read_raw` gives), sides >= 32 pixels, any size.
          amplification: the factor to multiply the mosaic by before the network;
            None (default) uses ``estimate_amplification(mosaic, m)``.
          m: brightness scale of the estimate (5, as the reference trained).
          pattern: Bayer layout of the mosaic's top-left 2x2 cell; non-RGGB mosaics
            are restored in the RGGB phase and mapped back.

        Returns:
          (H, W, 3) float32 sRGB in [0, 1], pixel-aligned with the mosaic.
        """
        return self.restore_mosaic(mosaic, amplification, m, pattern).image

    def restore_frame(
        self, frame: RawFrame, amplification: float | None = None, m: float = 5.0
    ) -> Restoration:
        """Restore a `jaxdark.imaging.raw.RawFrame` (its own Bayer phase and levels)."""
        return self.restore_mosaic(frame.mosaic, amplification, m, frame.pattern)

    def restore_file(
        self, path: str | os.PathLike, amplification: float | None = None, m: float = 5.0
    ) -> np.ndarray:
        """Read a RAW file (`jaxdark.imaging.raw.read_raw`) and restore it: (H, W, 3) float32."""
        return self.restore_frame(read_raw(path), amplification, m).image


def _check_mosaic(mosaic: Any) -> np.ndarray:
    x = np.asarray(mosaic)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 2:
        raise ValueError(f"expected a (H, W) mosaic, got shape {x.shape}")
    if min(x.shape) < INPUT_MULTIPLE:
        raise ValueError(
            f"mosaic of {x.shape[0]}x{x.shape[1]} pixels is too small: sides must be "
            f">= {INPUT_MULTIPLE}"
        )
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise ValueError("mosaic contains NaN or infinite values")
    return x


def check_amplification(a: Any) -> float:
    """``a`` as a float if it is a number in (0, MAX_USER_AMPLIFICATION], else a one-line
    ValueError (a factor of 1e39 would overflow float32 and give a black image)."""
    try:
        value = float(a)
    except (TypeError, ValueError):
        raise ValueError(f"amplification must be a number, got {a!r}") from None
    if not (np.isfinite(value) and 0 < value <= MAX_USER_AMPLIFICATION):
        raise ValueError(
            f"amplification must be a number in (0, {MAX_USER_AMPLIFICATION:g}], got {a!r}"
        )
    return value


def _reflect_pad(x: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """np.pad(reflect) that also works when a pad is larger than the side."""
    while rows[0] or rows[1] or cols[0] or cols[1]:
        h, w = x.shape
        r = (min(rows[0], h - 1), min(rows[1], h - 1))
        c = (min(cols[0], w - 1), min(cols[1], w - 1))
        # keep each step's pads even so the Bayer phase survives every mirror
        r = tuple(v - v % 2 if v != rows[k] else v for k, v in enumerate(r))
        c = tuple(v - v % 2 if v != cols[k] else v for k, v in enumerate(c))
        x = np.pad(x, (r, c), mode="reflect")
        rows = (rows[0] - r[0], rows[1] - r[1])
        cols = (cols[0] - c[0], cols[1] - c[1])
    return x

"""`Restorer`: dark RAW mosaic in, sRGB image out, at the input's exact resolution.

The path of one frame is one compiled device function per frame shape
(`jaxdark.imaging.device_frame`): the raw integers (or a normalised float32 mosaic) are
uploaded once; normalisation with the file's levels, the amplification estimate
(``estimate_amplification(mosaic, m)`` on the mosaic as given, as the reference does),
the RGGB phase and reflect padding to the model's input multiple, the network, the crop
back onto the input's pixel grid and the quantisation to uint8 / uint16 (or float32) all
run there, and only the final image and the factor come back. The functions are kept
per `jaxdark.imaging.device_frame.FrameSpec` (shape, dtype, Bayer phase, output type), so
a frame like one seen before never recompiles; the amplification and the levels are
arguments, not constants. `Restorer.submit` returns before the device is done (JAX's
asynchronous dispatch): `jaxdark.streaming` keeps several frames in flight with it.

``apply_fn(params, x)`` is a pure function of a parameter pytree and a (B, H, W, 1)
batch returning (B, H, W, 3); by default it is `jaxdark.models.lamba2021_folded.apply_folded`
on the model's `jaxdark.models.lamba2021_folded.fold_params` (weight norm folded away
once, equal to the model within 1e-5), and any equivalent function can replace it.

Tiling (``tile_size``) bounds memory on very large frames: the padded frame is cut into
``tile_size`` squares, each restored with ``tile_overlap`` pixels of context on every
side (reflect-padded at the frame's borders), and only the square's centre is kept.
Tiled frames are assembled on the host. The network's 1/32-scale branch sees hundreds of
pixels, so tiles do not reproduce the whole-frame output exactly; docs/restoring.md
("Tiling") gives the measured deviation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdark.constants import INPUT_MULTIPLE, MAX_USER_AMPLIFICATION
from jaxdark.fileio import to_uint
from jaxdark.imaging.amplifier import check_m, estimate_amplification
from jaxdark.imaging.bayer import red_position
from jaxdark.imaging.device_frame import (
    OUTPUT_BITS,
    FrameSpec,
    PendingRestoration,
    Restoration,
    abstract_args,
    check_levels,
    check_mosaic,
    check_out,
    frame_function,
)
from jaxdark.imaging.raw import (
    RawCounts,
    RawFrame,
    from_rggb,
    normalise,
    pad_to_multiple,
    padded_shape,
    read_raw_counts,
    reflect_pad,
    to_rggb,
)
from jaxdark.models.precision import resolve_dtype
from jaxdark.streaming import frame_arguments

ApplyFn = Callable[[Any, jax.Array], jax.Array]


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
        self._compiled: dict[Any, Any] = {}
        self._compile_log: list[tuple[int, int]] = []

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
        """(H, W) padded RGGB tile and a factor -> (H, W, 3): the tiled path's function."""
        y = self.apply_fn(params, (amplification * x)[None, :, :, None])
        return y[0]

    def _compiled_tile(self, shape: tuple[int, int]) -> Any:
        fn = self._compiled.get(shape)
        if fn is None:
            spec = jax.ShapeDtypeStruct(shape, jnp.float32)
            amp = jax.ShapeDtypeStruct((), jnp.float32)
            fn = self._jitted.lower(self.params, spec, amp).compile()
            self._compiled[shape] = fn
            self._compile_log.append(shape)
        return fn

    def compiled_frame(self, spec: FrameSpec) -> Any:
        """The compiled whole-frame function of ``spec`` (compiled on first use, kept)."""
        fn = self._compiled.get(spec)
        if fn is None:
            jitted = jax.jit(frame_function(self.apply_fn, spec))
            fn = jitted.lower(self.params, *abstract_args(spec)).compile()
            self._compiled[spec] = fn
            self._compile_log.append(tuple(spec.shape))
        return fn

    @property
    def compiled_shapes(self) -> list[tuple[int, int]]:
        """Shapes compiled so far, in order, one entry per compilation: the frame's (H, W)
        for whole frames (one function per frame shape, Bayer phase and output type), the
        tile's padded (H, W) for tiled frames."""
        return list(self._compile_log)

    def _run_tiled(self, x: np.ndarray, amplification: float) -> np.ndarray:
        """Padded RGGB mosaic (sides multiples of ``input_multiple``) -> (H, W, 3), tiled."""
        t = self.tile_size
        h, w = x.shape
        # context beyond the frame is only mirrored frame: no tile needs more than the frame
        m = self.input_multiple
        o = min(self.tile_overlap, -(-max(h, w) // m) * m)
        nh, nw = -(-h // t), -(-w // t)
        # Extend to whole tiles plus the context ring; reflect keeps the Bayer phase
        # because every pad is even.
        ext = reflect_pad(x, (o, nh * t - h + o), (o, nw * t - w + o))
        fn = self._compiled_tile((t + 2 * o, t + 2 * o))
        out = np.empty((nh * t, nw * t, 3), np.float32)
        a = np.float32(amplification)
        for i in range(nh):
            for j in range(nw):
                tile = ext[i * t : i * t + t + 2 * o, j * t : j * t + t + 2 * o]
                y = np.asarray(fn(self.params, jnp.asarray(tile), a))
                out[i * t : (i + 1) * t, j * t : (j + 1) * t] = y[o : o + t, o : o + t]
        return out[:h, :w]

    def _tiled(self, shape: tuple[int, int], pattern: str) -> bool:
        """Whether a frame of ``shape`` is restored in tiles (its padded RGGB mosaic has a
        side over ``tile_size``)."""
        if self.tile_size is None:
            return False
        dy, dx = red_position(pattern)
        padded = padded_shape((shape[0] + dy, shape[1] + dx), self.input_multiple)
        return max(padded) > self.tile_size

    def _restore_tiled(self, x, black, white, factor, estimate, pattern, out) -> Restoration:
        start = time.perf_counter()
        if x.dtype != np.float32:
            x = normalise(x, black, white)
        a = float(estimate_amplification(x, factor)) if estimate else float(factor)
        rggb, offset = to_rggb(x, pattern)
        y = self._run_tiled(pad_to_multiple(rggb, self.input_multiple), a)
        image = from_rggb(y[: rggb.shape[0], : rggb.shape[1]], offset, x.shape)
        bits = OUTPUT_BITS[out]
        image = np.ascontiguousarray(image if bits is None else to_uint(image, bits))
        return Restoration(image, a, time.perf_counter() - start)

    # ------------------------------------------------------------------ public API

    def amplification(self, mosaic: np.ndarray, m: float = 5.0) -> float:
        """The estimated factor ``estimate_amplification(mosaic, m)`` as a Python float."""
        return float(estimate_amplification(np.asarray(mosaic, np.float32), m))

    def _prepare(self, mosaic, black_levels, white_level, amplification, m, pattern, out):
        """Checked host arguments of one frame and its `FrameSpec`."""
        check_out(out)
        red_position(pattern)
        x = check_mosaic(mosaic, self.input_multiple, black_levels is None)
        if black_levels is None:
            black, white = np.zeros(4, np.float32), np.float32(1.0)
        else:
            black, white = check_levels(black_levels, white_level)
        if amplification is None:
            check_m(m)
            factor, estimate = np.float32(m), True
        else:
            factor, estimate = np.float32(check_amplification(amplification)), False
        spec = FrameSpec(tuple(x.shape), x.dtype.name, pattern, self.input_multiple, estimate, out)
        return x, black, white, factor, spec

    def submit(
        self,
        mosaic: np.ndarray,
        amplification: float | None = None,
        m: float = 5.0,
        pattern: str = "RGGB",
        *,
        black_levels: Any = None,
        white_level: float | None = None,
        out: str = "float32",
    ) -> PendingRestoration:
        """Start restoring one frame and return at once (asynchronous dispatch).

        ``mosaic`` is a normalised float mosaic (``black_levels`` None) or the sensor's
        integers with ``black_levels`` (4, per 2x2 position) and ``white_level``. The
        returned `PendingRestoration`'s ``result()`` waits for the image (dtype ``out``).
        """
        x, black, white, factor, spec = self._prepare(
            mosaic, black_levels, white_level, amplification, m, pattern, out
        )
        start = time.perf_counter()
        if self._tiled(x.shape, pattern):
            return PendingRestoration.done(
                self._restore_tiled(x, black, white, factor, spec.estimate, pattern, out)
            )
        fn = self.compiled_frame(spec)
        image, a = fn(self.params, jax.device_put(x), black, white, factor)
        return PendingRestoration(image, a, start)

    def submit_batch(self, frames: list[dict[str, Any]]) -> list[PendingRestoration]:
        """Start restoring several same-shape frames as one batch (one device call).

        Each item holds `submit`'s arguments by name (``mosaic`` and optionally
        ``amplification``, ``m``, ``pattern``, ``black_levels``, ``white_level``,
        ``out``); all must give the same `FrameSpec` (shape, dtype, Bayer phase, output
        type, estimate or not) and none may need tiling (ValueError otherwise).
        """
        prepared = []
        for f in frames:
            kw = dict(f)
            prepared.append(
                self._prepare(
                    kw.pop("mosaic"),
                    kw.pop("black_levels", None),
                    kw.pop("white_level", None),
                    kw.pop("amplification", None),
                    kw.pop("m", 5.0),
                    kw.pop("pattern", "RGGB"),
                    kw.pop("out", "float32"),
                )
            )
        specs = {p[4] for p in prepared}
        if len(specs) != 1:
            raise ValueError("submit_batch needs frames of one shape, dtype, pattern and output")
        spec = specs.pop()
        if self._tiled(spec.shape, spec.pattern):
            raise ValueError("submit_batch does not tile; submit tiled frames one by one")
        start = time.perf_counter()
        n = len(prepared)
        batch = FrameSpec(**{**spec.__dict__, "batch": n})
        stacked = [np.stack([p[i] for p in prepared]) for i in range(4)]
        fn = self.compiled_frame(batch)
        images, amps = fn(self.params, jax.device_put(stacked[0]), *stacked[1:])
        return [PendingRestoration(images, amps, start, index=i) for i in range(n)]

    def restore_mosaic(
        self,
        mosaic: np.ndarray,
        amplification: float | None = None,
        m: float = 5.0,
        pattern: str = "RGGB",
        *,
        out: str = "float32",
    ) -> Restoration:
        """Like `restore`, returning a `Restoration` (image, factor used, time)."""
        return self.submit(mosaic, amplification, m, pattern, out=out).result()

    def restore_counts(
        self,
        counts: np.ndarray,
        black_levels: Any,
        white_level: float,
        amplification: float | None = None,
        m: float = 5.0,
        pattern: str = "RGGB",
        *,
        out: str = "float32",
    ) -> Restoration:
        """Restore a mosaic of raw sensor integers (normalised on the device with
        ``black_levels``, one per 2x2 position row-major, and ``white_level``)."""
        return self.submit(
            counts,
            amplification,
            m,
            pattern,
            black_levels=black_levels,
            white_level=white_level,
            out=out,
        ).result()

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
            `jaxdark.imaging.raw.read_raw` gives), sides >= the model's input multiple
            (32), any size.
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
        self,
        frame: RawFrame | RawCounts,
        amplification: float | None = None,
        m: float = 5.0,
        *,
        out: str = "float32",
    ) -> Restoration:
        """Restore a `jaxdark.imaging.raw.RawFrame` or `jaxdark.imaging.raw.RawCounts`
        (its own Bayer phase and levels; counts are normalised on the device)."""
        args = frame_arguments(frame)
        return self.submit(amplification=amplification, m=m, out=out, **args).result()

    def restore_file(
        self,
        path: str | os.PathLike,
        amplification: float | None = None,
        m: float = 5.0,
        *,
        out: str = "float32",
    ) -> np.ndarray:
        """Read a RAW file (`jaxdark.imaging.raw.read_raw_counts`) and restore it:
        (H, W, 3) of dtype ``out`` (float32 in [0, 1] by default)."""
        return self.restore_frame(read_raw_counts(path), amplification, m, out=out).image


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

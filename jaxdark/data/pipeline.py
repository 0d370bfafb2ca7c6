"""The grain input pipeline: per-process shards, Bayer-safe random crops and flips,
amplification, batching, worker processes, and a checkpointable iterator.

Order: source -> shuffle (reshuffled every epoch) -> repeat forever -> random
crop/flip/amplify (a generator per position in the stream, derived from ``seed``) ->
this process's share of every global batch -> batch -> optional worker processes.

Sharding: global batch ``b`` is stream elements ``[b*B, (b+1)*B)``; process ``p`` of
``P`` reads and prepares only its block ``[b*B + p*B/P, b*B + (p+1)*B/P)``, which
`jax.make_array_from_process_local_data` places on its devices. So every record is
read by one process only, and the global batches are the same for any number of
processes (a 2-host run sees exactly the batches of a 1-host run). Everything is a
function of ``seed`` and the stream position: a fixed seed gives the same batches, with
or without workers, and the iterator's state (`get_state`) is a small dict saved with
each checkpoint (see `jaxdark.training.checkpointing`).

Crops start at offsets of the right parity so the crop's top-left 2x2 cell is R G / G B
whatever the camera's CFA layout; a flipped crop is taken one pixel further on along
the flipped axis, so after the flip the mosaic is again RGGB and the target is flipped
with it (the reference's flips change the Bayer phase).
"""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Iterator
from typing import Any

import grain
import numpy as np

from jaxdark.constants import AMPLIFICATION_MODES, INPUT_MULTIPLE
from jaxdark.imaging.bayer import red_position
from jaxdark.imaging.raw import normalise


def _start(rng: np.random.Generator, size: int, crop: int, parity: int) -> int | None:
    """A uniform start in [0, size - crop] with the given parity, or None if none fits."""
    count = (size - crop - parity) // 2 + 1
    if size - crop - parity < 0 or count <= 0:
        return None
    return parity + 2 * int(rng.integers(count))


def crop_and_flip(
    mosaic: np.ndarray,
    target: np.ndarray,
    pattern: str,
    crop_size: int,
    rng: np.random.Generator,
    hflip_prob: float = 0.5,
    vflip_prob: float = 0.2,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, bool, bool]]:
    """A random ``crop_size`` square of ``mosaic`` (H, W) and ``target`` (H, W, C) whose
    mosaic starts with an RGGB cell, flipped left-right / up-down with the given
    probabilities. Returns the crops and (top, left, hflip, vflip) of the source window.
    """
    h, w = mosaic.shape
    if target.shape[:2] != (h, w):
        raise ValueError(f"target {target.shape[:2]} and mosaic {(h, w)} differ in size")
    if crop_size > h or crop_size > w:
        raise ValueError(f"crop_size {crop_size} is larger than the image ({h}x{w})")
    ry, rx = red_position(pattern)
    vflip = bool(rng.random() < vflip_prob)
    hflip = bool(rng.random() < hflip_prob)
    # Unflipped: the window starts on the red row/column. Flipped: it ends on one, so
    # its last row/column (which becomes the first) is red.
    top = _start(rng, h, crop_size, 1 - ry if vflip else ry)
    if top is None:  # no room for the shifted window: do not flip
        vflip, top = False, _start(rng, h, crop_size, ry)
    left = _start(rng, w, crop_size, 1 - rx if hflip else rx)
    if left is None:
        hflip, left = False, _start(rng, w, crop_size, rx)
    if top is None or left is None:
        raise ValueError(
            f"crop_size {crop_size} does not fit a {h}x{w} {pattern} mosaic at the Bayer phase"
        )
    m = mosaic[top : top + crop_size, left : left + crop_size]
    t = target[top : top + crop_size, left : left + crop_size]
    if vflip:
        m, t = m[::-1], t[::-1]
    if hflip:
        m, t = m[:, ::-1], t[:, ::-1]
    return np.ascontiguousarray(m), np.ascontiguousarray(t), (top, left, hflip, vflip)


def amplification_from_sums(sum_w: float, sum_xw: float, m: float) -> float:
    """`jaxdark.imaging.amplifier.amplification_from_sums` on the CPU."""
    import jax  # noqa: PLC0415

    from jaxdark.imaging.amplifier import amplification_from_sums as from_sums  # noqa: PLC0415

    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        return from_sums(float(sum_w), float(sum_xw), m)


def estimated_amplification(x: np.ndarray, m: float) -> float:
    """``jaxdark.imaging.amplifier.estimate_amplification`` of a normalised frame, on the CPU."""
    import jax  # noqa: PLC0415

    from jaxdark.imaging.amplifier import estimate_amplification  # noqa: PLC0415

    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        return float(estimate_amplification(x, m))


@dataclasses.dataclass(frozen=True)
class CropAmplify(grain.transforms.RandomMap):
    """A joined SID record -> ``{"input": (c, c, 1), "target": (c, c, 3), "amplification"}``.

    ``input`` is the normalised crop times the amplification: the exposure ratio
    (``"gt"``) or the factor estimated from the whole normalised frame with brightness
    ``m`` (``"estimated"``), not clipped, as in the reference. ``target`` is the
    16-bit ground truth / 65535.
    """

    crop_size: int
    amplification: str = "gt"
    m: float = 5.0
    hflip_prob: float = 0.5
    vflip_prob: float = 0.2

    def __post_init__(self):
        if self.amplification not in AMPLIFICATION_MODES:
            raise ValueError(
                f"amplification must be one of {AMPLIFICATION_MODES}, got {self.amplification!r}"
            )
        if self.crop_size <= 0 or self.crop_size % INPUT_MULTIPLE:
            raise ValueError(
                f"crop_size must be a positive multiple of {INPUT_MULTIPLE}, got {self.crop_size}"
            )

    def random_map(self, element: dict, rng: np.random.Generator) -> dict:
        mosaic, target = element["mosaic"], element["target"]
        try:
            m, t, _ = crop_and_flip(
                mosaic,
                target,
                element["pattern"],
                self.crop_size,
                rng,
                self.hflip_prob,
                self.vflip_prob,
            )
        except ValueError as e:
            raise ValueError(f"{element.get('short_file', 'record')}: {e}") from None
        black, white = element["black_levels"], element["white_level"]
        if self.amplification == "gt":
            amp = float(element["ratio"])
        elif "amplification_sums" in element:  # stored whole-frame sums: no full read
            amp = amplification_from_sums(*element["amplification_sums"], m=self.m)
        else:
            amp = estimated_amplification(normalise(mosaic, black, white), self.m)
        x = normalise(m, black, white) * np.float32(amp)
        return {
            "input": x[..., None].astype(np.float32),
            "target": (t.astype(np.float32) / np.float32(65535.0)),
            "amplification": np.float32(amp),
        }


class _ProcessShare(grain.MapDataset):
    """Element ``j`` of this process: element ``b*B + p*L + r`` of the global stream,
    where ``b, r = divmod(j, L)``, ``B`` the global and ``L = B/P`` the local batch."""

    def __init__(self, parent, global_batch: int, local_batch: int, process_index: int):
        super().__init__(parent)
        self._global = global_batch
        self._local = local_batch
        self._offset = process_index * local_batch

    def __len__(self) -> int:
        return len(self._parents[0]) // self._global * self._local

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        b, r = divmod(int(index), self._local)
        return self._parents[0][b * self._global + self._offset + r]

    def __str__(self) -> str:
        return f"ProcessShare(global={self._global}, local={self._local}, at={self._offset})"


def _worker_init(worker_index: int, worker_count: int) -> None:
    """Data workers: leave SIGTERM/SIGINT to the training process (which saves a checkpoint
    and then stops the workers; a signal sent to the whole process group must not kill
    them first), and keep JAX on the CPU (never claim the host's GPU/TPU)."""
    del worker_index, worker_count
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["JAX_PLATFORMS"] = "cpu"
    try:
        import jax  # noqa: PLC0415

        jax.config.update("jax_platforms", "cpu")
    except Exception:  # noqa: BLE001 - backends already initialised; nothing to do
        pass


def local_batch_size(global_batch_size: int, process_count: int) -> int:
    """This process's share of the global batch."""
    if global_batch_size <= 0 or global_batch_size % process_count:
        raise ValueError(
            f"batch_size {global_batch_size} must be a positive multiple of the number of "
            f"processes ({process_count})"
        )
    return global_batch_size // process_count


def make_dataset(
    source: Any,
    *,
    global_batch_size: int,
    crop_size: int,
    seed: int,
    amplification: str = "gt",
    m: float = 5.0,
    hflip_prob: float = 0.5,
    vflip_prob: float = 0.2,
    worker_count: int = 0,
    worker_buffer_size: int = 2,
    read_threads: int = 4,
    prefetch_batches: int = 4,
    process_index: int | None = None,
    process_count: int | None = None,
    transform: grain.transforms.RandomMap | None = None,
) -> grain.IterDataset:
    """The infinite stream of this process's share of each global batch (see the
    module docstring).

    ``source`` is a random-access source of joined records (`jaxdark.data.sid.SIDPairs`).
    Each process yields ``global_batch_size / process_count`` examples per batch;
    process index and count default to JAX's. ``transform`` replaces `CropAmplify` (e.g.
    `jaxdark.data.device_synthesis.PhotoCrop`, whose pairs are made on the device).
    """
    if process_index is None or process_count is None:
        import jax  # noqa: PLC0415

        process_index, process_count = jax.process_index(), jax.process_count()
    batch = local_batch_size(global_batch_size, process_count)
    if transform is None:
        transform = CropAmplify(crop_size, amplification, m, hflip_prob, vflip_prob)
    if len(source) == 0:
        raise ValueError("the training split has no records")
    ds = grain.MapDataset.source(source).shuffle(seed=seed).repeat(None)
    ds = ds.random_map(transform, seed=seed)
    ds = _ProcessShare(ds, global_batch_size, batch, process_index)
    ds = ds.batch(batch, drop_remainder=True)
    read = grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch_batches)
    it_ds = ds.to_iter_dataset(read_options=read)
    if worker_count > 0:
        from absl import flags  # noqa: PLC0415

        if not flags.FLAGS.is_parsed():  # grain reads its absl flags (defaults suffice)
            flags.FLAGS.mark_as_parsed()
        it_ds = it_ds.mp_prefetch(
            grain.MultiprocessingOptions(
                num_workers=worker_count, per_worker_buffer_size=worker_buffer_size
            ),
            worker_init_fn=_worker_init,
        )
    return it_ds


def make_iterator(source: Any, **kwargs) -> Iterator[dict[str, np.ndarray]]:
    """``iter(make_dataset(source, **kwargs))``: a grain ``DatasetIterator`` with
    ``get_state()`` / ``set_state()``."""
    return iter(make_dataset(source, **kwargs))

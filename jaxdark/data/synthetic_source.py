"""Random-access sources of synthetic pairs for the grain pipeline, and mixing with SID.

`SyntheticPairs` turns a folder of photos (PNG, JPEG or TIFF, any size, searched
recursively) or, with no folder, scikit-image's bundled sample photographs into SID-style
records (`jaxdark.data.synthetic.SyntheticPair.record`), so `jaxdark.data.pipeline`
shuffles, shards, crops, flips, amplifies and checkpoints them exactly as SID pairs.

* Record ``i`` is a function of ``(seed, i)`` only: photo ``i % n``, a random window of
  it, then white balance, colour matrix, exposure ratio and noise, all drawn from
  ``numpy.random.default_rng([seed, i])``. A resumed grain iterator therefore sees the
  very same pairs. One pass holds ``variants`` records per photo, each different.
* A photo that cannot be read, is smaller than the window, or declares more pixels
  than the photo limit (`jaxdark.imaging.photo`, ``$JAXDARK_MAX_PHOTO_PIXELS``; checked
  from its header, before decoding) is left out and reported once (a warning, and
  ``source.skipped``); the others go on.
* Train/validation split: for the scikit-image photos the fixed lists
  `SKIMAGE_TRAIN` / `SKIMAGE_VALIDATION`; for a folder, a photo is held out when a hash
  of its path relative to the folder falls below ``val_fraction`` (stable under renames
  of the folder itself and additions of other photos).

`MixedSource` interleaves SID and synthetic records with fixed shares;
`make_train_source(config, sid_source)` builds what a config asks for.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxdark.data.synthetic import SynthesisConfig, SyntheticPair, synthesize_pair
from jaxdark.errors import JaxdarkError
from jaxdark.imaging.photo import PhotoError, photo_size, read_photo  # noqa: F401 (API)

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
SPLITS = ("train", "validation")
# scikit-image's bundled photographs (files of skimage/data, no download). Held out for
# validation: three colour photographs of everyday scenes. The two motorcycle views are
# a stereo pair, so both are on the same side. Graphics, text pages and tiny images are
# not used.
SKIMAGE_TRAIN = (
    "astronaut.png", "brick.png", "camera.png", "coins.png", "grass.png", "gravel.png",
    "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png",
    "motorcycle_right.png", "retina.jpg",
)  # fmt: skip
SKIMAGE_VALIDATION = ("chelsea.png", "coffee.png", "rocket.jpg")


def skimage_photos(split: str = "train") -> list[Path]:
    """Paths of scikit-image's sample photographs of ``split`` ("train", "validation")."""
    import skimage.data  # noqa: PLC0415

    _check_split(split)
    folder = Path(skimage.data.__file__).parent
    names = SKIMAGE_TRAIN if split == "train" else SKIMAGE_VALIDATION
    return [folder / name for name in names]


def is_held_out(relative_path: str, val_fraction: float) -> bool:
    """Whether a photo at ``relative_path`` (POSIX form) belongs to the validation split:
    the first 8 bytes of its SHA-256, as a fraction of 2^64, are below ``val_fraction``."""
    digest = hashlib.sha256(relative_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < val_fraction


def find_photos(folder: str | Path, split: str = "train", val_fraction: float = 0.1) -> list[Path]:
    """Photos (by suffix, any case) under ``folder``, recursively, sorted, of ``split``."""
    _check_split(split)
    if not 0.0 <= val_fraction < 1.0:
        raise JaxdarkError(f"val_fraction must be in [0, 1), got {val_fraction}")
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise PhotoError(f"{folder}: photo folder not found")
    paths = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file()
    )
    want = split == "validation"
    return [p for p in paths if is_held_out(p.relative_to(folder).as_posix(), val_fraction) == want]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise JaxdarkError(f"unknown split {split!r}; expected one of {SPLITS}")


class SyntheticPairs:
    """Random-access source of synthetic SID-style records (see the module docstring).

    Args:
      photo_dir: folder of photos; None or "" for scikit-image's sample photographs.
      split: "train" or "validation".
      window: side of the square cut from a photo per record (photos with a shorter side
        are skipped); None: the whole photo (its sides made even).
      seed: with the index, decides every draw of a record.
      variants: records per photo in one pass of the source (``len = photos * variants``).
      config: the synthesis settings (`jaxdark.data.synthetic.SynthesisConfig`).
      val_fraction: share of a folder's photos held out for validation.
      cache_mb: decoded photos kept in memory, at most this many MiB per process.
    """

    def __init__(
        self,
        photo_dir: str | Path | None = None,
        *,
        split: str = "train",
        window: int | None = 258,
        seed: int = 0,
        variants: int = 10_000,
        config: SynthesisConfig | None = None,
        val_fraction: float = 0.1,
        cache_mb: float = 256.0,
    ):
        _check_split(split)
        if window is not None and window < 2:
            raise JaxdarkError(f"window must be >= 2 pixels, got {window}")
        if variants < 1:
            raise JaxdarkError(f"variants must be >= 1, got {variants}")
        if seed < 0:
            raise JaxdarkError(f"seed must be >= 0, got {seed}")
        self.split = split
        self.window = window
        self.seed = int(seed)
        self.variants = int(variants)
        self.config = config or SynthesisConfig()
        self.cache_bytes = int(cache_mb * 2**20)
        if photo_dir:
            self.origin = str(photo_dir)
            candidates = find_photos(photo_dir, split, val_fraction)
            root = Path(photo_dir).expanduser()
        else:
            self.origin = "scikit-image sample photographs"
            candidates = skimage_photos(split)
            root = candidates[0].parent if candidates else Path(".")
        self.photos: list[Path] = []
        self.names: list[str] = []
        self.skipped: list[str] = []  # one line per photo left out
        for path in candidates:
            reason = self._unusable(path)
            if reason:
                self.skipped.append(reason)
                log.warning("skipping %s", reason)
            else:
                self.photos.append(path)
                self.names.append(path.relative_to(root).as_posix())
        if not self.photos:
            detail = (
                f" ({len(self.skipped)} skipped: {self.skipped[0]} ...)" if self.skipped else ""
            )
            raise PhotoError(f"{self.origin}: no usable {split} photos{detail}")
        self._init_cache()

    def _unusable(self, path: Path) -> str | None:
        try:
            h, w = photo_size(path)
        except PhotoError as e:
            return str(e)
        if self.window is not None and min(h, w) < self.window:
            return f"{path}: {h}x{w} is smaller than the {self.window}x{self.window} window"
        if min(h, w) < 32:
            return f"{path}: {h}x{w} is smaller than 32x32"
        return None

    # -- decoded photos, cached per process (not pickled to grain workers)
    def _init_cache(self) -> None:
        self._cache: dict[int, np.ndarray] = {}
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self._failed: set[int] = set()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in ("_cache", "_cached_bytes", "_lock", "_failed"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_cache()

    def _photo(self, k: int) -> np.ndarray:
        image = self._cache.get(k)
        if image is not None:
            return image
        image = read_photo(self.photos[k])
        if self.window is not None and min(image.shape[:2]) < self.window:
            raise PhotoError(
                f"{self.photos[k]}: {image.shape[0]}x{image.shape[1]} is smaller than the "
                f"{self.window}x{self.window} window"
            )
        with self._lock:
            if k in self._cache:  # another reader thread decoded it meanwhile
                return self._cache[k]
            if image.nbytes <= self.cache_bytes:
                while self._cache and self._cached_bytes + image.nbytes > self.cache_bytes:
                    oldest = next(iter(self._cache))
                    self._cached_bytes -= self._cache.pop(oldest).nbytes
                self._cache[k] = image
                self._cached_bytes += image.nbytes
        return image

    def _usable_photo(self, k: int) -> tuple[int, np.ndarray]:
        """Photo ``k``, or the next one that decodes (a failure is reported once)."""
        n = len(self.photos)
        for step in range(n):
            j = (k + step) % n
            if j in self._failed:
                continue
            try:
                return j, self._photo(j)
            except PhotoError as e:
                with self._lock:
                    if j not in self._failed:
                        self._failed.add(j)
                        self.skipped.append(str(e))
                        log.warning("skipping %s", e)
        raise PhotoError(f"{self.origin}: none of the {n} {self.split} photos can be read")

    def first_readable(self) -> int:
        """Index of the first photo that decodes (PhotoError naming the folder if none
        does; headers alone can look fine on damaged files)."""
        return self._usable_photo(0)[0]

    def usable_photo(self, k: int) -> tuple[int, np.ndarray]:
        """(index, decoded photo) of photo ``k`` or the next one that decodes."""
        return self._usable_photo(k)

    def __len__(self) -> int:
        return len(self.photos) * self.variants

    def __getitem__(self, index: int) -> dict:
        return self.pair(index).record()

    def pair(self, index: int) -> SyntheticPair:
        """Record ``index`` as a `SyntheticPair` (with its gains, noise and clean raw)."""
        index = int(index)
        if index < 0:
            raise IndexError(f"index {index} is negative")
        rng = np.random.default_rng([self.seed, index])
        k, photo = self._usable_photo(index % len(self.photos))
        if self.window is not None:
            h, w = photo.shape[:2]
            top = int(rng.integers(h - self.window + 1))
            left = int(rng.integers(w - self.window + 1))
            photo = photo[top : top + self.window, left : left + self.window]
        return synthesize_pair(photo, rng, self.config, name=f"{self.names[k]}#{index}")

    def __repr__(self) -> str:
        return (
            f"SyntheticPairs({self.origin!r}, split={self.split!r}, photos={len(self.photos)}, "
            f"window={self.window}, n={len(self)})"
        )


class MixedSource:
    """Random-access union of sources, each taking a fixed share of every pass.

    The pass has ``T = max_k ceil(len_k / w_k)`` records (weights normalised), so every
    record of every source appears at least once; source ``k`` owns a contiguous block of
    ``round(T * w_k)`` indices and serves them modulo its length. (The pipeline shuffles
    the whole pass, so blocks do not mean order.) Picklable if the sources are.
    """

    def __init__(self, sources: Sequence[Any], weights: Sequence[float]):
        if len(sources) != len(weights) or not sources:
            raise JaxdarkError("give one weight per source (at least one source)")
        w = np.asarray(weights, np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise JaxdarkError(f"weights must be >= 0 with a positive sum, got {list(weights)}")
        keep = [i for i in range(len(sources)) if w[i] > 0]
        self.sources = [sources[i] for i in keep]
        w = w[keep] / w[keep].sum()
        lengths = [len(s) for s in self.sources]
        if min(lengths) == 0:
            raise JaxdarkError("a mixed source is empty")
        total = max(math.ceil(n / wk - 1e-9) for n, wk in zip(lengths, w, strict=True))
        self.blocks = [max(n, round(total * wk)) for n, wk in zip(lengths, w, strict=True)]
        self.weights = tuple(float(x) for x in w)
        self._starts = np.cumsum([0, *self.blocks])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, index: int) -> Any:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} records")
        k = int(np.searchsorted(self._starts, index, side="right")) - 1
        source = self.sources[k]
        return source[(index - int(self._starts[k])) % len(source)]

    def __repr__(self) -> str:
        parts = ", ".join(f"{s!r} x{b}" for s, b in zip(self.sources, self.blocks, strict=True))
        return f"MixedSource({parts})"


def synthesis_config(config: Any) -> SynthesisConfig:
    """The `SynthesisConfig` of a training config's ``synthetic_*`` fields."""
    lo, hi = (tuple(config.synthetic_ratio_range) + (0.0, 0.0))[:2]
    return SynthesisConfig(
        ratios=tuple(float(r) for r in config.synthetic_ratios),
        ratio_range=(float(lo), float(hi)) if hi > 0 else None,
        tone_curve=bool(config.synthetic_tone_curve),
        white_balance_spread=float(config.synthetic_white_balance_spread),
        color_matrix_spread=float(config.synthetic_color_matrix_spread),
        read_model=str(config.synthetic_read_model),
        read_noise_scale=float(config.synthetic_read_noise_scale),
    )


def synthetic_source(config: Any, split: str = "train") -> SyntheticPairs:
    """`SyntheticPairs` as a training config describes them (window 0: crop_size + 2,
    so the pipeline's Bayer-safe flips have the pixel they need)."""
    try:
        synthesis = synthesis_config(config)
    except ValueError as e:
        raise JaxdarkError(f"config: {e}") from None
    window = int(config.synthetic_window) or int(config.crop_size) + 2
    source = SyntheticPairs(
        config.photo_dir or None,
        split=split,
        window=window,
        seed=int(config.seed),
        variants=int(config.synthetic_variants),
        config=synthesis,
        val_fraction=float(config.synthetic_val_fraction),
    )
    source.first_readable()  # a folder of only damaged photos fails before any run files
    return source


def make_train_source(config: Any, sid_source: Callable[[], Any] | None = None) -> Any:
    """The training source a config asks for.

    * no ``synthetic_fraction`` (or 0): SID only, ``sid_source()``;
    * ``synthetic_fraction`` > 0 and SID configured (``data_dir`` or ``tfds_data_dir``):
      a `MixedSource` with that share of synthetic pairs (1: synthetic only);
    * ``synthetic_fraction`` > 0 and no SID: synthetic pairs only.

    ``sid_source`` builds the SID source (train.py's, which prepares the dataset).
    """
    fraction = float(config.synthetic_fraction)
    if not 0.0 <= fraction <= 1.0:
        raise JaxdarkError(f"config.synthetic_fraction must be in [0, 1], got {fraction}")
    use_sid = bool(config.data_dir or config.tfds_data_dir) and fraction < 1.0
    if fraction == 0.0 or use_sid:
        if sid_source is None:
            raise JaxdarkError("SID pairs are configured but no SID source was given")
        sid = sid_source()
        if fraction == 0.0:
            return sid
        split = config.train_split
        return MixedSource([sid, synthetic_source(config, split)], [1.0 - fraction, fraction])
    return synthetic_source(config, config.train_split)

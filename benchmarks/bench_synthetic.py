"""Synthetic pairs: time per pair on one core, and how closely the target matches rawpy.

    python -m benchmarks.bench_synthetic [--size 512] [--repeats 30] [--smoke]

1. Time to synthesise one ``size`` x ``size`` pair (`benchmark_pair`)
   in this process pinned to one CPU core: wall and CPU time, median and best.
2. The consistency check: every scikit-image photograph the synthetic source uses
   (train and validation) becomes a pair (seed = its position); the clean long exposure
   is written as a DNG (`jaxdark.imaging.dng.write_dng`, with the pair's white balance as
   AsShotNeutral and the a7S II colour matrix) and developed by rawpy exactly as SID's
   ground truth; the table gives rawpy minus our target, as a fraction of full scale:
   mean and 99th percentile of |difference|, its maximum, and the mean per channel (a
   colour shift would show there).

``--smoke``: 64 px, 3 repeats, two photos (CI).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

if __name__ == "__main__":  # one thread: set before NumPy is imported (not on import)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from benchmarks.common import cpu_model  # noqa: E402


def benchmark_pair(size: int = 512, repeats: int = 20, seed: int = 0) -> dict[str, float]:
    """Seconds per ``size`` x ``size`` pair from a uint8 photo: wall and CPU time, median
    and best of ``repeats`` after one warm-up. Pin the process to one core to time one."""
    import time

    from jaxdark.data.synthetic import synthesize_pair

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    photo = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)
    photo = np.clip(photo.astype(np.int16) + rng.integers(-20, 21, photo.shape), 0, 255)
    photo = photo.astype(np.uint8)
    synthesize_pair(photo, rng)
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        synthesize_pair(photo, rng)
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return {
        "median_s": float(np.median(wall)),
        "best_s": float(np.min(wall)),
        "median_cpu_s": float(np.median(cpu)),
        "best_cpu_s": float(np.min(cpu)),
    }


def time_on_one_core(size: int, repeats: int) -> tuple[dict[str, float], str]:
    """`benchmark_pair` with this process restricted to one core (the
    previous affinity is restored); the timings and a note on the pinning."""
    try:
        before = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return benchmark_pair(size, repeats), "not pinned (no sched_setaffinity)"
    core = min(before)
    os.sched_setaffinity(0, {core})
    try:
        return benchmark_pair(size, repeats), f"pinned to core {core}"
    finally:
        os.sched_setaffinity(0, before)


def consistency_rows(photos: list[Path], workdir: Path) -> list[tuple[str, np.ndarray]]:
    """(name, [mean |d|, p99 |d|, max |d|, mean d R, G, B]) per photo; d = rawpy - target."""
    import rawpy

    from jaxdark.data import synthetic as syn
    from jaxdark.data.synthetic_source import read_photo
    from jaxdark.imaging.dng import write_dng

    rows = []
    for i, path in enumerate(photos):
        pair = syn.synthesize_pair(read_photo(path), np.random.default_rng(i), name=path.name)
        dng = write_dng(
            workdir / f"{path.stem}.dng",
            pair.clean,
            black_levels=syn.BLACK_LEVEL,
            white_level=syn.WHITE_LEVEL,
            as_shot_neutral=tuple(1.0 / pair.gains),
            color_matrix=syn.XYZ_TO_CAMERA,
        )
        with rawpy.imread(str(dng)) as raw:
            developed = raw.postprocess(
                use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16
            )
        d = (developed.astype(np.float64) - pair.target) / 65535.0
        a = np.abs(d)
        stats = [a.mean(), np.percentile(a, 99), a.max(), *d.mean(axis=(0, 1))]
        rows.append((path.name, np.array(stats)))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the two tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--smoke", action="store_true", help="64 px, 3 repeats, 2 photos")
    args = parser.parse_args(argv)
    size, repeats = (64, 3) if args.smoke else (args.size, args.repeats)

    from jaxdark.data.synthetic_source import skimage_photos

    t, pinned = time_on_one_core(size, repeats)
    print(f"machine: {cpu_model()}, {pinned}, load average {os.getloadavg()[0]:.1f}")
    print()
    print(f"| one {size}x{size} pair | median | best |")
    print("|---|---|---|")
    print(f"| wall time | {1e3 * t['median_s']:.1f} ms | {1e3 * t['best_s']:.1f} ms |")
    print(f"| CPU time | {1e3 * t['median_cpu_s']:.1f} ms | {1e3 * t['best_cpu_s']:.1f} ms |")
    print()

    photos = skimage_photos("train") + skimage_photos("validation")
    if args.smoke:
        photos = photos[:2]
    with tempfile.TemporaryDirectory() as tmp:
        rows = consistency_rows(photos, Path(tmp))
    print("| photo | mean abs | p99 abs | max abs | mean R | mean G | mean B |")
    print("|---|---|---|---|---|---|---|")
    for name, s in rows:
        print(f"| {name} | " + " | ".join(f"{v:.5f}" for v in s) + " |")
    all_stats = np.array([s for _, s in rows])
    mean_row = all_stats.mean(axis=0)
    mean_row[2] = all_stats[:, 2].max()
    print("| all (mean; max of max) | " + " | ".join(f"{v:.5f}" for v in mean_row) + " |")
    print("\n(rawpy minus target, fraction of full scale; see the module docstring)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

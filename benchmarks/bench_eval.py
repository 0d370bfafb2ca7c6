"""Evaluation benchmark: wall time per full-resolution SID pair through `jaxdark.evaluation`.

    python -m benchmarks.bench_eval [--pairs 4] [--size 2848x4256] [--tile 0] [--weights PATH]
                                    [--workdir DIR]

Writes a SID-layout folder with one scene at the Sony a7S II resolution (2848 x 4256,
real DNG files under SID names, `tests.support.sid_fixture`) and ``--pairs`` short exposures,
then runs the evaluation exactly as ``eval.py`` does (raw files, ground truth developed
with rawpy once per scene, whole frames unless ``--tile``) with ground-truth and with
estimated amplification. Prints a Markdown table: per mode the median restore time per
pair (amplifier + network + copies, compilation excluded), the median total time per
pair (reading the raw file, restoring, PSNR/SSIM, writing the PNG; the ground truth is
developed once for the scene and counted in its first pair, so the first pair is left
out of the median) and the process's peak memory.

Weights: ``--weights``, else $JAXDARK_OFFICIAL_WEIGHTS, else ../shared/official/weights.pth.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import find_weights, machine_line, parse_area
from jaxdark.constants import AMPLIFICATION_MODES

EXPOSURES = (0.1, 0.04, 0.033, 0.1, 0.04, 0.033, 0.1, 0.04)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--size", type=parse_area, default=(2848, 4256), help="HxW")
    parser.add_argument("--tile", type=int, default=0, help="eval_tile_size (0: whole frames)")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    h, w = args.size
    try:
        weights = find_weights(args.weights)
    except FileNotFoundError as e:
        raise SystemExit(f"error: {e}") from None
    if weights is None:
        raise SystemExit("error: official weights not found (pass --weights)")
    if not 1 <= args.pairs <= len(EXPOSURES):
        raise SystemExit(f"--pairs must be in 1..{len(EXPOSURES)}")

    import jax

    from configs.sid_sony import get_config
    from jaxdark import evaluation as ev
    from jaxdark.evaluation.reports import output_dir
    from tests.support.sid_fixture import FixtureScene, make_sid_tree

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_eval_"))
    root = work / "SID"
    scene = FixtureScene(10001, "test", 10.0, EXPOSURES[: args.pairs])
    t = time.perf_counter()
    make_sid_tree(root, height=h, width=w, scenes=(scene,))
    print(f"wrote {args.pairs} pairs of {h}x{w} in {time.perf_counter() - t:.1f} s", flush=True)

    rows = []
    for mode in AMPLIFICATION_MODES:
        config = get_config()
        config.data_dir, config.amplification, config.eval_tile_size = str(root), mode, args.tile
        s = ev.evaluate(config, work / "runs", weights)
        out = output_dir(work / "runs", "test", mode, 5.0)
        with open(out / "results.csv") as f:
            res = list(csv.DictReader(f))
        restore = [float(r["seconds"]) for r in res]
        total = [float(r["total_seconds"]) for r in res]
        rows.append(
            (
                mode,
                len(res),
                statistics.median(restore),
                statistics.median(total[1:] or total),
                total[0],
                s["overall"]["psnr"],
            )
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print()
    print(
        f"machine: {machine_line()}, "
        f"JAX {jax.__version__} on {jax.devices()[0].platform}; load average "
        f"{os.getloadavg()[0]:.1f}; frame {h}x{w}; tiles: {args.tile or 'none (whole frame)'}"
    )
    print()
    print("| amplification | pairs | restore s/pair (median) | total s/pair (median) "
          "| first pair s (with ground truth) | PSNR (synthetic scene) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for mode, n, r, tot, first, psnr in rows:
        print(f"| {mode} | {n} | {r:.2f} | {tot:.2f} | {first:.2f} | {psnr:.2f} |")
    print(f"\npeak memory of the process: {peak:.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

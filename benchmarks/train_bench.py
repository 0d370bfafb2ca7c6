"""Training-step benchmark: jaxdark's data-parallel step against our PyTorch reference.

    python -m benchmarks.train_bench [--batch 8] [--crop 512] [--steps 5] [--devices 1,8]
                                     [--smoke]

Times the full training step (forward, L1 + 0.2 * (1 - MS-SSIM), backward, Adam update)
on one fixed synthetic batch: jaxdark's jitted shard_map step (`jaxdark.training.step`) with
1 and with 8 devices (simulated CPU devices unless the machine has them), and, in the
1-device process on the same batch, our PyTorch reference network
(`convert_weights.reference_torch`) with `pytorch_msssim` and `torch.optim.Adam`. Each
device count runs in its own process (the device count is fixed when JAX starts). One
warm-up step (compilation), then the median of ``--steps`` timed steps. On a GPU the
JAX step runs on it (and the PyTorch step on CUDA when torch sees it). Prints a Markdown
table. ``--smoke``: crop 64, batch 8, 2 steps.

``--data`` instead measures the input pipeline on full Sony-size frames (2848x4256): it
writes a small SID-layout folder of such DNG files (tests/support/sid_fixture.py), prepares it
with `jaxdark.data.sid`, and times reading one joined record (mosaic + 16-bit ground
truth) and producing batches of crops with 0 and N grain worker processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import (
    REPO_ROOT,
    cpu_model,
    time_steps,
    torch_train_step,
    training_batch,
)


def _jax_worker(args) -> dict:
    import jax
    from flax import nnx

    from jaxdark.models.lamba2021 import DarkRestorationNet
    from jaxdark.training.optim import make_optimizer
    from jaxdark.training.state import setup_training
    from jaxdark.training.step import make_global_batch

    tx, _ = make_optimizer()
    setup = setup_training(DarkRestorationNet(rngs=nnx.Rngs(0)), tx)
    step = setup.train_step
    x, y = training_batch(args.batch, args.crop)
    batch = make_global_batch({"input": x, "target": y}, setup.mesh)
    box = {"state": setup.state}

    def run():
        box["state"], metrics = step(box["state"], batch)
        jax.block_until_ready(metrics)

    times = time_steps(run, args.steps)
    out = {
        "devices": jax.device_count(),
        "platform": jax.devices()[0].platform,
        "device_kind": jax.devices()[0].device_kind,
        "jax_step_s": statistics.median(times),
    }
    if args.torch:
        out.update(torch_train_step(x, y, args.steps))
    return out


def _data_bench(args) -> int:
    import tempfile

    from jaxdark.data import sid
    from jaxdark.data.pipeline import make_iterator
    from tests.support.sid_fixture import FixtureScene, make_sid_tree

    scenes = (
        FixtureScene(1, "train", 10.0, (0.1, 0.04)),
        FixtureScene(2, "train", 30.0, (0.1, 0.1)),
        FixtureScene(20001, "val", 10.0, (0.1,)),
        FixtureScene(10001, "test", 10.0, (0.1,)),
    )
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        root = make_sid_tree(Path(tmp) / "SID", height=2848, width=4256, scenes=scenes)
        sid.prepare(root, Path(tmp) / "tfds")
        prep = time.perf_counter() - t
        source = sid.SIDPairs("train", Path(tmp) / "tfds")
        pairs_only = sid.SIDPairs("train", Path(tmp) / "tfds", with_target=False)
        reads = time_steps(lambda: source[1], args.steps)
        reads_in = time_steps(lambda: pairs_only[1], args.steps)
        print(
            f"Input pipeline, full Sony frames (2848x4256), crop {args.crop}, batch "
            f"{args.batch}; {cpu_model()}, {os.cpu_count()} cores\n"
        )
        print(f"prepare {len(scenes)} scenes / 6 pairs: {prep:.1f} s")
        print(f"read one joined record (zlib mosaic + ground truth): "
              f"{statistics.median(reads) * 1e3:.0f} ms (mosaic alone "
              f"{statistics.median(reads_in) * 1e3:.0f} ms)\n")  # fmt: skip
        print("| grain workers | batches/s | examples/s |")
        print("|---|---|---|")
        for workers in (0, args.workers):
            it = make_iterator(
                source, global_batch_size=args.batch, crop_size=args.crop, seed=0,
                worker_count=workers, process_index=0, process_count=1,
            )  # fmt: skip
            for _ in range(6):  # start-up, and drain what was prefetched meanwhile
                next(it)
            t = time.perf_counter()
            n = max(4, args.steps)
            for _ in range(n):
                next(it)
            dt = (time.perf_counter() - t) / n
            if hasattr(it, "close"):
                it.close()
            print(f"| {workers} | {1 / dt:.2f} | {args.batch / dt:.1f} |")
    return 0


def _spawn(args, devices: int, torch: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    cmd = [sys.executable, "-m", "benchmarks.train_bench", "--worker", "--batch",
           str(args.batch), "--crop", str(args.crop), "--steps", str(args.steps)]  # fmt: skip
    if torch:
        cmd.append("--torch")
    p = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"benchmark worker ({devices} devices) failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="global batch (default 8)")
    parser.add_argument("--crop", type=int, default=512, help="crop side (default 512)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    parser.add_argument("--devices", default="1,8", help="device counts (default 1,8)")
    parser.add_argument("--smoke", action="store_true", help="crop 64, 2 steps")
    parser.add_argument("--data", action="store_true", help="benchmark the input pipeline")
    parser.add_argument("--workers", type=int, default=2, help="grain workers for --data")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--torch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.crop, args.steps = 64, 2
    if args.worker:
        print(json.dumps(_jax_worker(args)))
        return 0
    if args.data:
        return _data_bench(args)
    counts = [int(c) for c in args.devices.split(",")]
    rows = [_spawn(args, n, torch=(i == 0)) for i, n in enumerate(counts)]
    ex = args.batch
    print(
        f"Training step, batch {args.batch} x {args.crop}x{args.crop}, median of "
        f"{args.steps} steps after a warm-up; {cpu_model()}, {os.cpu_count()} cores\n"
    )
    print("| implementation | devices | s/step | steps/s | examples/s |")
    print("|---|---|---|---|---|")
    for r in rows:
        kind = "simulated CPU" if r["platform"] == "cpu" and r["devices"] > 1 else r["device_kind"]
        s = r["jax_step_s"]
        print(f"| jaxdark (jit + shard_map) | {r['devices']} ({kind}) | {s:.3f} | "
              f"{1 / s:.3f} | {ex / s:.2f} |")  # fmt: skip
    first = rows[0]
    if "torch_step_s" in first:
        s = first["torch_step_s"]
        note = f", {first['torch_loss_note']}" if first["torch_loss_note"] else ""
        print(f"| PyTorch reference (eager, {first['torch_threads']} threads{note}) | 1 "
              f"({first['torch_device']}) | {s:.3f} | {1 / s:.3f} | {ex / s:.2f} |")  # fmt: skip
        print(f"\njaxdark 1 device / PyTorch: {s / first['jax_step_s']:.2f}x the step rate")
    else:
        print(f"\n{first.get('torch_error', 'PyTorch reference not run')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

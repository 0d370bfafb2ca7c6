"""Proof that training learns: two short runs on synthetic pairs, scored on held-out photos.

    python -m benchmarks.learning [--out benchmarks/results/raw] [--weights official]
        [--scratch-steps 2000] [--finetune-steps 400] [--read-noise-scale 4] [--smoke]
    python -m benchmarks.learning --from-json benchmarks/results/raw/learning.json  # redraw

Both runs go through the real training code: `jaxdark.training.loop.train_and_evaluate`
(which builds the grain pipeline over `jaxdark.data.synthetic_source`, the jitted step of
`jaxdark.training.state.setup_training`, checkpoints) with ``configs/synthetic.py:local``
(crop 128, batch 4), and in-training validation through ``eval_every_steps`` by
`jaxdark.evaluation.synthetic.SyntheticEvaluator`: the held-out scikit-image photos
(chelsea, coffee, rocket), whole, made dark with fixed draws.

(a) **From scratch**: a fresh network (``create_model``, saved and given to the loop as
    ``init_weights`` so that step 0 is scored on exactly the weights training starts
    from). Held-out PSNR / SSIM at step 0 and every ``--scratch-eval-every`` steps,
    against naive brightening of the same pairs and the official weights.
(b) **Fine-tuning the official weights** on a camera with ``--read-noise-scale`` times
    the a7S II's read and row noise: held-out PSNR / SSIM on that camera and on the
    original one, before and after. A control run (``--control``, on by default) makes
    the same fine-tuning on the original camera: what the noisier run gains beyond the
    control is adaptation to the noise; what both gain is adaptation to synthetic pairs.

Writes ``learning.png`` (training loss and held-out PSNR against step), ``learning.md``
(the tables) and ``learning.json`` (every number) in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "raw"
SMOKE_MODEL = {"features": 16, "growth": 8, "dense_layers": [2]}


# ------------------------------------------------------------------------ configuration


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(RESULTS), help="folder for learning.{png,md,json}")
    p.add_argument("--weights", default="official", help="official weights (or a path)")
    p.add_argument("--init-weights", default="", help="start (a) from these, not create_model")
    p.add_argument("--workdir", default="", help="training runs go here (default: temporary)")
    p.add_argument("--scratch-steps", type=int, default=2000)
    p.add_argument("--scratch-eval-every", type=int, default=200)
    p.add_argument(
        "--scratch-lr",
        type=float,
        default=1e-3,
        help="learning rate of (a) (default 1e-3: 1e-4, the config's, learns slower)",
    )
    p.add_argument("--finetune-steps", type=int, default=400)
    p.add_argument("--finetune-eval-every", type=int, default=50)
    p.add_argument("--finetune-lr", type=float, default=None, help="default: the config's")
    p.add_argument("--read-noise-scale", type=float, default=4.0, help="noise of run (b)'s camera")
    p.add_argument(
        "--control",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also fine-tune on the original camera (tells noise adaptation from the rest)",
    )
    p.add_argument("--val-pairs", type=int, default=9, help="held-out pairs (3 photos)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--compile-cache",
        default="",
        help="JAX persistent compilation cache (default: WORKDIR/jax_cache), so the "
        "evaluators and the second run reuse compiled programs; 'off': none (the setting "
        "is process-wide, so in-process callers such as tests pass 'off')",
    )
    p.add_argument(
        "--from-json",
        default="",
        help="no training: redraw the plot and tables of an earlier learning.json",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny run for CI: a small network (needs --init-weights and --weights of it), "
        "crop 64, batch 2, 4 + 2 steps, 3 pairs",
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.scratch_steps, args.scratch_eval_every = 4, 2
        args.finetune_steps, args.finetune_eval_every = 2, 1
        args.val_pairs = min(args.val_pairs, 3)
        if not args.init_weights or args.weights == "official":
            p.error("--smoke needs --init-weights and --weights (small networks)")
    for name in ("scratch_steps", "scratch_eval_every", "finetune_steps", "finetune_eval_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def run_config(args: argparse.Namespace, steps: int, eval_every: int, lr: float | None):
    """``configs/synthetic.py:local`` for one benchmark run."""
    from configs import synthetic

    c = synthetic.get_config("local")
    c.seed = int(args.seed)
    c.num_train_steps = int(steps)
    c.eval_every_steps = int(eval_every)
    c.num_eval_pairs = int(args.val_pairs)
    c.log_every_steps = 10 if steps >= 100 else 1
    c.checkpoint_every_steps = int(steps)  # one checkpoint, at the end
    c.image_every_steps = 0
    if lr is not None:
        c.learning_rate = float(lr)
    if args.smoke:
        c.crop_size, c.batch_size = 64, 2
    return c


# ------------------------------------------------------------------------ measurements


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """``tag -> [(step, value), ...]`` of the scalars in tensorboardX event files."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(logdir).glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos + 12 <= len(data):  # TFRecord framing: length, crc, payload, crc
            (n,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + n])
            pos += 12 + n + 4
            for v in event.summary.value:
                if v.HasField("simple_value"):
                    out.setdefault(v.tag, []).append((int(event.step), float(v.simple_value)))
    return out


def scores(pairs) -> dict[str, float]:
    """A dict of an evaluator's ``(name, value)`` pairs."""
    return {k: float(v) for k, v in pairs}


def train(config, workdir: Path) -> tuple[dict, dict, float]:
    """`train_and_evaluate` on ``workdir``; its summary, logged scalars and wall time."""
    from jaxdark.training.loop import train_and_evaluate

    start = time.perf_counter()
    summary = train_and_evaluate(config, workdir)
    seconds = time.perf_counter() - start
    return summary, read_scalars(workdir / "tensorboard"), seconds


def series(scalars: dict, tag: str) -> list[list[float]]:
    """``[[step, value], ...]`` of one tag, in step order."""
    return [[s, v] for s, v in sorted(scalars.get(tag, []))]


def enable_compile_cache(folder: Path) -> None:
    """Keep every compiled program in ``folder``: a program compiled again (a new
    evaluator's restorer, run (b)'s step) is read back instead of recompiled."""
    import jax

    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def machine() -> dict[str, Any]:
    """What ran the benchmark."""
    import jax

    from benchmarks.common import cpu_model

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "device": str(jax.devices()[0].device_kind),
        "load_average_start": list(os.getloadavg()),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both runs; every number measured, as a JSON-able dict."""
    from jaxdark.evaluation.synthetic import SyntheticEvaluator
    from jaxdark.models.lamba2021 import create_model
    from jaxdark.weights.convert import model_config, save_converted
    from jaxdark.weights.load import load_model
    from jaxdark.weights.official import resolve_weights

    log = logging.getLogger("jaxdark.benchmarks")
    t0 = time.perf_counter()
    result: dict[str, Any] = {"machine": machine(), "args": vars(args).copy()}
    work = Path(args.workdir or tempfile.mkdtemp(prefix="jaxdark_learning_"))
    work.mkdir(parents=True, exist_ok=True)
    for sub in ("init", "scratch", "finetune_noisy", "finetune_original"):
        shutil.rmtree(work / sub, ignore_errors=True)
    if args.compile_cache != "off":
        enable_compile_cache(Path(args.compile_cache or work / "jax_cache"))
    official_path = str(resolve_weights(args.weights))
    official = load_model(official_path)

    # ---- (a) from scratch
    ca = run_config(args, args.scratch_steps, args.scratch_eval_every, args.scratch_lr)
    t = time.perf_counter()
    if args.init_weights:
        fresh = load_model(args.init_weights)
    else:
        fresh = create_model(seed=int(ca.seed), **ca.model.to_dict())
    ca.model = model_config(fresh)
    save_converted(fresh, work / "init")
    ca.init_weights = str(work / "init")
    init_seconds = time.perf_counter() - t
    t = time.perf_counter()
    ev_a = SyntheticEvaluator(ca)
    a = {
        "config": {k: ca[k] for k in ("crop_size", "batch_size", "learning_rate", "seed")},
        "pairs": [f"{p.name} x{p.ratio:g}" for p in ev_a.items],
        "naive": scores(ev_a.naive()),
        "official": scores(ev_a.run(official)),
        "step0": scores(ev_a.run(fresh)),
        "init_seconds": init_seconds,
    }
    a["baseline_seconds"] = time.perf_counter() - t
    log.info("(a) step 0 %.2f dB, naive %.2f dB, official %.2f dB", a["step0"]["psnr"],
             a["naive"]["psnr"], a["official"]["psnr"])  # fmt: skip
    summary, scalars, seconds = train(ca, work / "scratch")
    a.update(
        steps=summary["step"],
        train_seconds=seconds,
        loss=series(scalars, "train/loss"),
        steps_per_sec=series(scalars, "train/steps_per_sec"),
        val_psnr=[[0, a["step0"]["psnr"]], *series(scalars, "val/psnr")],
        val_ssim=[[0, a["step0"]["ssim"]], *series(scalars, "val/ssim")],
    )
    result["scratch"] = a

    # ---- (b) fine-tuning the official weights on a noisier camera, and the control:
    # the same fine-tuning on the original camera (what synthetic data alone changes)
    cb = run_config(args, args.finetune_steps, args.finetune_eval_every, args.finetune_lr)
    cb.model = model_config(official)
    cb.init_weights = official_path
    cb.synthetic_read_noise_scale = float(args.read_noise_scale)
    ev_b = SyntheticEvaluator(cb)
    b = {
        "config": {k: cb[k] for k in ("crop_size", "batch_size", "learning_rate", "seed")},
        "read_noise_scale": float(args.read_noise_scale),
        "pairs": [f"{p.name} x{p.ratio:g}" for p in ev_b.items],
        "naive": {"noisy": scores(ev_b.naive()), "original": a["naive"]},
        "official": {"noisy": scores(ev_b.run(official)), "original": a["official"]},
    }
    runs = [("noisy", cb)]
    if args.control:
        cc = run_config(args, args.finetune_steps, args.finetune_eval_every, args.finetune_lr)
        cc.model, cc.init_weights = cb.model, official_path
        runs.append(("original", cc))
    for camera, config in runs:
        summary, scalars, seconds = train(config, work / f"finetune_{camera}")
        tuned = load_model(work / f"finetune_{camera}")
        before = b["official"][camera]["psnr"]
        b[f"tuned_on_{camera}"] = {
            "steps": summary["step"],
            "train_seconds": seconds,
            "loss": series(scalars, "train/loss"),
            "steps_per_sec": series(scalars, "train/steps_per_sec"),
            "val_psnr": [[0, before], *series(scalars, "val/psnr")],  # on its own camera
            "val_ssim": [[0, b["official"][camera]["ssim"]], *series(scalars, "val/ssim")],
            "noisy": scores(ev_b.run(tuned)),
            "original": scores(ev_a.run(tuned)),
        }
    result["finetune"] = b
    result["machine"]["load_average_end"] = list(os.getloadavg())
    result["seconds"] = time.perf_counter() - t0
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return result


# ------------------------------------------------------------------------ reporting


def _loss_at(loss: list[list[float]], step: int) -> str:
    for s, v in loss:
        if s == step:
            return f"{v:.4f}"
    return "-"


def _ps(x: dict[str, float]) -> str:
    return f"{x['psnr']:.2f} / {x['ssim']:.3f}"


def _median_rate(run: dict[str, Any]) -> float:
    rates = [v for _, v in run["steps_per_sec"]]
    return float(np.median(rates)) if rates else float("nan")


def _table_lines(columns: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


def tables(r: dict[str, Any]) -> tuple[tuple[list[str], list[list[str]]], ...]:
    """``(columns, rows)`` of (a) from scratch and (b) fine-tuning, as text cells."""
    a, b = r["scratch"], r["finetune"]
    k = b["read_noise_scale"]
    noisy, control = b["tuned_on_noisy"], b.get("tuned_on_original")
    cols_a = ["step", "training loss (mean of the logged window)", "held-out PSNR (dB)", "SSIM"]
    ssim = dict((s, v) for s, v in a["val_ssim"])
    rows_a = [
        [str(s), str(_loss_at(a["loss"], s)), f"{v:.2f}", f"{ssim.get(s, float('nan')):.3f}"]
        for s, v in a["val_psnr"]
    ]
    for label, x in (("naive brightening", a["naive"]), ("official weights", a["official"])):
        rows_a.append([f"{label} (same pairs)", "-", f"{x['psnr']:.2f}", f"{x['ssim']:.3f}"])
    cols_b = ["held-out camera", "naive", "official (before)", "fine-tuned on the noisier camera"]
    if control:
        cols_b.append("control: fine-tuned on the original camera")
    rows_b = []
    for camera, label in (("noisy", f"noisier ({k:g}x read noise)"), ("original", "original")):
        row = [label, _ps(b["naive"][camera]), _ps(b["official"][camera]), _ps(noisy[camera])]
        if control:
            row.append(_ps(control[camera]))
        rows_b.append(row)
    return (cols_a, rows_a), (cols_b, rows_b)


def write_records(r: dict[str, Any], directory: Path) -> list[Path]:
    """The two tables as ``learning_scratch.json`` / ``learning_finetune.json`` in the format
    of `benchmarks.results_io` (what the docs render), for a run measured now."""
    from benchmarks.results_io import write_results

    a, b = r["scratch"], r["finetune"]
    noisy = b["tuned_on_noisy"]
    (cols_a, rows_a), (cols_b, rows_b) = tables(r)
    notes_a = (
        f"(a) From scratch: `create_model(seed=0)`, Adam, lr {a['config']['learning_rate']:g}, "
        f"{a['steps']} steps ({a['train_seconds'] / 60:.1f} min of training), "
        f"`configs/synthetic.py:local` (crop {a['config']['crop_size']}, batch "
        f"{a['config']['batch_size']}). Held-out: {len(a['pairs'])} pairs "
        f"({', '.join(a['pairs'])}; ratio given)."
    )
    notes_b = (
        f"(b) Fine-tuning the official weights on a camera with {b['read_noise_scale']:g}x the "
        f"read and row noise, lr {b['config']['learning_rate']:g}, {noisy['steps']} steps "
        f"({noisy['train_seconds'] / 60:.1f} min). PSNR / SSIM on each camera's held-out pairs. "
        "Held-out PSNR during fine-tuning on the noisier camera: "
        + ", ".join(f"step {s}: {v:.2f}" for s, v in noisy["val_psnr"])
        + "."
    )
    return [
        write_results("learning_scratch", cols_a, rows_a, notes=notes_a, directory=directory),
        write_results("learning_finetune", cols_b, rows_b, notes=notes_b, directory=directory),
    ]


def markdown(r: dict[str, Any]) -> str:
    """The tables of a result."""
    a, b, m = r["scratch"], r["finetune"], r["machine"]
    la, lb = m["load_average_start"], m.get("load_average_end", [float("nan")] * 3)
    k = b["read_noise_scale"]
    noisy = b["tuned_on_noisy"]
    lines = [
        "# Learning benchmark (`python -m benchmarks.learning`)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['device']}, jax {m['jax']}; load average "
        f"{la[0]:.1f} at the start, {lb[0]:.1f} at the end; {r['seconds'] / 60:.1f} min in all.",
        f"Config `configs/synthetic.py:local` (crop {a['config']['crop_size']}, batch "
        f"{a['config']['batch_size']}); held-out pairs ({len(a['pairs'])}, whole photos, "
        f"fixed draws, exposure ratio given): {', '.join(a['pairs'])}.",
        "PSNR / SSIM: `jaxdark.imaging.metrics` (8-bit, scikit-image conventions) against the "
        "synthetic target (the clean exposure developed like SID's ground truth).",
        "",
        f"## (a) From scratch ({a['steps']} steps, lr {a['config']['learning_rate']:g}, "
        f"{a['train_seconds'] / 60:.1f} min of training)",
        "",
    ]
    (cols_a, rows_a), (cols_b, rows_b) = tables(r)
    lines += _table_lines(cols_a, rows_a)
    lines += [
        "",
        f"## (b) Fine-tuning the official weights on a camera with {k:g}x the read and row "
        f"noise ({noisy['steps']} steps, lr {b['config']['learning_rate']:g}, "
        f"{noisy['train_seconds'] / 60:.1f} min of training)",
        "",
        "PSNR / SSIM on the held-out pairs of each camera (same photos and draws):",
        "",
    ]
    control = b.get("tuned_on_original")
    lines += _table_lines(cols_b, rows_b)
    lines += [
        "",
        "Held-out PSNR during fine-tuning on the noisier camera: "
        + ", ".join(f"step {s}: {v:.2f}" for s, v in noisy["val_psnr"])
        + ".",
    ]
    if control:
        lines.append(
            "Control, on the original camera: "
            + ", ".join(f"step {s}: {v:.2f}" for s, v in control["val_psnr"])
            + "."
        )
    lines += [
        "",
        f"Training speed (median of the logged windows): (a) {_median_rate(a):.2f} steps/s, "
        f"(b) {_median_rate(noisy):.2f} steps/s.",
    ]
    return "\n".join(lines) + "\n"


def plot(r: dict[str, Any]) -> np.ndarray:
    """Training loss and held-out PSNR against step for both runs (RGB uint8)."""
    from benchmarks.lineplot import Series, grid, line_chart

    a, b = r["scratch"], r["finetune"]
    k = b["read_noise_scale"]
    noisy, control = b["tuned_on_noisy"], b.get("tuned_on_original")

    def loss_series(run: dict, label: str, color: str) -> Series:
        xs, ys = zip(*run["loss"], strict=True) if run["loss"] else ((), ())
        return Series(label, xs, ys, color)

    def level(label: str, span: list[int], value: float, color: str) -> Series:
        return Series(label, span, [value, value], color, dashed=True)

    span_a = [0, a["val_psnr"][-1][0]]
    scratch_psnr = [
        Series("held-out PSNR", *zip(*a["val_psnr"], strict=True), "orange", markers=True),
        level("official weights", span_a, a["official"]["psnr"], "green"),
        level("naive brightening", span_a, a["naive"]["psnr"], "grey"),
    ]
    span_b = [0, noisy["val_psnr"][-1][0]]
    tune_loss = [loss_series(noisy, f"on the noisier camera ({k:g}x)", "blue")]
    tune_psnr = [
        Series("fine-tuned", *zip(*noisy["val_psnr"], strict=True), "orange", markers=True),
        level("official weights (before)", span_b, b["official"]["noisy"]["psnr"], "green"),
    ]
    if control:
        tune_loss.append(loss_series(control, "control: original camera", "sky"))
        tune_psnr.append(
            Series(
                "control (tuned on the original camera), final",
                [control["steps"]],
                [control["noisy"]["psnr"]],
                "purple",
            )
        )
    charts = [
        line_chart(
            [loss_series(a, "training loss (L1 + MS-SSIM)", "blue")],
            title="(a) from scratch: training loss",
            xlabel="step",
            ylabel="loss",
            log_y=True,
        ),
        line_chart(
            scratch_psnr,
            title="(a) from scratch: held-out PSNR",
            xlabel="step",
            ylabel="PSNR (dB)",
            legend="lower right",
        ),
        line_chart(
            tune_loss,
            title="(b) fine-tuning the official weights: training loss",
            xlabel="step",
            ylabel="loss",
            log_y=True,
        ),
        line_chart(
            tune_psnr,
            title=f"(b) held-out PSNR on the noisier camera ({k:g}x read noise)",
            xlabel="step",
            ylabel="PSNR (dB)",
            legend="lower right",
        ),
    ]
    return grid(charts, cols=2)


def write_outputs(r: dict[str, Any], out: Path) -> list[Path]:
    """``learning.png``, ``learning.md``, ``learning.json`` in ``out``."""
    import cv2

    from jaxdark.fileio import write_atomic

    out.mkdir(parents=True, exist_ok=True)
    png, md, js = out / "learning.png", out / "learning.md", out / "learning.json"
    ok, data = cv2.imencode(".png", plot(r)[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise OSError(f"{png}: OpenCV could not encode the plot")
    write_atomic(png, lambda tmp: tmp.write_bytes(data.tobytes()))
    text = markdown(r)
    write_atomic(md, lambda tmp: tmp.write_text(text))
    write_atomic(js, lambda tmp: tmp.write_text(json.dumps(r, indent=1)))
    return [png, md, js]


def main(argv: list[str] | None = None) -> int:
    """Run both trainings, write the plot and tables, print the tables."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    logging.getLogger("jaxdark").setLevel(logging.INFO)
    from jaxdark.errors import JaxdarkError, one_line

    try:
        result = json.loads(Path(args.from_json).read_text()) if args.from_json else run(args)
    except (JaxdarkError, OSError) as e:  # missing weights, unwritable folders, ...
        print(f"benchmarks.learning: error: {one_line(e)}", file=sys.stderr)
        return 2
    paths = write_outputs(result, Path(args.out))
    if not args.from_json:  # a redraw keeps the records of the run that measured them
        # the default --out (results/raw) puts the records where the docs read them
        records = RESULTS.parent if Path(args.out).resolve() == RESULTS else Path(args.out)
        paths += write_records(result, records)
    print(markdown(result))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())

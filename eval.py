"""Evaluate a model on SID: PSNR / SSIM of every pair of a split at full resolution.

  python eval.py --config=configs/sid_sony.py --workdir=DIR [--weights=PATH] \
      [--config.amplification=estimated --config.m=5 --config.eval_split=test ...]

Weights: ``--weights`` (the official .pth, a converted checkpoint or a training run's
workdir); without it, the newest training checkpoint in ``--workdir``. Results go to
``DIR/eval_<split>_<mode>/``.
"""

from __future__ import annotations

import sys

from jaxdark.cli.flags import require_train_extra

if __name__ == "__main__":
    require_train_extra("eval.py")

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

config_flags.DEFINE_config_file("config", None, "Configuration file (get_config()).")
flags.DEFINE_string("workdir", None, "Work directory: training checkpoints and eval outputs.")
flags.DEFINE_string(
    "weights",
    None,
    "Official .pth, converted checkpoint or training run (default: the run in --workdir).",
)
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    """Run `jaxdark.evaluation.evaluate`; bad input is reported on one line."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from jaxdark.cli.flags import console_logging
    from jaxdark.errors import JaxdarkError
    from jaxdark.evaluation import evaluate
    from jaxdark.fileio import check_writable_dir
    from jaxdark.training.config import check_eval_config

    console_logging()
    try:
        check_writable_dir(FLAGS.workdir, "--workdir")
        check_eval_config(FLAGS.config)
        summary = evaluate(FLAGS.config, FLAGS.workdir, FLAGS.weights)
    except (JaxdarkError, ValueError, OSError) as e:
        print(f"eval.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eval.py: interrupted (results.csv holds the pairs finished)", file=sys.stderr)
        return 130
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    from jaxdark.cli.flags import make_flags_parser

    app.run(main, flags_parser=make_flags_parser("eval.py"))
